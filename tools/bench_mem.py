#!/usr/bin/env python3
"""make bench-mem: a leader with 64 followers, each its own `micropython` process, run with
the heaps of a board without PSRAM (-X heapsize=96wK for the leader with its page open in a
client that reads /api/stream and asks for /api/state and the history every 5 s, 24wK for a follower;
--no-page: the leader alone in 64wK).
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
import http.client
import json
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import Broker  # noqa: E402
from sim import ROOT, Sim, heap_total  # noqa: E402

# A board without PSRAM: 64 KB for the leader (the page and MQTT need the rest), 24 KB for a
# follower (scaled by the unix port to its word size).
HEAPS = {"leader": "96wK", "follower": "24wK"}
LEADER_ALONE = "64wK"  # without the page (DESIGN.md: the control alone fits in 64 KB)
HTTP_PORT = 29080
MQTT_PORT = 29090
ROM = ROOT / "build" / "ampshare.romfs"
# The allocation run: a second without collection must fit beside what the leader keeps.
ALLOC_HEAP = "256wK"
ALLOC_SECONDS = 45
# The collector's block: four words (MICROPY_BYTES_PER_GC_BLOCK), 32 bytes on this 64-bit port
# (mem_info(1)'s map: 64 blocks a line, 0x800 bytes apart), 16 on the ESP32.
_BLOCK = 32
ALLOC_SKIP = 3  # the first readings: start-up, adoption and the first allocations


def peaks(log):
    # mem_info()'s "GC: total: T, used: U" right after a collection: what stays in the heap
    # (bytes of this 64-bit port; a 32-bit board's are about half), less the ROM image's block.
    rom = re.search(r"rom: (\d+) bytes", log)
    image = -(-int(rom.group(1)) // _BLOCK) * _BLOCK if rom else 0
    return [int(m) - image for m in re.findall(r"GC: total: \d+, used: (\d+)", log)]


def largest_free(log):
    # mem_info()'s "max free sz: N" (in the collector's blocks) after each collection: the
    # largest piece one allocation can take; the least of them is the tightest moment.
    sizes = [int(n) * _BLOCK for n in re.findall(r"max free sz: (\d+)", log)]
    return min(sizes) if sizes else None


def names(log):
    # qstr_info()'s pool line, the last one: the names the role has interned beside the ROM's.
    m = re.findall(r"qstr pool: n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", log)
    return tuple(int(v) for v in m[-1]) if m else None


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
    ap.add_argument("--no-page", action="store_true", help="no HTTP server, no client: the leader alone")
    ap.add_argument("--mqtt", action="store_true",
                    help="the leader on a Mosquitto started here, Home Assistant discovery on (as DESIGN.md's whole leader)")
    ap.add_argument("--no-rate", action="store_true", help="skip the second run (what the leader allocates per second)")
    ap.add_argument("--history-s", type=int, default=None,
                    help="the history's bucket (the board's is 240 s): shorter writes records within a short run")
    args = ap.parse_args(argv[1:])
    if args.no_page and args.leader_heap == HEAPS["leader"]:
        args.leader_heap = LEADER_ALONE
    heaps = {"leader": args.leader_heap, "follower": args.follower_heap}
    if not args.code_in_heap and not ROM.exists():
        raise SystemExit("%s is missing: make rom" % ROM)
    extra = {"history_bucket_ms": args.history_s * 1000} if args.history_s else {}
    broker = None
    if args.mqtt:
        broker = Broker(ROOT / "build" / "bench-mem-broker", [MQTT_PORT])
        broker.dir.mkdir(parents=True, exist_ok=True)
        broker.start()
        extra["mqtt"] = {"host": "127.0.0.1", "port": MQTT_PORT}
    # Compiled modules either way: no compiler in the heap.
    sim = Sim(args.site, args.followers, work=ROOT / "build" / "bench-mem", base_port=29000, heap=heaps,
              settings={"mem_report_s": 5},
              leader_settings=extra or None, code=ROOT / "build" / "lib", monitor=False, meter_line=args.meter_line,
              rom=None if args.code_in_heap else ROM, http_port=None if args.no_page else HTTP_PORT,
              page="/rom/page.html.gz" if not args.code_in_heap else ROOT / "build" / "lib" / "page.html.gz")
    reader = None if args.no_page else PageReader(HTTP_PORT)
    try:
        sim.start_all()
        if reader:
            reader.start()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(5)
            if reader:
                reader.ask_state()
                reader.ask_history()
            dead = [n for n, p in sim.procs.items() if p.poll() is not None]
            if dead:
                print("stopped early: %s" % ", ".join(dead))
                break
    finally:
        if reader:
            reader.stop = True
        sim.stop()
        if broker:
            broker.stop(kill=True)
    rows = {"leader": [], "follower": []}
    room = {"leader": [], "follower": []}
    free = {"leader": [], "follower": []}
    errors = []
    for d in sorted(sim.work.iterdir()):
        if d.name == "plant" or not (d / "log.txt").exists():
            continue  # the plant, and the RS485 line's pty ends
        log = (d / "log.txt").read_text()
        if "MemoryError" in log:
            errors.append(d.name)
        role = "leader" if d.name == "leader" else "follower"
        rows[role] += [max(peaks(log) or [0])]
        free[role] += [largest_free(log) or 0]
        room[role] += [beside(log) or 0]
    print("%d s, %d followers%s%s, code %s" % (args.seconds, args.followers, ", meter on RS485" if sim.meter_line else "",
                                            ", MQTT with discovery" if broker else "",
                                          "in the heap" if args.code_in_heap else "in the ROM image"))
    print("role      heap    heap_B  live_B  free_block_B (most kept after a collection, and the least largest")
    print("                                           free block then; worst process, 64-bit port)")
    for role, vals in rows.items():
        size = min(room[role]) if not args.code_in_heap and room[role] else heap_total(heaps[role])
        print("%-8s  %-6s  %-6d  %-6d  %d" % (role, heaps[role], size, max(vals) if vals else 0,
                                            min(free[role]) if free[role] else 0))
    print("MemoryError: %s" % (", ".join(errors) if errors else "none"))
    pool = names((sim.work / "leader" / "log.txt").read_text())
    if pool:
        print("leader names: %d pools, %d qstrs, %d bytes of text, %d bytes in all" % pool)
    if reader:
        print("page: %d stream events read, %d of %d /api/state answered, %d of %d /api/history "
              "(the last with %d points)" % (reader.events, reader.answered, reader.asked, reader.histories,
                                             reader.asked, reader.points))
    records = sorted((sim.work / "leader").glob("history.*"))
    print("history: %d segment files, %d bytes on flash" % (len(records), sum(p.stat().st_size for p in records)))
    if not args.no_rate:
        rate = alloc_rate(args)
        print("leader allocates: %s bytes/s (median of %d one-second readings, collector off)" % rate)
    return 1 if errors else 0


class PageReader(threading.Thread):
    """The page open in one browser: its stream read as it comes, the state asked now and then."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = False
        self.events = self.asked = self.answered = self.histories = self.points = 0

    def run(self):
        while not self.stop:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/api/stream")
                r = conn.getresponse()
                while not self.stop:
                    line = r.fp.readline()
                    if not line:
                        break
                    if line.startswith(b"data: "):
                        self.events += 1
            except OSError:
                time.sleep(1)  # not up yet, or restarted

    def ask_state(self):
        self.asked += 1
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/api/state")
            if conn.getresponse().status == 200:
                self.answered += 1
        except OSError:
            pass


    def ask_history(self):
        # The graph the page draws: the main fuse's three series of 48 hours, streamed from flash.
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/api/history?node=main&phase=1")
            r = conn.getresponse()
            if r.status == 200:
                self.points = len(json.loads(r.read())["series"]["meter"])
                self.histories += 1
        except (OSError, ValueError):
            pass


def alloc_rate(args):
    """The leader's heap bytes allocated per second, with its followers running as above."""
    sim = Sim(args.site, args.followers, work=ROOT / "build" / "bench-alloc-rate", base_port=29000,
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
