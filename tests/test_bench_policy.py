"""make bench-policy's parts: the LP bound (tools/bound.py) against cases worked by hand and
against the twin, and the peers (tools/policies.py) doing what their documents say."""
import json
import sys

import pytest

from vm import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import bound  # noqa: E402  (scipy: make setup installs it)


def site(limit=40, chargers=None, metered=True):
    cfg = {"version": 1, "voltage_v": 230, "groups": [{"id": "main", "limit_a": limit}],
           "chargers": chargers or [{"id": "a", "group": "main", "max_a": 32, "phases": 3, "rotation": "L123"}]}
    if metered:
        cfg["meters"] = [{"id": "grid", "source": "modbus", "model": "sdm630", "address": 1}]
        cfg["groups"][0]["meter"] = "grid"
        cfg["groups"][0]["reserve_a"] = 0
    return cfg


def solve(tmp_path, scn, wiring="configured"):
    path = tmp_path / "scn.json"
    path.write_text(json.dumps(scn))
    return bound.solve(bound.inputs(str(path)), wiring)


def test_the_bound_is_the_fuse_less_the_other_load(tmp_path, vm):
    # 10 A left of a 40 A fuse beside 30 A of other load, a 3-phase car that could take 16:
    # 10 A x 3 x 230 V for an hour, the car far from its taper.
    scn = {"site": site(), "duration_s": 3600, "loads": [{"group": "main", "profile": [[0, 30]]}],
           "cars": [{"charger": "a", "phases": 3, "max_a": 16, "capacity_kwh": 60, "soc": 0.1}]}
    res = solve(tmp_path, scn)
    assert res["wh"] == pytest.approx(6900, abs=1)
    got = vm.call("twin", scenario=scn)["summary"]["energy_wh"]["a"]
    assert 0.9 * res["wh"] < got <= res["wh"]  # no controller that keeps the fuse does better


def test_the_bound_follows_the_taper_and_stops_at_full(tmp_path, vm):
    # A 10 kWh battery at 85 %: all it can take is 1.5 kWh, so two hours give it that much.
    car = {"charger": "a", "phases": 3, "max_a": 16, "capacity_kwh": 10, "soc": 0.85}
    scn = {"site": site(limit=63), "duration_s": 7200, "cars": [car]}
    assert solve(tmp_path, scn)["wh"] == pytest.approx(1500, abs=1)
    # A 60 kWh one at 85 % takes 12.5 A at most (16 A less 14 A x 5/20), less as it fills:
    # ten minutes give it under what 12.5 A would.
    short = dict(scn, duration_s=600, cars=[dict(car, capacity_kwh=60)])
    early = solve(tmp_path, short)["wh"]
    assert 0.9 * 12.5 * 3 * 230 / 6 < early < 12.5 * 3 * 230 / 6
    assert vm.call("twin", scenario=short)["summary"]["energy_wh"]["a"] <= early


def test_an_unknown_rotation_counts_a_one_phase_car_on_every_phase(tmp_path):
    # Two 1-phase chargers of unknown rotation, really on L1 and L2, under a 20 A fuse: as
    # configured they share 20 A (each may be on any phase); as wired each may take its 16 A.
    chargers = [{"id": x, "group": "main", "max_a": 16, "phases": 1, "rotation": "unknown"} for x in "ab"]
    scn = {"site": site(limit=20, chargers=chargers, metered=False), "duration_s": 3600,
           "wiring": {"a": "L123", "b": "L231"},
           "cars": [{"charger": x, "phases": 1, "max_a": 16, "capacity_kwh": 60, "soc": 0.1} for x in "ab"]}
    assert solve(tmp_path, scn)["wh"] == pytest.approx(20 * 230, abs=1)
    assert solve(tmp_path, scn, "real")["wh"] == pytest.approx(32 * 230, abs=1)


def rows(vm, scn, policy, last):
    return vm.call("twin", scenario=scn, policy=policy, rows=[0, last])


def test_static_sharing_splits_the_limit_and_reads_no_meter(vm):
    # Two cars under 32 A with 20 A of other load: static gives each 16 A all the same, and
    # the fuse carries more than its limit (reported, as the bench reports it).
    chargers = [{"id": x, "group": "main", "max_a": 32, "phases": 3, "rotation": "L123"} for x in "ab"]
    scn = {"site": site(limit=32, chargers=chargers), "duration_s": 120,
           "loads": [{"group": "main", "profile": [[0, 20]]}],
           "cars": [{"charger": x, "phases": 3, "max_a": 32} for x in "ab"]}
    res = rows(vm, scn, "static", 119)
    end = res["rows"][-1]["chargers"]
    assert end["a"]["offered_a"] == end["b"]["offered_a"] == 16
    assert res["summary"]["invariants"]["realized_ev_As"] > 0
    ours = vm.call("twin", scenario=scn)["summary"]["invariants"]["realized_ev_As"]
    assert ours == 0


def test_smartevse_stops_every_car_for_a_minute_when_the_minimum_does_not_fit(vm):
    # Two cars on a 25 A main; the other load rises to 20 A at 60 s: two minimums (12 A) no
    # longer fit, and after three balancings short both stop for SmartEVSE's ChargeDelay.
    chargers = [{"id": x, "group": "main", "max_a": 16, "phases": 3, "rotation": "L123"} for x in "ab"]
    scn = {"site": site(limit=25, chargers=chargers), "duration_s": 200,
           "loads": [{"group": "main", "profile": [[0, 2], [60, 20]]}],
           "cars": [{"charger": x, "phases": 3, "max_a": 16} for x in "ab"]}
    res = rows(vm, scn, "smartevse", 199)
    offered = [(r["t"], r["chargers"]["a"]["offered_a"] + r["chargers"]["b"]["offered_a"]) for r in res["rows"]]
    assert max(o for t, o in offered if t < 60) > 12  # sharing what is left beside 2 A
    stopped = [t for t, o in offered if t > 60 and o == 0]
    assert stopped and all(o == 0 for t, o in offered if stopped[0] <= t < stopped[0] + 55)


def test_warp_rotates_every_15_minutes_by_least_energy(vm):
    # Three 3-phase chargers on 16 A: one at its minimum fits, two do not (6 A and 9 A more
    # to switch one on). Each car gets its turn within 45 minutes.
    chargers = [{"id": x, "group": "main", "max_a": 16, "phases": 3, "rotation": "L123"} for x in "abc"]
    scn = {"site": site(limit=16, chargers=chargers, metered=False), "duration_s": 2800, "step_ms": 500,
           "cars": [{"charger": x, "phases": 3, "max_a": 16, "arrive_s": 10 + 5 * i} for i, x in enumerate("abc")]}
    res = vm.call("twin", scenario=scn, policy="warp")["summary"]
    assert all(res["energy_wh"][x] > 0 for x in "abc"), res["energy_wh"]
    assert sum(res["pauses"].values()) >= 2
