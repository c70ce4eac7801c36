#!/usr/bin/env python3
"""make bench-mem: a leader with 64 followers, each its own `micropython` process, run with
the heaps of a board without PSRAM (-X heapsize=64wK for the leader, 24wK for a follower).
Prints the most each role kept in its heap (after a collection, every 5 s) and any
MemoryError: a role that fits runs to the end without one. Then, in a second run with room to
spare (the collector is switched off for a second at a time), what the leader allocates on its
heap per second: the garbage each control period and each datagram make.

The code runs from the ROM image (make rom) as a board runs it from flash: the role's heap is
64wK or 24wK beside the image. --code-in-heap loads the compiled modules into the heap instead,
as a board that takes .mpy files from its filesystem would.

    python3 tools/bench_mem.py [--seconds 120] [--followers 64] [--code-in-heap]
"""
import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim import ROOT, Sim, heap_total  # noqa: E402

# A board without PSRAM: 64 KB for the leader (the page and MQTT need the rest), 24 KB for a
# follower (scaled by the unix port to its word size).
HEAPS = {"leader": "64wK", "follower": "24wK"}
ROM = ROOT / "build" / "ampshare.romfs"
# The allocation run: a second without collection must fit beside what the leader keeps.
ALLOC_HEAP = "256wK"
ALLOC_SECONDS = 45
ALLOC_SKIP = 3  # the first readings: start-up, adoption and the first allocations


def peaks(log):
    # mem_info()'s "GC: total: T, used: U" right after a collection: what stays in the heap
    # (bytes of this 64-bit port; a 32-bit board's are about half), less the ROM image's block.
    rom = re.search(r"rom: (\d+) bytes", log)
    image = -(-int(rom.group(1)) // 16) * 16 if rom else 0  # the collector's 16-byte blocks
    return [int(m) - image for m in re.findall(r"GC: total: \d+, used: (\d+)", log)]


def beside(log):
    m = re.search(r"heap beside it: (\d+)", log)
    return int(m.group(1)) if m else None


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--followers", type=int, default=64)
    ap.add_argument("--site", default=str(ROOT / "examples" / "garage-64.json"))
    ap.add_argument("--leader-heap", default=HEAPS["leader"])
    ap.add_argument("--follower-heap", default=HEAPS["follower"])
    ap.add_argument("--meter-line", action="store_true",
                    help="the site meter on the Modbus path (socat and pymodbus), as a board with RS485 reads it")
    ap.add_argument("--code-in-heap", action="store_true",
                    help="load the compiled modules into the heap rather than run them from the ROM image")
    args = ap.parse_args(argv[1:])
    heaps = {"leader": args.leader_heap, "follower": args.follower_heap}
    if not args.code_in_heap and not ROM.exists():
        raise SystemExit("%s is missing: make rom" % ROM)
    # Compiled modules either way: no compiler in the heap.
    sim = Sim(args.site, args.followers, work=ROOT / "build" / "bench-mem", base_port=26300, heap=heaps,
              settings={"mem_report_s": 5}, code=ROOT / "build" / "lib", monitor=False, meter_line=args.meter_line,
              rom=None if args.code_in_heap else ROM)
    try:
        sim.start_all()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(5)
            dead = [n for n, p in sim.procs.items() if p.poll() is not None]
            if dead:
                print("stopped early: %s" % ", ".join(dead))
                break
    finally:
        sim.stop()
    rows = {"leader": [], "follower": []}
    room = {"leader": [], "follower": []}
    errors = []
    for d in sorted(sim.work.iterdir()):
        if d.name == "plant" or not (d / "log.txt").exists():
            continue  # the plant, and the RS485 line's pty ends
        log = (d / "log.txt").read_text()
        if "MemoryError" in log:
            errors.append(d.name)
        role = "leader" if d.name == "leader" else "follower"
        rows[role] += [max(peaks(log) or [0])]
        room[role] += [beside(log) or 0]
    print("%d s, %d followers%s, code %s" % (args.seconds, args.followers, ", meter on RS485" if sim.meter_line else "",
                                          "in the heap" if args.code_in_heap else "in the ROM image"))
    print("role      heap    heap_B  live_B (most after a collection, worst process, 64-bit port)")
    for role, vals in rows.items():
        size = min(room[role]) if not args.code_in_heap and room[role] else heap_total(heaps[role])
        print("%-8s  %-6s  %-6d  %d" % (role, heaps[role], size, max(vals) if vals else 0))
    print("MemoryError: %s" % (", ".join(errors) if errors else "none"))
    rate = alloc_rate(args)
    print("leader allocates: %s bytes/s (median of %d one-second readings, collector off)" % rate)
    return 1 if errors else 0


def alloc_rate(args):
    """The leader's heap bytes allocated per second, with its followers running as above."""
    sim = Sim(args.site, args.followers, work=ROOT / "build" / "bench-alloc-rate", base_port=26300,
              heap={"leader": ALLOC_HEAP, "follower": args.follower_heap}, leader_settings={"alloc_report_s": 2},
              code=ROOT / "build" / "lib", monitor=False, meter_line=args.meter_line,
              rom=None if args.code_in_heap else ROM)
    try:
        sim.start_all()
        time.sleep(ALLOC_SECONDS)
    finally:
        sim.stop()
    log = (sim.work / "leader" / "log.txt").read_text()
    per_s = sorted(int(b) * 1000 // int(ms) for b, ms in re.findall(r"alloc: (\d+) bytes in (\d+) ms", log)[ALLOC_SKIP:])
    if not per_s:
        return ("none read", 0)
    return ("%d" % per_s[len(per_s) // 2], len(per_s))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
