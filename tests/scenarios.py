"""Hypothesis strategies for whole-site twin runs: random sites with cars that come and go
(a car with more phases may follow one with fewer), follower crashes at full current, leader
crashes and long partitions while cars leave and arrive, meters that go silent while the
other load rises, unknown rotations, up to four levels of fuses."""
from hypothesis import strategies as st

from sites import sites

DURATION_S = 240
# A rise of other load while the leader cannot reach a follower under that fuse is met by the
# follower's fallback only: 10 s of watchdog and the EV's 5 s (DESIGN.md). The invariants do
# not excuse it, so rises are kept out of each outage and the 16 s after it (docs/twin.md).
_OUTAGE_TAIL_S = 16
_DECLARED_S = 5  # core/leader.py METER_SILENT_MS: a silent meter's reading is trusted this long


def reserve(group):
    def amps(v):
        return [float(x) for x in v] if isinstance(v, list) else [float(v)] * 3
    if "reserve_a" in group:
        return amps(group["reserve_a"])
    return amps(group["limit_a"]) if group.get("meter") else [0.0, 0.0, 0.0]


def _car(draw, charger, arrive_s):
    n = charger["phases"]
    return {"charger": charger["id"], "arrive_s": arrive_s,
            "phases": 1 if n == 1 else draw(st.sampled_from([1, 2, 3])),
            "max_a": draw(st.sampled_from([10, 16, 32])), "soc": 0.3, "follow_s": [1, 5]}


@st.composite
def scenarios(draw, max_groups=5, max_chargers=24, max_depth=4, duration_s=DURATION_S):
    site = draw(sites(max_groups=max_groups, max_chargers=max_chargers, max_depth=max_depth))
    cars, partitions, faults = [], [], []
    for c in site["chargers"]:
        if not draw(st.booleans()):
            continue
        car = _car(draw, c, draw(st.integers(0, duration_s // 2)))
        cars.append(car)
        if draw(st.booleans()):
            # It leaves past the start period (its phases narrowed), and another car arrives,
            # perhaps with more phases, perhaps while its follower is cut off.
            car["leave_s"] = car["arrive_s"] + draw(st.integers(10, 100))
            nxt = _car(draw, c, car["leave_s"] + draw(st.integers(1, 20)))
            cars.append(nxt)
            if draw(st.booleans()):
                t0 = car["leave_s"] - draw(st.integers(0, 5))
                partitions.append([t0, t0 + draw(st.integers(2, 60)), c["id"]])
    if cars and draw(st.booleans()):
        # A follower crash, often while its car draws its most.
        faults.append({"kind": "follower_crash", "charger": draw(st.sampled_from(cars))["charger"],
                       "at_s": draw(st.integers(30, duration_s - 40)), "restart_s": draw(st.integers(5, 60))})
    outages = [(t0, t1) for t0, t1, _ in partitions]
    if draw(st.booleans()):
        at, back = draw(st.integers(30, duration_s - 40)), draw(st.integers(2, 200))
        faults.append({"kind": "leader_crash", "at_s": at, "restart_s": back})
        outages.append((at, at + back))
    if site["meters"] and draw(st.booleans()):
        faults.append({"kind": "meter_silent", "meter": draw(st.sampled_from(site["meters"]))["id"],
                       "at_s": draw(st.integers(30, duration_s - 40)), "for_s": draw(st.integers(5, 60))})
    loads = _loads(draw, site, faults, outages, duration_s)
    network = {"loss": draw(st.sampled_from([0, 0, 0.05, 0.3])), "dup": draw(st.sampled_from([0, 0.1])),
               "reorder": draw(st.sampled_from([0, 0.2])), "partitions": partitions}
    return {"site": site, "duration_s": duration_s, "step_ms": 200, "seed": draw(st.integers(0, 2**30)),
            "network": network, "loads": loads, "cars": cars, "faults": faults}


def _loads(draw, site, faults, outages, duration_s):
    # Other load within each group's reserve_a: the installer's promise of the worst case
    # where nothing measures it (no meter, or a silent one). Beyond it nothing can be safe.
    # Where a meter goes silent, the load often rises while it is, but not before the silence
    # is declared: the leader trusts a meter's last reading for 5 s (docs/leader.md, a known
    # limit), so no rise from a second before a silence to a second after it is declared.
    silent = {f["meter"]: (f["at_s"], f["at_s"] + f["for_s"]) for f in faults if f["kind"] == "meter_silent"}
    blind = [(t0 - 1, t0 + _DECLARED_S + 1) for t0, _ in silent.values()]
    loads = []
    for g in site["groups"]:
        worst = reserve(g)
        if max(worst) <= 0 or not draw(st.booleans()):
            continue
        times = [draw(st.integers(0, duration_s)) for _ in range(draw(st.integers(1, 4)))]
        if g.get("meter") in silent and draw(st.booleans()):
            t0, t1 = silent[g["meter"]]
            if t1 > t0 + _DECLARED_S + 1:
                times.append(draw(st.integers(t0 + _DECLARED_S + 2, t1)))
        times = sorted(t for t in times if not any(a - 1 <= t <= b + _OUTAGE_TAIL_S for a, b in outages)
                       and not any(a <= t <= b for a, b in blind))
        steps = [[t, [draw(st.integers(0, int(w))) for w in worst]] for t in times]
        if steps:
            loads.append({"group": g["id"], "profile": steps})
    return loads
