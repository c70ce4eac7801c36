# The most energy any controller could give a scenario's cars: a linear program over the
# scenario (scipy's HiGHS), as if the future were known. Per car and step (30 s) one current,
# drawn on each of the car's phases, under:
#   - every fuse on every phase, less what the other load takes of it (the plant's model,
#     tools/bound_inputs.py), as a mean over the step;
#   - the car's and the charger's maximum; the car present and awake for part of the step
#     gets that part of it;
#   - the car's taper (plant.Car.limit: from 80 % its limit falls linearly to 2 A at full),
#     as a linear cap on the current from the energy already delivered;
#   - the car's need: it stops when full.
# Relaxed: the minimum current (a car may take any current down to 0), the 0.5 A steps, the
# EVs' 5 s to follow, the network, faults and external limits. So every controller that keeps
# the fuses delivers at most this; one that overloads a fuse may deliver more.
#
# Wiring: "configured" counts a car on a charger of unknown rotation on all three site phases
# (as the product must: it cannot know which it draws on); "real" uses the wiring the plant
# has, for reference.
#   python tools/bound.py SCENARIO.json [configured|real]
import json
import os
import subprocess
import sys

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from port import micropython  # noqa: E402
TAPER_FROM = 0.8  # plant.TAPER_FROM, per one
TAPER_END_A = 2.0  # plant.TAPER_END_MA


def port_json(*args, flags=()):
    """What a tool run in the unix port (from the project's root, with this tree's lib/) prints,
    read as JSON."""
    env = dict(os.environ, MICROPYPATH=".frozen:" + os.path.join(ROOT, "lib"))
    out = subprocess.run([micropython()] + list(flags) + list(args), cwd=ROOT, env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def inputs(scenario_path):
    """The scenario as the plant sees it (bound_inputs.py, in the unix port)."""
    return port_json(os.path.join(HERE, "bound_inputs.py"), scenario_path)


def _overlap(a0, a1, b0, b1):
    return max(0, min(a1, b1) - max(a0, b0))


def _subtree_of(groups):
    # For each group, the groups at or below it: a charger in any of them uses its fuse.
    under = [set([g]) for g in range(len(groups))]
    for g in range(len(groups)):
        p = groups[g]["parent"]
        while p >= 0:
            under[p].add(g)
            p = groups[p]["parent"]
    return under


def solve(data, wiring="configured"):
    """{"wh": total, "cars": [Wh per car, in the scenario's order], "need_wh": [...]}."""
    step, steps, volt = data["step_s"], data["steps"], data["voltage"]
    chargers = {ch["id"]: ch for ch in data["chargers"]}
    cidx = {ch["id"]: i for i, ch in enumerate(data["chargers"])}
    wh_per_a = volt * step / 3600.0  # Wh for 1 A on one phase over one step
    cols = []  # (car, step, upper bound A)
    start = []  # the first column of each car
    need, cars = [], data["cars"]
    for j, car in enumerate(cars):
        ch = chargers[car["charger"]]
        arrive, leave = car.get("arrive_s", 0), car.get("leave_s", data["duration_s"])
        sleep0, sleep1 = car.get("asleep_s", [0, 0])
        cap = car.get("capacity_kwh", 60) * 1000.0
        need.append(cap * (1 - car.get("soc", 0.3)))
        top = min(car.get("max_a", 16), ch["max_ma"] / 1000.0)
        start.append(len(cols))
        for t in range(steps):
            t0, t1 = t * step, min(data["duration_s"], (t + 1) * step)
            awake = _overlap(t0, t1, arrive, leave) - _overlap(t0, t1, max(arrive, sleep0), min(leave, sleep1))
            if awake > 0:
                cols.append((j, t, top * awake / step))
    n = len(cols)
    if not n:
        return {"wh": 0.0, "cars": [0.0] * len(cars), "need_wh": need}
    phases = [car.get("phases", 3) for car in cars]
    # Variables: a current per column, then the energy a car had before each of its columns.
    c = np.zeros(2 * n)
    for x, (j, t, _) in enumerate(cols):
        c[x] = -wh_per_a * phases[j]
    rows, vals, colidx, rhs = [], [], [], []
    eq_rows, eq_vals, eq_cols, eq_rhs = [], [], [], []
    r = 0
    under = _subtree_of(data["groups"])
    # Fuses: per (group, phase, step), the cars whose charger is under the group and that are
    # counted on that phase.
    counted = []
    for j, car in enumerate(cars):
        ch = chargers[car["charger"]]
        if wiring == "real":
            on = ch["real"][:phases[j]]
        elif ch["configured"] is None:
            on = [0, 1, 2] if phases[j] < 3 else ch["real"][:3]
        else:
            on = ch["configured"][:phases[j]]
        counted.append((ch["group"], set(on)))
    by_step = {}
    for x, (j, t, _) in enumerate(cols):
        by_step.setdefault(t, []).append(x)
    for g in range(len(data["groups"])):
        for p in range(3):
            room = data["room_ma"][g * 3 + p]
            for t, xs in by_step.items():
                users = [x for x in xs if counted[cols[x][0]][0] in under[g] and p in counted[cols[x][0]][1]]
                if not users:
                    continue
                for x in users:
                    rows.append(r)
                    colidx.append(x)
                    vals.append(1.0)
                rhs.append(room[t] / 1000.0)
                r += 1
    # Taper and need, on the energy before each column: E[first] = 0, E[x+1] = E[x] + Wh(x).
    ends = start[1:] + [n]
    for j, car in enumerate(cars):
        if start[j] == ends[j]:
            continue
        cap = car.get("capacity_kwh", 60) * 1000.0
        e0 = cap * car.get("soc", 0.3)
        top = car.get("max_a", 16)
        slope = (top - TAPER_END_A) / ((1 - TAPER_FROM) * cap)  # A less per Wh past 80 %
        for x in range(start[j], ends[j]):
            if x == start[j]:
                eq_rows.append(len(eq_rhs))
                eq_cols.append(n + x)
                eq_vals.append(1.0)
                eq_rhs.append(0.0)
            else:
                k = len(eq_rhs)
                eq_rows += [k, k, k]
                eq_cols += [n + x, n + x - 1, x - 1]
                eq_vals += [1.0, -1.0, -wh_per_a * phases[j]]
                eq_rhs.append(0.0)
            # i + slope * (e0 + E) <= top + slope * TAPER_FROM * cap
            rows += [r, r]
            colidx += [x, n + x]
            vals += [1.0, slope]
            rhs.append(top + slope * (TAPER_FROM * cap - e0))
            r += 1
        # Full: what it had before its last column and what that column gives, at most its need.
        last = ends[j] - 1
        rows += [r, r]
        colidx += [n + last, last]
        vals += [1.0, wh_per_a * phases[j]]
        rhs.append(cap - e0)
        r += 1
    a_ub = coo_matrix((vals, (rows, colidx)), shape=(r, 2 * n)).tocsr()
    a_eq = coo_matrix((eq_vals, (eq_rows, eq_cols)), shape=(len(eq_rhs), 2 * n)).tocsr()
    bounds = [(0, ub) for _, _, ub in cols] + [(0, None)] * n
    res = linprog(c, A_ub=a_ub, b_ub=np.array(rhs), A_eq=a_eq, b_eq=np.array(eq_rhs), bounds=bounds,
                  method="highs")
    if res.status != 0:
        raise RuntimeError("the bound's LP did not solve: %s" % res.message)
    per_car = [0.0] * len(cars)
    for x, (j, t, _) in enumerate(cols):
        per_car[j] += res.x[x] * wh_per_a * phases[j]
    return {"wh": -res.fun, "cars": per_car, "need_wh": need}


def main(argv):
    if len(argv) < 2:
        print("usage: bound.py SCENARIO.json [configured|real]", file=sys.stderr)
        return 2
    res = solve(inputs(argv[1]), argv[2] if len(argv) > 2 else "configured")
    print(json.dumps({"wh": round(res["wh"]), "cars_wh": [round(w) for w in res["cars"]],
                      "need_wh": [round(w) for w in res["need_wh"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
