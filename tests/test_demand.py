"""Demand detection: a car is limited to what it draws plus a margin once it has settled, and
what it leaves goes to the others; one that draws near its offer, or that is probed, gets its
maximum again."""
import json

from test_twin import scenario, twin

SITE = {"version": 1, "voltage_v": 230, "groups": [{"id": "main", "limit_a": 40}], "meters": [],
        "chargers": [{"id": "a", "group": "main", "max_a": 32}, {"id": "b", "group": "main", "max_a": 32}]}


def snap(vm, a, b):
    out = json.loads(vm.call("snapshot", site=SITE, state={"chargers": {"a": a, "b": b}})["json"])
    return {c: (v["current_a"], v["requested_a"]) for c, v in out["chargers"].items()}


def test_a_car_drawing_16_a_keeps_16_plus_the_margin_and_a_hungry_one_gets_the_rest(vm):
    small = {"state": "C", "charging_s": 600, "measured_a": [16, 16, 16], "offered_a": 20}
    hungry = {"state": "C", "charging_s": 600, "measured_a": [20, 20, 20], "offered_a": 20}
    assert snap(vm, small, hungry) == {"a": (17.5, 17.5), "b": (22.5, 32.0)}  # 1.5 A of margin


def test_in_its_first_minute_a_car_is_offered_its_maximum(vm):
    small = {"state": "C", "charging_s": 30, "measured_a": [16, 16, 16], "offered_a": 20}
    hungry = {"state": "C", "charging_s": 600, "measured_a": [20, 20, 20], "offered_a": 20}
    assert snap(vm, small, hungry) == {"a": (20.0, 32.0), "b": (20.0, 32.0)}


def test_a_full_car_keeps_the_minimum_while_the_other_needs_current(vm):
    full = {"state": "C", "charging_s": 3600, "measured_a": [0, 0, 0], "offered_a": 20}
    hungry = {"state": "C", "charging_s": 600, "measured_a": [20, 20, 20], "offered_a": 20}
    assert snap(vm, full, hungry) == {"a": (6.0, 6.0), "b": (32.0, 32.0)}


def test_in_the_twin_the_small_car_is_limited_after_a_minute_and_the_big_one_gains(vm):
    rows = {r["t"]: r["chargers"] for r in twin(vm, scenario("demand"), rows=[20, 700])["rows"]}
    assert rows[30]["small-car"]["offered_a"] == rows[30]["big-car"]["offered_a"] == 20.0  # still probing
    small, big = rows[180]["small-car"], rows[180]["big-car"]
    assert small["offered_a"] == 17.5 and small["draw_a"] == 16.0
    assert big["offered_a"] == 22.5 and big["draw_a"] == 22.5
    # Ten minutes on it is probed: offered its maximum share for a probe hold of 20 s (not a
    # start period's minute), then limited again, and the big car has its 22.5 A back.
    assert rows[620]["small-car"]["offered_a"] == 20.0 and rows[620]["big-car"]["draw_a"] == 19.5
    assert rows[640]["small-car"]["offered_a"] == 17.5 and rows[645]["big-car"]["draw_a"] == 22.5


def test_a_car_that_wakes_and_follows_its_pilot_as_slowly_as_allowed_climbs_to_its_share(vm):
    # The sleeper asks (C) but draws nothing until 1500 s, held at its minimum; awake, it
    # follows each change of its pilot 5 s late (the most IEC 61851-1 allows). Each probe hold
    # must outlast the others' decrease and its own 5 s, or it is limited again before it rose.
    scn = scenario("taper-wake", duration_s=1600)
    scn["cars"][2]["follow_s"] = [5, 5]
    rows = {r["t"]: r["chargers"]["sleeper"] for r in twin(vm, scn, rows=[1490, 1599])["rows"]}
    assert rows[1495]["offered_a"] == 6.0 and rows[1495]["draw_a"] == 0.0
    woke = min(t for t in rows if rows[t]["draw_a"] >= 15.0)
    assert woke <= 1530  # its 16 A within half a minute of waking
    assert min(rows[t]["draw_a"] for t in rows if t >= woke) >= 15.0  # and kept


PHASES_SITE = {"version": 1, "voltage_v": 230, "groups": [{"id": "main", "limit_a": 16}], "meters": [],
               "chargers": [{"id": "a", "group": "main", "max_a": 16, "rotation": "L123"},
                            {"id": "b", "group": "main", "max_a": 16, "rotation": "L231"}]}


def phases_snap(vm, meas_a, meas_b, charging_s=600):
    state = {"chargers": {"a": {"state": "C", "charging_s": charging_s, "measured_a": meas_a, "offered_a": 8},
                          "b": {"state": "C", "charging_s": charging_s, "measured_a": meas_b, "offered_a": 8}}}
    out = json.loads(vm.call("snapshot", site=PHASES_SITE, state=state)["json"])
    return [out["chargers"][c]["current_a"] for c in "ab"]


def test_one_phase_cars_on_three_phase_chargers_free_the_phases_they_leave(vm):
    # Both cars draw on their charger's L1: a's is site L1, b's is site L2 (rotation L231).
    # Counted on all three phases they would share 16 A; on their own phases each has 16 A.
    assert phases_snap(vm, [8, 0, 0], [8, 0, 0]) == [16.0, 16.0]
    # In their first minute every wired phase still counts.
    assert phases_snap(vm, [8, 0, 0], [8, 0, 0], charging_s=30) == [8.0, 8.0]
    # A second phase alive on a's car (its L2 is site L2, b's phase): counted at once.
    assert phases_snap(vm, [8, 8, 0], [8, 0, 0]) == [8.0, 8.0]


def test_the_snapshot_shows_the_five_figures_per_group_and_phase(vm):
    site = dict(SITE, groups=[{"id": "main", "limit_a": 40, "meter": "grid"}],
                meters=[{"id": "grid", "source": "modbus"}],
                chargers=[dict(c, rotation="L123") for c in SITE["chargers"]])
    state = {"meters": {"grid": [30, 30, 30]},
             "chargers": {"a": {"state": "C", "charging_s": 600, "measured_a": [16, 16, 16], "offered_a": 20},
                          "b": {"state": "B"}}}
    g = json.loads(vm.call("snapshot", site=site, state=state)["json"])["groups"]["main"]
    assert g["meter_a"] == [30.0] * 3  # everything through the fuse, the car included
    assert g["usage_a"] == [16.0] * 3  # the car's own meter
    assert g["other_a"] == [14.0] * 3 and g["available_a"] == [26.0] * 3  # 40 - (30 - 16)
    assert g["requested_a"] == [17.5 + 32.0] * 3  # a: its draw + 1.5 A; b: connected, its maximum
    assert g["allocated_a"] == [sum(c["current_a"] for c in json.loads(
        vm.call("snapshot", site=site, state=state)["json"])["chargers"].values())] * 3


# ---- parking: a car that does not ask gives its share to the others --------------------------

def run_parking(vm, seconds, asks_at=None):
    """wb0's car does not ask (B) until asks_at, wb1's draws all it is offered; each second
    both report what they hold (the last current sent) and the leader ticks. Returns each
    second's currents sent to [wb0, wb1]."""
    from test_leader import Site, current, site
    s = Site(vm, site(limit=32))
    held, out = [0, 0], {}
    for t in range(0, seconds * 1000, 1000):
        wb0 = b"C" if asks_at is not None and t >= asks_at * 1000 else b"B"
        tick = s.run(s.report(0, t, pilot=wb0, applied=held[0], meas=held[0] if wb0 == b"C" else 0),
                     s.report(1, t, pilot=b"C", applied=held[1], meas=held[1]), (t, "tick"))["trace"][-1]
        for c in (0, 1):
            if c in tick["commands"]:
                held[c] = current(tick, c)
        out[t // 1000] = list(held)
    return out


def test_a_car_that_does_not_ask_for_two_minutes_is_parked_and_probed_at_its_minimum(vm):
    got = run_parking(vm, 1200)
    assert got[60] == [16000, 16000]  # an equal share while it may still ask
    parked = min(t for t in got if t > 60 and got[t][0] == 0)
    assert 120 <= parked <= 130  # two minutes of B under an offer
    assert got[parked + 20] == [0, 32000]  # its share went to the other, once it was given up
    # 15 minutes after it was parked it is offered its minimum, and nothing more.
    probe = min(t for t in got if t > parked and got[t][0] > 0)
    assert parked + 895 <= probe <= parked + 910 and got[probe][0] == 6000  # after the other came down
    assert max(got[t][0] for t in got if t >= probe) == 6000


def test_a_parked_car_that_asks_has_its_share_at_once(vm):
    got = run_parking(vm, 400, asks_at=300)
    assert got[290] == [0, 32000]  # parked
    assert got[300][1] == 16000  # the report that asks unparks it: the other comes down at once
    back = min(t for t in got if t >= 300 and got[t][0] > 0)
    assert back <= 308  # and it rises once that car has had its 5 s to follow
    assert got[330] == [16000, 16000]  # its share, once the other car has come down
