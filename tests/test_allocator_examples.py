"""Worked examples: the figures an installer would check by hand."""
import json

import pytest


def site(groups, chargers, meters=(), min_a=6):
    return {"version": 1, "min_current_a": min_a, "groups": groups,
            "meters": [{"id": m, "source": "modbus"} for m in meters], "chargers": chargers}


def charger(cid, group="main", max_a=32, phases=3, rotation="L123", **extra):
    return dict(id=cid, group=group, max_a=max_a, phases=phases, rotation=rotation, **extra)


def amps(vm, cfg, state):
    snap = json.loads(vm.call("snapshot", site=cfg, state=state)["json"])
    return {cid: c["current_a"] for cid, c in snap["chargers"].items()}


def cars(*ids, state="C", **extra):
    return {cid: dict(state=state, **extra) for cid in ids}


def test_two_chargers_share_40_a(vm):
    cfg = site([{"id": "main", "limit_a": 40}], [charger("wb1"), charger("wb2")])
    assert amps(vm, cfg, {"chargers": cars("wb1", "wb2")}) == {"wb1": 20.0, "wb2": 20.0}
    # One car alone: its own maximum caps it.
    assert amps(vm, cfg, {"chargers": cars("wb1")}) == {"wb1": 32.0, "wb2": 0.0}


def test_other_load_at_the_meter_leaves_the_rest(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid"}], [charger("wb1"), charger("wb2")],
               meters=["grid"])
    state = {"meters": {"grid": [10, 10, 10]}, "chargers": cars("wb1", "wb2", measured_a=[0, 0, 0])}
    assert amps(vm, cfg, state) == {"wb1": 15.0, "wb2": 15.0}
    # The meter also sees the cars: 10 A of house plus 2 x 15 A of cars is the same site.
    state = {"meters": {"grid": [40, 40, 40]}, "chargers": cars("wb1", "wb2", measured_a=[15, 15, 15])}
    assert amps(vm, cfg, state) == {"wb1": 15.0, "wb2": 15.0}


def test_a_30_a_subgroup_under_a_100_a_main_with_load_at_the_main(vm):
    cfg = site([{"id": "main", "limit_a": 100, "meter": "grid"},
                {"id": "carport", "parent": "main", "limit_a": 30}],
               [charger("c1", "carport"), charger("c2", "carport"), charger("m1", "main")], meters=["grid"])
    # Light load: the carport's own 30 A binds its two chargers, the main one gets its max.
    state = {"meters": {"grid": [20, 20, 20]}, "chargers": cars("c1", "c2", "m1", measured_a=[0, 0, 0])}
    assert amps(vm, cfg, state) == {"c1": 15.0, "c2": 15.0, "m1": 32.0}
    # 80 A of other load at the main leaves 20 A for all three: the main binds.
    state["meters"]["grid"] = [80, 80, 80]
    out = amps(vm, cfg, state)
    assert sorted(out.values()) == [6.6, 6.7, 6.7]  # 20 A in three, to the 0.1 A
    # 90 A leaves 10 A: one charger at the minimum, the other two pause.
    state["meters"]["grid"] = [90, 90, 90]
    assert sorted(amps(vm, cfg, state).values()) == [0.0, 0.0, 10.0]


def test_six_chargers_on_30_a_at_6_a_minimum(vm):
    ids = ["wb%d" % i for i in range(6)]
    cfg = site([{"id": "main", "limit_a": 30}], [charger(i) for i in ids])
    # wb5 has charged longest: it is the one that pauses.
    state = {"chargers": {cid: {"state": "C", "charging_s": 100 * k} for k, cid in enumerate(ids)}}
    out = amps(vm, cfg, state)
    assert out == {"wb0": 6.0, "wb1": 6.0, "wb2": 6.0, "wb3": 6.0, "wb4": 6.0, "wb5": 0.0}
    # Of two that have not charged yet, the one that has waited longer runs.
    state["chargers"]["wb0"] = {"state": "B", "waiting_s": 30}
    state["chargers"]["wb5"] = {"state": "B", "waiting_s": 900}
    out = amps(vm, cfg, state)
    assert out["wb5"] == 6.0 and out["wb4"] == 0.0 and out["wb0"] == 6.0
    state["chargers"]["wb5"] = {"state": "C", "charging_s": 500}
    # Priority comes before waiting time.
    cfg["chargers"][5]["priority"] = 1
    out = amps(vm, cfg, state)
    assert out["wb5"] == 6.0 and out["wb4"] == 0.0


def test_three_1_phase_chargers_on_16_a_with_known_rotation(vm):
    cfg = site([{"id": "main", "limit_a": 16}],
               [charger("a", phases=1, rotation="L123"), charger("b", phases=1, rotation="L231"),
                charger("c", phases=1, rotation="L312")])
    # Each on a different site phase: each gets the whole 16 A of its phase.
    assert amps(vm, cfg, {"chargers": cars("a", "b", "c")}) == {"a": 16.0, "b": 16.0, "c": 16.0}


def test_three_1_phase_chargers_on_16_a_with_unknown_rotation(vm):
    cfg = site([{"id": "main", "limit_a": 16}],
               [charger(x, phases=1, rotation="unknown") for x in "abc"])
    # Each may be on any phase, so each counts on all three: two fit at 8 A, one pauses.
    out = amps(vm, cfg, {"chargers": cars("a", "b", "c")})
    assert sorted(out.values()) == [0.0, 8.0, 8.0]


def test_a_unit_breaker_caps_one_so_the_others_get_more(vm):
    cfg = site([{"id": "main", "limit_a": 60}],
               [charger("small", max_a=10), charger("b"), charger("c", max_a=32, connector_max_a=20)])
    assert amps(vm, cfg, {"chargers": cars("small", "b", "c")}) == {"small": 10.0, "b": 30.0, "c": 20.0}


def test_a_silent_meter_counts_its_reserve(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid", "reserve_a": 12}],
               [charger("wb1"), charger("wb2")], meters=["grid"])
    state = {"chargers": cars("wb1", "wb2")}  # no reading for "grid"
    assert amps(vm, cfg, state) == {"wb1": 14.0, "wb2": 14.0}
    # Without a reserve the whole limit is assumed: the chargers pause.
    del cfg["groups"][0]["reserve_a"]
    assert amps(vm, cfg, state) == {"wb1": 0.0, "wb2": 0.0}


def test_export_helps_only_as_far_as_the_fuse(vm):
    cfg = site([{"id": "main", "limit_a": 40},
                {"id": "barn", "parent": "main", "limit_a": 20, "meter": "barn"}],
               [charger("m1", max_a=80), charger("b1", "barn", max_a=6)], meters=["barn"])
    # The barn exports 50 A of PV: its own 20 A fuse lets only 20 A of that help the main.
    state = {"meters": {"barn": [-50, -50, -50]}, "chargers": cars("m1", "b1", measured_a=[0, 0, 0])}
    assert amps(vm, cfg, state) == {"m1": 54.0, "b1": 6.0}


def test_export_clipped_below_a_metered_child_still_counts_above_it(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid"},
                {"id": "hall", "parent": "main", "limit_a": 100, "meter": "hall"},
                {"id": "roof", "parent": "hall", "limit_a": 20, "meter": "roof"}],
               [charger("m1", max_a=80)], meters=["grid", "hall", "roof"])
    # The roof exports 50 A but its 20 A fuse lets only 20 A count; the hall and the grid
    # meters see all 50 A. Only 20 A of export may help the main: 40 + 20 = 60 A.
    meters = {"grid": [-50, -50, -50], "hall": [-50, -50, -50], "roof": [-50, -50, -50]}
    state = {"meters": meters, "chargers": cars("m1", measured_a=[0, 0, 0])}
    assert amps(vm, cfg, state) == {"m1": 60.0}


def test_a_1_phase_charger_of_unknown_wiring_is_credited_on_every_phase(vm):
    cfg = site([{"id": "main", "limit_a": 32, "meter": "grid"}],
               [charger("u1", phases=1, rotation="unknown")], meters=["grid"])
    # It draws 20 A on one phase the meter shows, which one is not known. Counted on all three
    # at its offer, its 20 A come off all three: 32 A (not 12 A, its own draw counted twice).
    state = {"meters": {"grid": [20, 0, 0]}, "chargers": cars("u1", measured_a=20)}
    assert amps(vm, cfg, state) == {"u1": 32.0}


def _unknown_beside_known(vm, limit_a, meter, u1_a, rotation, k1_offered_a, k1_a):
    # u1: 1-phase, wiring unknown, 16 A at most, offered 16 A, drawing u1_a; k1: 1-phase on
    # `rotation`, offered and drawing as given. One metered fuse.
    cfg = site([{"id": "main", "limit_a": limit_a, "meter": "grid"}],
               [charger("u1", phases=1, rotation="unknown", max_a=16),
                charger("k1", phases=1, rotation=rotation)], meters=["grid"])
    state = {"meters": {"grid": meter},
             "chargers": {"u1": {"state": "C", "offered_a": 16, "measured_a": u1_a},
                          "k1": {"state": "C", "offered_a": k1_offered_a, "measured_a": k1_a}}}
    return amps(vm, cfg, state)


def test_the_credit_of_unknown_wiring_spends_only_its_headroom(vm):
    # u1 draws 10 A of 16 A offered; k1 draws 12 A on site L2. The meter: [10, 22, 0].
    # Credited 10 A everywhere, u1 is counted on all three: L2 binds, 16 A each (crediting
    # nothing would give 11 A each). As a fuse sees it, whichever phase u1 is on: on L1, L2
    # carries 10 A of other load + k1's 16 = 26 A; on L2, its 10 A were there and L2 carries
    # 0 + 16 + 16 = 32 A; on L3, L2 as on L1 and L3 16 A. Never above 32 A.
    assert _unknown_beside_known(vm, 32, [10, 22, 0], 10, "L231", 16, 12) == {"u1": 16.0, "k1": 16.0}


def test_a_charger_of_unknown_wiring_given_less_than_it_draws_frees_nothing_elsewhere(vm):
    # u1 draws 16 A; the meter shows it on L2 (26 A on a 20 A fuse: it must come down).
    # Credited its 16 A on L1 as well, k1 on L1 would be given 16 A for the room u1's
    # decrease seems to free there; but u1 is not on L1: 10 A of other load + 16 = 26 A.
    # Credited only what it is given, then nothing: u1 pauses, k1 has the 10 A L1 has.
    assert _unknown_beside_known(vm, 20, [10, 26, 10], 16, "L123", 0, 0) == {"u1": 0.0, "k1": 10.0}


def test_a_narrowed_car_of_unknown_wiring_is_credited_once_settled(vm):
    # A 1-phase car on a 3-phase charger of unknown rotation, drawing 16 A on its L1. In its
    # first minute it may still bring up the other two: credited their least (nothing), 32 -
    # 16 = 16 A. Settled, it draws on one of them: credited 16 A everywhere, 32 A.
    cfg = site([{"id": "main", "limit_a": 32, "meter": "grid"}],
               [charger("u3", rotation="unknown")], meters=["grid"])
    car = {"state": "C", "offered_a": 16, "measured_a": [16, 0, 0]}  # held at its offer: it may want more
    state = {"meters": {"grid": [16, 0, 0]}, "chargers": {"u3": dict(car, charging_s=30)}}
    assert amps(vm, cfg, state) == {"u3": 16.0}
    state["chargers"]["u3"]["charging_s"] = 600
    assert amps(vm, cfg, state) == {"u3": 32.0}


def test_an_unmeasured_charger_is_credited_nothing(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid"}], [charger("wb1", max_a=16)],
               meters=["grid"])
    # Offered 16 A, but nothing says its car draws it (it may be asleep and wake): the
    # meter's 30 A are all other load, 10 A are left.
    state = {"meters": {"grid": [30, 30, 30]}, "chargers": cars("wb1", offered_a=16)}
    assert amps(vm, cfg, state) == {"wb1": 10.0}


def test_a_draw_above_the_chargers_maximum_is_credited_at_its_maximum(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid"}], [charger("wb1", max_a=16)],
               meters=["grid"])
    # 32 A measured on a 16 A charger is a fault: only the 16 A it can draw comes off the
    # meter's 30 A.
    state = {"meters": {"grid": [30, 30, 30]}, "chargers": cars("wb1", offered_a=32, measured_a=[32, 32, 32])}
    assert amps(vm, cfg, state) == {"wb1": 16.0}
    cfg["groups"][0]["limit_a"] = 30
    assert amps(vm, cfg, state) == {"wb1": 16.0}
    cfg["groups"][0]["limit_a"] = 29
    assert amps(vm, cfg, state) == {"wb1": 15.0}


def test_a_measurement_above_the_offer_is_credited_at_the_offer(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid"}], [charger("wb1"), charger("wb2")],
               meters=["grid"])
    # wb1 was told 10 A; its last report (20 A) is from before its car followed, and the meter
    # already shows 10 A. Crediting 20 A would take 10 A of real other load for headroom.
    state = {"meters": {"grid": [20, 20, 20]},
             "chargers": {"wb1": {"state": "C", "offered_a": 10, "measured_a": [20, 20, 20]},
                          "wb2": {"state": "C", "measured_a": [0, 0, 0]}}}
    snap = json.loads(vm.call("snapshot", site=cfg, state=state)["json"])
    assert snap["groups"]["main"]["other_a"] == [10.0, 10.0, 10.0]


def test_the_last_steps_go_to_who_has_least_not_to_a_high_minimum(vm):
    cfg = site([{"id": "main", "limit_a": [45.3, 16, 40]}],
               [charger("h", phases=1, max_a=14, min_a=13), charger("x1", phases=1, max_a=16),
                charger("x2", phases=1, max_a=16), charger("y1", max_a=16), charger("y2", max_a=16)])
    # L2 stops y1 and y2 at 8 A; L1 then has 0.3 A left over its users' 13 + 4 x 8 A. Those
    # steps belong to x1 and x2, never to h, already at its 13 A minimum.
    out = amps(vm, cfg, {"chargers": cars("h", "x1", "x2", "y1", "y2")})
    assert out == {"h": 13.0, "x1": 8.2, "x2": 8.1, "y1": 8.0, "y2": 8.0}


def test_a_1_phase_car_on_l1_leaves_less_l1_for_the_others(vm):
    cfg = site([{"id": "main", "limit_a": 32},
                {"id": "east", "parent": "main", "limit_a": 32},
                {"id": "west", "parent": "main", "limit_a": 32}],
               [charger("e1", "east", phases=1, rotation="L123"), charger("w1", "west"),
                charger("w2", "west", phases=1, rotation="L231")])
    out = amps(vm, cfg, {"chargers": cars("e1", "w1", "w2")})
    # L1 carries e1 and w1: 16 A each; w1 3-phase at 16 A leaves w2 its 16 A on L2.
    assert out == {"e1": 16.0, "w1": 16.0, "w2": 16.0}


def test_fallbacks_overload_nothing_with_every_reserve(vm):
    cfg = site([{"id": "main", "limit_a": 40, "meter": "grid", "reserve_a": 16}],
               [charger("wb1"), charger("wb2")], meters=["grid"])
    state = {"meters": {"grid": [5, 5, 5]}, "chargers": cars("wb1", "wb2", measured_a=[0, 0, 0])}
    snap = json.loads(vm.call("snapshot", site=cfg, state=state)["json"])
    assert [snap["chargers"][c]["current_a"] for c in ("wb1", "wb2")] == [17.5, 17.5]
    # 40 A - 16 A reserve = 24 A for both at once: 12 A each.
    assert [snap["chargers"][c]["fallback_a"] for c in ("wb1", "wb2")] == [12.0, 12.0]


@pytest.mark.parametrize("letter,expect", [("A", 0.0), ("B", 32.0), ("C", 32.0), ("D", 32.0),
                                           ("E", 0.0), ("F", 0.0)])
def test_pilot_states(vm, letter, expect):
    cfg = site([{"id": "main", "limit_a": 63}], [charger("wb1")])
    assert amps(vm, cfg, {"chargers": cars("wb1", state=letter)}) == {"wb1": expect}


def test_mode_off_gets_nothing(vm):
    cfg = site([{"id": "main", "limit_a": 63}], [charger("wb1", mode="off")])
    assert amps(vm, cfg, {"chargers": cars("wb1")}) == {"wb1": 0.0}


def test_one_charger_pauses_so_that_two_of_the_same_priority_run(vm):
    # 6 A a phase: the 3-phase charger first in order takes all three at its minimum; paused
    # instead, the two 1-phase ones (L1 and L2) both run.
    cfg = site([{"id": "main", "limit_a": 6}],
               [charger("three"), charger("one", phases=1, rotation="L123"), charger("two", phases=1, rotation="L231")])
    state = {"chargers": {"three": {"state": "C", "charging_s": 0}, "one": {"state": "C", "charging_s": 600},
                          "two": {"state": "C", "charging_s": 600}}}
    assert amps(vm, cfg, state) == {"three": 0.0, "one": 6.0, "two": 6.0}


def test_the_fewest_pause_also_once_cars_draw_on_fewer_phases(vm):
    # Three 3-phase chargers, wired alike; two of the cars draw on one phase each (L1, L2)
    # past their first minute and count only there. The third, in its first minute, counts
    # on all three and comes first: it pauses so that the other two run.
    cfg = site([{"id": "main", "limit_a": 6}],
               [charger("three", rotation="L123"), charger("one", rotation="L123"), charger("two", rotation="L123")])
    state = {"chargers": {"three": {"state": "C", "charging_s": 0},
                          "one": {"state": "C", "charging_s": 600, "measured_a": [6, 0, 0]},
                          "two": {"state": "C", "charging_s": 600, "measured_a": [0, 6, 0]}}}
    assert amps(vm, cfg, state) == {"three": 0.0, "one": 6.0, "two": 6.0}
