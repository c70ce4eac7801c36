#!/usr/bin/env python3
"""make bench-mqtt: does a broker hold up the leader's control loop? A leader in the unix port
with 64 followers (examples/garage-64.json), MQTT with Home Assistant discovery on a Mosquitto
started here, and a subscriber to everything it publishes, as Home Assistant is. The broker
goes through four phases:

  up       running
  stalled  SIGSTOP: its sockets stay open and take nothing (a hung broker, a dead path)
  back     SIGCONT
  killed   SIGKILL: connection refused until it is started again
  again    started again

In each phase the leader's live document (its status datagram) is read every second; its
`loop.gap_ms` is the longest interval between two control steps in the last 5-10 s (the
period is 100 ms). Printed per phase: the longest and the median of those readings, and what
the subscriber received. A control loop held by the broker would show as a gap of seconds.

    python3 tools/bench_mqtt.py [--phase-s 60] [--followers 64]
"""
import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import Broker  # noqa: E402
from sim import ROOT, Monitor, Sim  # noqa: E402

BASE_PORT = 29200  # the sim's ports (leader, plant, monitor, followers from +10): apart from the tests'
MQTT_PORT = 29190
PREFIX = "ampshare/bench"


class Counter:
    """A subscriber to the leader's topics and the discovery configs: messages per phase."""

    def __init__(self, port):
        self.n = 0
        self.lock = threading.Lock()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-ha")
        self.c.on_message = self._on
        self.c.on_connect = lambda c, *a: c.subscribe([(PREFIX + "/#", 0), ("homeassistant/#", 0)])
        self.c.connect_async("127.0.0.1", port)
        self.c.reconnect_delay_set(1, 2)
        self.c.loop_start()

    def _on(self, c, u, m):
        with self.lock:
            self.n += 1

    def take(self):
        with self.lock:
            n, self.n = self.n, 0
        return n

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def phase(name, seconds, mon, sub, rows):
    gaps = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1)
        st = mon.poll()
        if st and "loop" in st:
            gaps.append(st["loop"]["gap_ms"])
    got = sub.take()
    rows.append((name, seconds, max(gaps) if gaps else None, statistics.median(gaps) if gaps else None, len(gaps),
                 got))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase-s", type=int, default=60)
    ap.add_argument("--followers", type=int, default=64)
    ap.add_argument("--site", default=str(ROOT / "examples" / "garage-64.json"))
    args = ap.parse_args(argv[1:])
    folder = ROOT / "build" / "bench-mqtt"
    broker = Broker(folder / "broker", [MQTT_PORT])
    broker.dir.mkdir(parents=True, exist_ok=True)
    broker.start()
    sim = Sim(args.site, args.followers, work=folder / "sim", base_port=BASE_PORT,
              leader_settings={"mqtt": {"host": "127.0.0.1", "port": MQTT_PORT, "prefix": PREFIX}})
    mon = Monitor(sim.monitor_port)
    sub = Counter(MQTT_PORT)
    rows = []
    try:
        sim.start_all()
        t0 = time.monotonic()
        while not (mon.poll() or {}).get("loop") and time.monotonic() - t0 < 60:
            time.sleep(1)
        sub.take()
        phase("up", args.phase_s, mon, sub, rows)
        broker.pause()
        phase("stalled", args.phase_s, mon, sub, rows)
        broker.resume()
        phase("back", args.phase_s // 2, mon, sub, rows)
        broker.stop(kill=True)
        phase("killed", args.phase_s // 2, mon, sub, rows)
        broker.start()
        phase("again", args.phase_s // 2, mon, sub, rows)
        final = mon.poll() or {}
    finally:
        sub.close()
        sim.stop()
        if broker.proc is not None:
            broker.stop(kill=True)
    print("%d followers, MQTT with discovery, a subscriber to all of it; control period %s ms" % (
        sim.n, (final.get("loop") or {}).get("period_ms")))
    print("phase     s    longest gap_ms  median gap_ms  readings  messages the subscriber got")
    for name, s, top, med, n, got in rows:
        print("%-8s  %-4d %-15s %-14s %-9d %d" % (name, s, top, med, n, got))
    print("longest gap since the leader started: %s ms" % (final.get("loop") or {}).get("gap_max_ms"))
    dead = [n for n, p in sim.procs.items() if p.poll() not in (None, -9, -15)]
    if dead:
        print("stopped on their own: %s" % ", ".join(dead))
    log = (sim.work / "leader" / "log.txt").read_text()
    if "Traceback" in log:
        print("the leader's log has a traceback: %s" % (sim.work / "leader" / "log.txt"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
