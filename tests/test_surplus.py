"""Solar surplus: pv cars share what the metered group exports, min_pv cars keep their
minimum, and the start and stop delays and the smoothing hold in time."""
import json

import pytest

SITE = {"version": 1, "groups": [{"id": "main", "limit_a": 63, "meter": "grid"}],
        "meters": [{"id": "grid", "source": "modbus"}],
        "chargers": [{"id": "wb1", "group": "main", "max_a": 16, "rotation": "L123", "mode": "pv"},
                     {"id": "wb2", "group": "main", "max_a": 16, "rotation": "L231", "mode": "pv"}]}


def site(**changes):
    s = json.loads(json.dumps(SITE))
    for c in s["chargers"]:
        c.update(changes.get(c["id"], {}))
    s["groups"][0].update(changes.get("main", {}))
    return s


def snap(vm, site_cfg, meter, **chargers):
    state = {"meters": {"grid": meter}, "chargers": chargers or {"wb1": {"state": "C"}, "wb2": {"state": "C"}}}
    out = json.loads(vm.call("snapshot", site=site_cfg, state=state)["json"])
    return {c: v["current_a"] for c, v in out["chargers"].items()}, out["groups"]["main"]


def test_two_pv_cars_share_20_a_of_export_per_phase_10_a_each(vm):
    got, main = snap(vm, site(), [-20, -20, -20])
    assert got == {"wb1": 10.0, "wb2": 10.0}
    assert main["surplus_a"] == 60.0  # summed over the phases: the net import goes to zero


def test_cars_already_drawing_their_share_keep_it(vm):
    # The meter includes the PV cars: 10 A each drawn with 20 A exported reads zero.
    drawing = {"state": "C", "charging_s": 30, "measured_a": [10, 10, 10], "offered_a": 10}
    got, _ = snap(vm, site(), [0, 0, 0], wb1=drawing, wb2=drawing)
    assert got == {"wb1": 10.0, "wb2": 10.0}


def test_a_surplus_for_one_minimum_starts_one_car_only(vm):
    # 10 A per phase exported: 30 A over the phases covers one 3-phase car's 18 A, not two.
    got, _ = snap(vm, site(), [-10, -10, -10])
    assert got == {"wb1": 10.0, "wb2": 0.0}
    got, _ = snap(vm, site(), [-5, -5, -5])
    assert got == {"wb1": 0.0, "wb2": 0.0}


def test_min_pv_keeps_its_minimum_without_sun_and_takes_the_surplus_above_it(vm):
    cfg = site(wb1={"mode": "min_pv"}, wb2={"mode": "fast"})
    got, _ = snap(vm, cfg, [5, 5, 5], wb1={"state": "C"})
    assert got == {"wb1": 6.0, "wb2": 0.0}
    got, _ = snap(vm, cfg, [-12, -12, -12], wb1={"state": "C"})
    assert got == {"wb1": 12.0, "wb2": 0.0}


def test_the_fast_cars_draw_is_load_the_pv_cars_do_not_get(vm):
    cfg = site(wb2={"mode": "fast"})
    fast = {"state": "C", "charging_s": 30, "measured_a": [16, 16, 16], "offered_a": 16}
    got, _ = snap(vm, cfg, [-4, -4, -4], wb1={"state": "C"}, wb2=fast)
    assert got == {"wb1": 0.0, "wb2": 16.0}


def test_a_target_below_zero_keeps_that_much_export(vm):
    # -2760 W at 230 V: 12 A over the phases stay exported; 48 A are shared.
    got, _ = snap(vm, site(main={"pv_target_w": -2760}), [-20, -20, -20])
    assert got == {"wb1": 8.0, "wb2": 8.0}


def test_the_fuse_still_binds_a_pv_car(vm):
    cfg = site()
    cfg["groups"][0]["limit_a"] = 16
    got, _ = snap(vm, cfg, [-40, -40, -40])  # plenty of sun, a small fuse: 16 A over the meter's credit
    assert got["wb1"] + got["wb2"] <= 16.0 + 40.0


def test_a_switching_charger_takes_one_phase_when_three_do_not_fit(vm):
    cfg = site(wb1={"phase_switching": True, "rotation": "L231"})
    cfg["chargers"].pop()
    out = json.loads(vm.call("snapshot", site=cfg, state={"meters": {"grid": [-4, -4, -4]},
                                                          "chargers": {"wb1": {"state": "C"}}})["json"])
    # 12 A over the phases: not 3 x 6 A, but 12 A on one phase, its L1 (site L2 by its rotation).
    assert out["chargers"]["wb1"]["current_a"] == 12.0 and out["chargers"]["wb1"]["phases"] == 1
    assert out["groups"]["main"]["allocated_a"] == [0.0, 12.0, 0.0]
    out = json.loads(vm.call("snapshot", site=cfg, state={"meters": {"grid": [-10, -10, -10]},
                                                          "chargers": {"wb1": {"state": "C"}}})["json"])
    assert out["chargers"]["wb1"]["current_a"] == 10.0 and out["chargers"]["wb1"]["phases"] == 3


def test_an_unmetered_pv_charger_is_named_in_a_warning(vm):
    cfg = {"version": 1, "groups": [{"id": "main", "limit_a": 40}],
           "chargers": [{"id": "wb1", "group": "main", "max_a": 16, "mode": "pv"}]}
    warnings = vm.call("parse", site=cfg)["warnings"]
    assert any("chargers.wb1.mode" in w for w in warnings)


def run(vm, export_a, seconds, cfg=None, phases=False):
    cfg = cfg or site(wb2={"mode": "min_pv"})
    rows = vm.call("surplus_run", site=cfg, export_a=export_a, seconds=seconds)
    n = len(cfg["chargers"])
    # Each second: what each charger got, and (phases=True) whether it is asked for one phase.
    return {r[0]: (r[1:] if phases else r[1:1 + n]) for r in rows}


def test_a_pv_car_starts_after_the_start_delay_and_stops_after_the_stop_delay(vm):
    at = run(vm, [[0, 20], [200, 2]], 420)
    assert at[0] == [0, 16000]  # min_pv alone takes the sun at once (to its maximum)
    assert at[59][0] == 0  # pv waits for 60 s of surplus
    assert at[61] == [10000, 10000]  # then both share it
    assert at[199] == [10000, 10000]
    # A cloud: within the 5 s smoothing both are down to their minimum, importing, for the stop delay.
    assert at[210] == [6000, 6000]
    assert at[370] == [6000, 6000]
    assert at[400] == [0, 6000]  # 180 s later the pv car stops; min_pv keeps its minimum


def test_a_short_gap_in_the_clouds_starts_nothing(vm):
    at = run(vm, [[0, 2], [100, 20], [130, 2]], 300, cfg=site())
    assert all(row == [0, 0] for row in at.values())


def test_a_short_cloud_does_not_stop_a_car(vm):
    at = run(vm, [[0, 20], [150, 2], [250, 20]], 400, cfg=site())
    assert at[100] == [16000, 0]  # one car starts at a time, each after its own start delay
    assert at[130] == [10000, 10000]
    assert all(min(row) >= 6000 for t, row in at.items() if t > 121)  # 100 s of cloud stop neither
    assert at[399] == [10000, 10000]


@pytest.mark.parametrize("field,value", [("pv_start_s", -1), ("pv_stop_s", 3601), ("pv_start_s", 1.5)])
def test_a_bad_delay_is_refused_by_name(vm, field, value):
    cfg = site()
    cfg[field] = value
    assert vm.request("parse", site=cfg)["field"] == field


def test_a_sunny_and_a_cloudy_day(vm):
    from test_twin import ev_caused, scenario, twin
    sunny = twin(vm, scenario("sunny-day"))["summary"]
    cloudy = twin(vm, scenario("cloudy-day"))["summary"]
    for day in (sunny, cloudy):
        assert ev_caused(day) == {}
        assert day["fallback_s"] == {"garage": 0, "driveway": 0}
        assert day["switched_under_load"] == 0
    # In the sun the cars charge from the surplus alone; under clouds the min_pv car's minimum
    # and the pv car's stop delays take some from the grid, most still comes from the sun.
    assert sunny["chargers_wh"]["grid"] * 50 <= sunny["chargers_wh"]["surplus"]
    assert sunny["chargers_wh"]["grid"] < cloudy["chargers_wh"]["grid"] < cloudy["chargers_wh"]["surplus"] // 4
    # The garage switches to one phase in the morning and evening sun; under minute-by-minute
    # clouds the switch budget (6 a session, besides the free moves before a start) and the
    # delays bound its cycling.
    assert 1 <= sunny["phase_switches"]["garage"] <= 4
    assert sunny["phase_switches"]["garage"] <= cloudy["phase_switches"]["garage"] <= 6 + 3
    assert cloudy["starts"]["garage"] <= 2 * cloudy["phase_switches"]["garage"] + 6
    assert sunny["phase_switches"]["driveway"] == cloudy["phase_switches"]["driveway"] == 0  # no second contactor
    assert sunny["energy_wh"]["garage"] >= 40_000  # from 20 % to full on the sun


def test_a_tapering_car_gives_way_and_a_sleeping_one_wakes_to_its_share(vm):
    from test_twin import scenario, twin
    scn = scenario("taper-wake", duration_s=1530)

    def at(first, last):  # the same replayed run, a window of its seconds at a time
        return {r["t"]: r["chargers"] for r in twin(vm, scn, rows=[first, last])["rows"]}

    early, mid, late, wake = at(150, 150)[150], at(900, 900)[900], at(1350, 1350)[1350], at(1480, 1525)
    # Tapering, it is held at its draw plus the margin, and what it leaves goes to the hungry car.
    assert 1.0 <= mid["tapering"]["offered_a"] - mid["tapering"]["draw_a"] <= 2.0  # demand.py: 1.5 A
    assert late["tapering"]["offered_a"] < early["tapering"]["offered_a"]
    assert late["hungry"]["offered_a"] > early["hungry"]["offered_a"] + 5
    # Asleep on its own timer it keeps the minimum; awake, it has its share within seconds.
    assert early["sleeper"]["offered_a"] == mid["sleeper"]["offered_a"] == wake[1495]["sleeper"]["offered_a"] == 6.0
    assert wake[1520]["sleeper"]["offered_a"] >= 15.0


def test_a_switching_car_stopped_by_the_dark_restarts_on_one_phase(vm):
    cfg = site(wb1={"phase_switching": True})
    cfg["chargers"].pop()
    at = run(vm, [[0, 20], [700, 0], [1500, 4]], 2400, cfg=cfg, phases=True)
    assert at[100] == [16000, 0]  # full sun: three phases
    assert at[1400] == [0, 0] or at[1400] == [0, 1]  # dark: stopped
    # 4 A on each phase: 12 A, not three phases at 6 A but one at 12 A, after the start delay.
    assert at[2399] == [12000, 1]
