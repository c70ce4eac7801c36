# make bench-policy: how close each sharing comes to the most any controller could deliver.
# For every scenario (the example days and seeded mixed ones, tools/bench_scenarios.py) the
# twin runs once per policy (ampshare, and the peers of tools/policies.py) with the same
# plant, cars and network; tools/bound.py gives the LP bound. Prints a table and writes
# build/bench-policy.json.
#   python tools/bench_policy.py [--quick] [--seeds N] [--jobs N] [--out FILE]
import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_scenarios  # noqa: E402
import bound  # noqa: E402
import port  # noqa: E402

POLICIES = ("ampshare", "static", "warp", "smartevse")
# The example days the issue measured, each a site where cars share a binding fuse.
DAYS = ("home-evening", "demand", "taper-wake", "small-business-pv", "garage-turns-day", "garage-day")
QUICK = ("home-evening", "demand", "taper-wake")


def twin(path, policy):
    return bound.port_json("tools/twin.py", *([] if policy == "ampshare" else ["--policy", policy]), path,
                           flags=port.native())


def bounds(path):
    """The bound as configured and with the real wiring, from one reading of the scenario."""
    data = bound.inputs(path)
    return bound.solve(data), bound.solve(data, "real")


def jain(xs):
    xs = [x for x in xs if x is not None]
    sq = sum(x * x for x in xs)
    return round(sum(xs) ** 2 / (len(xs) * sq), 3) if sq else None


def needs(scn):
    """Per charger, the energy its cars wanted (to full), Wh."""
    out = {}
    for car in scn.get("cars", []):
        cap = car.get("capacity_kwh", 60) * 1000
        out[car["charger"]] = out.get(car["charger"], 0) + cap * (1 - car.get("soc", 0.3))
    return out


def measure(scn, summary, bound_wh):
    need = needs(scn)
    got = summary["energy_wh"]
    wh = sum(got.values())
    # Fairness over the cars' share of what they wanted: equal need, equal energy is 1.0.
    fair = jain([min(1.0, got[c] / need[c]) for c in need if need[c] > 0])
    return {"kwh": round(wh / 1000, 2), "of_bound": round(wh / bound_wh, 3) if bound_wh else None,
            "unmet_kwh": round(sum(max(0, need[c] - got.get(c, 0)) for c in need) / 1000, 2),
            "fairness": fair, "pauses": sum(summary["pauses"].values()),
            "starts": sum(summary["starts"].values()),
            "phase_switches": sum(summary["phase_switches"].values()),
            "ev_overload_As": summary["invariants"]["realized_ev_As"],
            "longest_overload_s": summary["longest_overload_s"],
            "invariants_As": summary["invariants"]["fallback_As"] + summary["invariants"]["make_before_break_As"]}


def scenarios(args, tmp):
    out = []
    for name in (QUICK if args.quick else DAYS):
        out.append((name, os.path.join(ROOT, "examples", "scenarios", name + ".json")))
    for seed in range(1, args.seeds + 1):
        path = os.path.join(tmp, "mixed-%d.json" % seed)
        with open(path, "w") as f:
            json.dump(bench_scenarios.scenario(seed), f)
        out.append(("mixed-%d" % seed, path))
    return out


def run(args):
    with tempfile.TemporaryDirectory() as tmp:
        scns = scenarios(args, tmp)
        jobs = [(name, path, pol) for name, path in scns for pol in POLICIES]
        with ThreadPoolExecutor(args.jobs) as pool:
            lps = {name: pool.submit(bounds, path) for name, path in scns}
            runs = {(name, pol): pool.submit(twin, path, pol) for name, path, pol in jobs}
            result = {}
            for name, path in scns:
                with open(path) as f:
                    scn = json.load(f)
                b, real = lps[name].result()
                row = {"bound_kwh": round(b["wh"] / 1000, 2), "bound_real_wiring_kwh": round(real["wh"] / 1000, 2),
                       "wanted_kwh": round(sum(needs(scn).values()) / 1000, 2), "policies": {}}
                for pol in POLICIES:
                    row["policies"][pol] = measure(scn, runs[(name, pol)].result(), b["wh"])
                result[name] = row
    return result


def table(result):
    lines = ["| scenario | bound kWh (real wiring) | policy | kWh | of bound | unmet kWh | fairness | pauses | starts | EV overload A·s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in result.items():
        for i, (pol, m) in enumerate(row["policies"].items()):
            lines.append("| %s | %s | %s | %.2f | %.3f | %.2f | %s | %d | %d | %s |" % (
                name if not i else "", "%.2f (%.2f)" % (row["bound_kwh"], row["bound_real_wiring_kwh"]) if not i else "",
                pol, m["kwh"], m["of_bound"] or 0, m["unmet_kwh"], m["fairness"], m["pauses"], m["starts"],
                m["ev_overload_As"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="three short example days only")
    ap.add_argument("--seeds", type=int, default=3, help="mixed scenarios (tools/bench_scenarios.py)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench-policy.json"))
    args = ap.parse_args()
    t0 = time.monotonic()
    result = run(args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(table(result))
    print("\n%d scenarios x %d policies in %.0f s; %s" % (len(result), len(POLICIES), time.monotonic() - t0, args.out))


if __name__ == "__main__":
    main()
