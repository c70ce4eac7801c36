#!/usr/bin/env python3
"""make bench-react: from a 40 A step of other load at the plant's meter to every follower's
pilot reduced, over real UDP, with 3 and with 64 followers (each its own process). Prints the
median and the worst over the trials, in ms, as the plant sees the pilots.

    python3 tools/bench_react.py [--trials 5]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim import ROOT, Sim  # noqa: E402

SETUPS = [("examples/small-business.json", 3, "main", 5), ("examples/garage-64.json", 64, "main", 20)]


def offers(sim, ids):
    st = sim.status()["chargers"]
    return [st[c]["offered_ma"] for c in ids]


def settle(sim, ids, quiet_s=6, limit_s=180):
    last, since, end = None, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < end:
        now = offers(sim, ids)
        if now != last:
            last, since = now, time.monotonic()
        elif all(now) and time.monotonic() - since >= quiet_s:
            return now
        time.sleep(0.5)
    raise SystemExit("the offers did not settle within %d s: %s" % (limit_s, last))


def trial(sim, ids, group, base_a):
    sim.plant({"cmd": "load", "group": group, "amps": base_a + 40})
    end = time.monotonic() + 15
    while time.monotonic() < end:
        st = sim.status()["chargers"]
        got = [st[c]["reduced_ms"] for c in ids]
        if all(g is not None for g in got):
            return max(got)
        time.sleep(0.1)
    return None


def run(site, n, group, base_a, trials):
    cars = [{"charger": c["id"], "arrive_s": 1, "phases": c.get("phases", 3), "max_a": 32, "soc": 0.2,
             "follow_ms": 1000} for c in Sim(ROOT / site).site["chargers"][:n]]
    sim = Sim(ROOT / site, n, work=ROOT / "build" / "bench-react", base_port=26500, cars=cars,
              loads=[{"group": group, "profile": [[0, 0]]}])
    ids = [c["charger"] for c in cars]
    times = []
    try:
        sim.start_all()
        sim.plant({"cmd": "load", "group": group, "amps": base_a})
        settle(sim, ids)
        for _ in range(trials):
            times.append(trial(sim, ids, group, base_a))
            sim.plant({"cmd": "load", "group": group, "amps": base_a})
            settle(sim, ids)
    finally:
        sim.stop()
    return times


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args(argv[1:])
    print("followers  trials  median_ms  worst_ms")
    for site, n, group, base_a in SETUPS:
        times = run(site, n, group, base_a, args.trials)
        ok = [t for t in times if t is not None]
        missed = len(times) - len(ok)
        print("%9d  %6d  %9s  %8s%s" % (n, len(times), int(statistics.median(ok)) if ok else "-",
                                         max(ok) if ok else "-", "  (%d not reduced within 15 s)" % missed if missed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
