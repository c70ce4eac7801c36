"""Hypothesis strategies: random sites and random moments at those sites."""
from hypothesis import strategies as st

ROTATIONS = ["L123", "L132", "L213", "L231", "L312", "L321", "unknown"]


def amps(lo, hi):
    # Configured amps: whole, or with one decimal.
    return st.one_of(st.integers(lo, hi), st.integers(lo * 10, hi * 10).map(lambda t: t / 10))


def reading(lo, hi):
    return st.integers(lo * 1000, hi * 1000).map(lambda m: m / 1000)


def limit():
    return st.one_of(amps(0, 250), st.lists(amps(0, 250), min_size=3, max_size=3))


@st.composite
def sites(draw, max_groups=12, max_chargers=64, max_depth=4):
    n_groups = draw(st.integers(1, max_groups))
    groups, depth = [], {}
    meters = []
    for i in range(n_groups):
        g = {"id": "g%d" % i, "limit_a": draw(limit())}
        if i:
            parents = [x["id"] for x in groups if depth[x["id"]] < max_depth]
            g["parent"] = draw(st.sampled_from(parents))
            depth[g["id"]] = depth[g["parent"]] + 1
        else:
            depth[g["id"]] = 1
        if draw(st.booleans()):
            meters.append({"id": "m%d" % i, "source": "modbus", "address": 1 + len(meters)})
            g["meter"] = meters[-1]["id"]
        if draw(st.integers(0, 3)) == 0:
            g["reserve_a"] = draw(st.one_of(amps(0, 60), st.lists(amps(0, 60), min_size=3, max_size=3)))
        groups.append(g)
    site_min = draw(st.sampled_from([6, 6, 6, 8, 10, 16]))
    chargers = []
    for i in range(draw(st.integers(1, max_chargers))):
        lo = site_min
        c = {"id": "c%d" % i, "group": draw(st.sampled_from(groups))["id"],
             "phases": draw(st.sampled_from([1, 3])), "rotation": draw(st.sampled_from(ROTATIONS))}
        if draw(st.integers(0, 4)) == 0:
            c["min_a"] = draw(amps(6, 20))
            lo = max(lo, c["min_a"])
        c["max_a"] = draw(amps(int(lo) + 1, 80))
        if draw(st.integers(0, 4)) == 0:
            c["connector_max_a"] = draw(amps(int(lo) + 1, 80))
        if draw(st.integers(0, 3)) == 0:
            c["priority"] = draw(st.integers(0, 3))
        if draw(st.integers(0, 9)) == 0:
            c["mode"] = "off"
        chargers.append(c)
    return {"version": 1, "min_current_a": site_min, "groups": groups, "meters": meters,
            "chargers": chargers}


@st.composite
def states(draw, site):
    meters = {}
    for m in site["meters"]:
        if draw(st.integers(0, 6)):  # now and then a meter is silent
            meters[m["id"]] = draw(st.lists(reading(-150, 300), min_size=3, max_size=3))
    chargers = {}
    for c in site["chargers"]:
        letter = draw(st.sampled_from("AABBCCCCDEF"))
        ch = {"state": letter, "charging_s": draw(st.integers(0, 20000))}
        if draw(st.booleans()):
            n = c["phases"]
            ch["measured_a"] = draw(st.lists(reading(0, 90), min_size=n, max_size=n))
        if draw(st.booleans()):
            ch["offered_a"] = draw(reading(0, 80))
        chargers[c["id"]] = ch
    return {"meters": meters, "chargers": chargers}


@st.composite
def settled_states(draw, site):
    """Moments past many cars' first minute: a car draws on 1, 2 or 3 of a 3-phase charger's
    phases, measured clearly (0 A, or 2 A and more: a charger meter's noise is far below)."""
    state = draw(states(site))
    for c in site["chargers"]:
        ch = state["chargers"][c["id"]]
        ch["charging_s"] = draw(st.sampled_from([0, 30, 59, 60, 61, 600, 20000]))
        if draw(st.integers(0, 3)):
            n = c["phases"]
            used = draw(st.integers(1, n))
            live = draw(st.permutations(range(n)))[:used]
            ch["measured_a"] = [draw(reading(2, 80)) if k in live else 0 for k in range(n)]
        else:
            ch.pop("measured_a", None)  # a charger without a meter
    return state
