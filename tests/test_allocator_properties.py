"""Random sites through the firmware's allocator in the VM, checked against the rules."""
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import Fuses
from reference import Q, Reference
from sites import settled_states, sites, states

# make test tries 1,000 random sites (the suite's 12 minutes on two cores); make soak, 5,000.
RUNS = settings(max_examples=int(os.environ.get("AMPSHARE_SOAK_SITES", 1000)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _first_minute(state):
    # The reference knows the fuses and the sharing, not what cars want: every car here is in
    # its first minute, offered its maximum on every phase it is wired to. Demand and phases
    # in use are checked in test_demand.py.
    for ch in state.get("chargers", {}).values():
        ch["charging_s"] = min(ch.get("charging_s", 0), 59)
    return state


def moment():
    return sites().flatmap(lambda s: st.tuples(st.just(s), states(s).map(_first_minute)))


def allocate(vm, site, state):
    res = vm.call("allocate", site=site, state=state, again=True)
    ids = [c["id"] for c in site["chargers"]]
    return res, dict(zip(ids, res["out"])), dict(zip(ids, res["fallback"]))


def credited(site, state, res, out):
    """What the allocator credited each charger of unknown wiring, checked against the rule:
    never more than the reference allows, never more than it was given (the others may
    count on its draw only as far as it is counted at)."""
    ref = Reference(site, state)
    got = dict(zip([c["id"] for c in site["chargers"]], res["credited"]))
    for cid, x in got.items():
        if ref.chargers[cid]["wire"] is None and ref.unsure(cid):
            assert 0 <= x <= min(ref.most_credit(cid), out[cid]), ("credited", cid, x, out[cid])
        else:
            assert x == 0, ("credited", cid, x)
    return got


@RUNS
@given(moment())
def test_random_sites_keep_every_rule(vm, case):
    site, state = case
    res, out, fb = allocate(vm, site, state)
    ref = Reference(site, state, credited(site, state, res, out))
    cap = ref.capacities()
    tot = ref.totals(out)

    # Every fuse, every phase: within what its other load leaves (nothing, when that is < 0).
    for k, used in tot.items():
        assert used <= max(0, cap[k]), ("overload", k, used, cap[k])

    for cid, a in out.items():
        c = ref.chargers[cid]
        # 0 or between the minimum and the maximum; nothing for a car that does not ask.
        assert a == 0 or c["lo"] <= a <= c["hi"], (cid, a, c)
        assert c["wants"] or a == 0, (cid, a)
        # Efficient: below its maximum only if some fuse it uses lacks the room to give more.
        if c["wants"] and a < c["hi"]:
            need = Q if a else c["lo"]
            assert any(cap[k] - tot[k] < need for k in ref.uses(cid)), ("idle room", cid, a)

    # Max-min fair: a charger held below its maximum has a bottleneck, a nearly full fuse
    # phase on which nobody has more than it (one step of 0.1 A aside) unless its own
    # minimum puts it there.
    users = {k: [cid for cid in out if k in ref.uses(cid)] for k in cap}
    for cid, a in out.items():
        if a and a < ref.chargers[cid]["hi"]:
            assert any(cap[k] - tot[k] < Q * len(users[k]) and
                       all(out[d] <= max(a + Q, ref.chargers[d]["lo"]) for d in users[k])
                       for k in ref.uses(cid)), ("no bottleneck", cid, a)

    # Fallbacks: everyone at its fallback, every group at its reserve: nothing overloaded.
    capfb = ref.capacities(metered=False)
    totfb = ref.totals(fb)
    for k, used in totfb.items():
        assert used <= max(0, capfb[k]), ("fallback overload", k, used, capfb[k])
    for cid, f in fb.items():
        assert f == 0 or ref.chargers[cid]["lo"] <= f <= out[cid], (cid, f, out[cid])
    # And as a fuse sees it.
    fuses = Fuses(site, state)
    assert fuses.overloads(out) == [] and fuses.overloads(fb, fallback=True) == []

    # Bit for bit the same, whether from a fresh allocator or the same one again.
    assert res["again"]["out"] == res["out"] and res["again"]["fallback"] == res["fallback"]
    # Every integer the allocator held stays a small int on the ESP32.
    assert res["peak"] < 2**30


def test_a_fresh_allocator_gives_the_same_answer(vm):
    # Determinism across processes too: two workers, one site, identical bits.
    from vm import VM
    site = {"version": 1, "groups": [{"id": "m", "limit_a": [40, 31.5, 22]}],
            "chargers": [{"id": "c%d" % i, "group": "m", "max_a": 16 + i, "phases": 1 + 2 * (i % 2),
                          "rotation": ["L123", "L231", "unknown"][i % 3]} for i in range(9)]}
    state = {"chargers": {"c%d" % i: {"state": "C", "charging_s": 7 * i} for i in range(9)}}
    other = VM()
    try:
        assert other.call("allocate", site=site, state=state) == vm.call("allocate", site=site, state=state)
    finally:
        other.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_priority_first_then_the_fewest_chargers_pause(vm, data):
    # Small sites, so that every subset can be tried. Level by level from the highest
    # priority: beside the higher levels as the allocator runs them, no larger set of this
    # level could run at its minimum than the allocator runs.
    site = data.draw(sites(max_groups=4, max_chargers=7, max_depth=3))
    state = _first_minute(data.draw(states(site)))
    res, out, _ = allocate(vm, site, state)
    ref = Reference(site, state, credited(site, state, res, out))
    cap = ref.capacities()
    above = []
    for level in sorted({c["prio"] for c in ref.chargers.values()}, reverse=True):
        mine = [cid for cid, c in ref.chargers.items() if c["prio"] == level]
        running = [cid for cid in mine if out[cid]]
        assert len(running) == ref.most_servable(cap, among=mine, beside=above), (level, out)
        above += running


def test_a_high_priority_charger_is_not_paused_for_two_of_lower_priority(vm):
    # 20 A: the priority-9 charger's 16 A minimum, or two priority-0 chargers at 6 A.
    site = {"version": 1, "groups": [{"id": "m", "limit_a": 20}],
            "chargers": [{"id": "boss", "group": "m", "max_a": 32, "min_a": 16, "priority": 9},
                         {"id": "a", "group": "m", "max_a": 32}, {"id": "b", "group": "m", "max_a": 32}]}
    state = {"chargers": {c: {"state": "C"} for c in ("boss", "a", "b")}}
    _, out, _ = allocate(vm, site, state)
    assert out == {"boss": 20000, "a": 0, "b": 0}, out
    # The same three of equal priority: the fewest pause, two run.
    del site["chargers"][0]["priority"]
    _, out, _ = allocate(vm, site, state)
    assert out == {"boss": 0, "a": 10000, "b": 10000}, out


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sites().flatmap(lambda s: st.tuples(st.just(s), settled_states(s))))
def test_cars_past_their_first_minute_overload_no_fuse_on_the_phases_they_draw(vm, case):
    # Past the start period a 1- or 2-phase car on a 3-phase charger is counted on the phases
    # it draws on, and the others go to other chargers; its fallback still counts on every
    # phase its charger is wired to. Checked as a fuse would see it (oracle.py).
    site, state = case
    res, out, fb = allocate(vm, site, state)
    fuses = Fuses(site, state)
    assert fuses.overloads(out) == [], out
    assert fuses.overloads(fb, fallback=True) == [], fb
    ref = Reference(site, state)
    for cid, a in out.items():
        c = ref.chargers[cid]
        assert a == 0 or c["lo"] <= a <= c["hi"], (cid, a, c)
        assert fb[cid] == 0 or c["lo"] <= fb[cid] <= a, (cid, fb[cid], a)
    assert res["peak"] < 2**30


@st.composite
def smart_moment(draw):
    # The same random sites, some groups with an unbalance limit and some chargers in pv or
    # min_pv: these lower chargers on purpose (no longer max-min fair), but never a fuse's
    # safety, the minimum, or the fallbacks'.
    site, state = draw(moment())
    for g in site["groups"]:
        if draw(st.integers(0, 2)) == 0:
            g["unbalance_limit_a"] = draw(st.integers(6, 40))
    for c in site["chargers"]:
        if c.get("mode") != "off" and draw(st.integers(0, 2)) == 0:
            c["mode"] = draw(st.sampled_from(["pv", "min_pv"]))
    return site, state


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(smart_moment())
def test_surplus_and_unbalance_never_overload_a_fuse(vm, case):
    site, state = case
    ref = Reference(site, state)
    res, out, fb = allocate(vm, site, state)
    cap, tot = ref.capacities(), ref.totals(out)
    for k, used in tot.items():
        assert used <= max(0, cap[k]), ("overload", k, used, cap[k])
    for cid, a in out.items():
        c = ref.chargers[cid]
        assert a == 0 or c["lo"] <= a <= c["hi"], (cid, a, c)
    capfb, totfb = ref.capacities(metered=False), ref.totals(fb)
    for k, used in totfb.items():
        assert used <= max(0, capfb[k]), ("fallback overload", k, used, capfb[k])
    for cid, f in fb.items():
        assert f == 0 or ref.chargers[cid]["lo"] <= f <= out[cid], (cid, f, out[cid])
    assert res["peak"] < 2**30
