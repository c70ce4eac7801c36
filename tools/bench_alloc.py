# make bench-alloc: median time and heap bytes per allocation, 1..64 chargers in a
# three-level tree (main -> two buildings -> two floors each), in the MicroPython port.
import gc
import time

from ampshare.config import site as sitemod
from ampshare.core.allocator import Allocator

_RUNS = 201  # odd, so the median is one run
_ROT = ("L123", "L231", "L312", "unknown")


def build(n):
    groups = [{"id": "main", "limit_a": 100, "meter": "grid", "reserve_a": 40}]
    for b in range(2):
        groups.append({"id": "b%d" % b, "parent": "main", "limit_a": 63})
        for f in range(2):
            groups.append({"id": "b%df%d" % (b, f), "parent": "b%d" % b, "limit_a": 40})
    chargers = [{"id": "c%d" % i, "group": "b%df%d" % (i % 2, i // 2 % 2), "max_a": (16, 32)[i % 2],
                 "phases": 1 if i % 5 == 0 else 3, "rotation": _ROT[i % 4]} for i in range(n)]
    cfg = {"version": 1, "groups": groups, "meters": [{"id": "grid", "source": "modbus"}],
           "chargers": chargers}
    alloc = Allocator(sitemod.parse(cfg))
    alloc.meter_ok[0] = 1
    for c in range(n):
        alloc.pilot[c] = ord("C")
        alloc.rank[c] = 60 * c
        for k in range(3):
            alloc.meas[c * 3 + k] = 6000 + 100 * (c % 7)
    return alloc


def measure(n):
    alloc = build(n)
    times, heap = [], []
    for r in range(_RUNS):
        for p in range(3):
            alloc.meter[p] = 60000 + 1000 * (r % 13) + 7000 * p  # the other load moves
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        t0 = time.ticks_us()
        alloc.run()
        t1 = time.ticks_us()
        heap.append(gc.mem_alloc() - before)
        gc.enable()
        times.append(time.ticks_diff(t1, t0))
    times.sort()
    heap.sort()
    return times[_RUNS // 2], times[-1], heap[_RUNS // 2], heap[-1]


def main():
    print("chargers  median_us  worst_us  heap_median_B  heap_worst_B")
    for n in (1, 8, 16, 32, 64):
        med, worst, hmed, hworst = measure(n)
        print("%8d  %9d  %8d  %13d  %12d" % (n, med, worst, hmed, hworst))


main()
