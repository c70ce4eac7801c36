"""The site meter on the real Modbus path: the plant's main-fuse readings served as an SDM630
by a pymodbus server on a socat pty pair, read by the leader's RS485 master in the unix port."""
import json
import time

import pytest

from test_system import Monitor, Sim, leader_says, settled, started, wait_for



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    sim = started(tmp_path_factory, "simline", 26700, meter_line=True)
    yield sim
    sim.stop()


def test_the_leader_reads_the_main_meter_over_modbus(site):
    assert settled(site), "the offers never settled"
    said = leader_says(site)
    truth = site.status()["groups"]["main"]["total"]
    seen = said["groups"]["main"]["meter"]
    assert seen is not None, said["meters"]
    # Read a fraction of a second apart on a steady site: the same currents, to a few tenths of an amp.
    assert all(abs(a - b) <= 500 for a, b in zip(seen, truth)), (seen, truth)
    health = said["meters"]["grid"]
    assert health["good"] > 0 and health["errors"]["crc"] == 0, health


def test_a_silent_meter_goes_silent_after_5_s_and_comes_back(site):
    assert leader_says(site)["groups"]["main"]["meter"] is not None
    site.meter.set_fault("silent")
    try:
        t0 = time.monotonic()
        gone = wait_for(lambda: site.monitor.poll()["groups"]["main"]["meter"] is None, 12)
        took = time.monotonic() - t0
        said = site.monitor.poll()
        assert gone and 4 <= took <= 8, (took, said["meters"])
        assert said["meters"]["grid"]["errors"]["timeout"] >= 3
        assert "timeout" in said["meters"]["grid"]["last_error"]
        # DESIGN.md's rule: the group now counts its reserve_a (35 A) as its other load.
        assert said["groups"]["main"]["available"] == [63000 - 35000] * 3, said["groups"]["main"]
    finally:
        site.meter.set_fault(None)
    assert wait_for(lambda: site.monitor.poll()["groups"]["main"]["meter"] is not None, 5)



# ---- every Modbus meter of a site, each at its own address -------------------------------------

TWO_METERS = {"version": 1, "groups": [
    {"id": "main", "limit_a": 63, "meter": "grid", "reserve_a": 35},
    {"id": "shed", "parent": "main", "limit_a": [16, 0, 0], "meter": "shed", "reserve_a": [10, 0, 0]}],
    "meters": [{"id": "grid", "source": "modbus", "model": "sdm630", "address": 1},
               {"id": "shed", "source": "modbus", "model": "sdm120", "address": 2, "phase": "L1"}],
    "chargers": [{"id": "house", "group": "main", "max_a": 32, "phases": 3, "rotation": "L123"},
                 {"id": "shed", "group": "shed", "max_a": 16, "phases": 1, "rotation": "L123"}]}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    work = tmp_path_factory.mktemp("twometers")
    path = work / "site.json"
    path.write_text(json.dumps(TWO_METERS))
    sim = Sim(str(path), followers=2, work=work / "run", base_port=26750, meter_line=True,
              cars=[{"charger": "house", "arrive_s": 1, "phases": 3, "max_a": 32, "soc": 0.2},
                    {"charger": "shed", "arrive_s": 1, "phases": 1, "max_a": 16, "soc": 0.2}],
              loads=[{"group": "main", "profile": [[0, 10]]}, {"group": "shed", "profile": [[0, 4]]}])
    sim.monitor = Monitor(sim.monitor_port)
    sim.start_all()
    yield sim
    sim.stop()


def test_every_modbus_meter_is_served_at_its_own_address_and_read_there(two):
    # An SDM630 at the main (address 1) and an SDM120 on the shed's sub-group (address 2, on L1),
    # on one line: the leader reads both, each with its own map.
    assert two.meter_line and sorted(two.meter.units.items()) == [(1, "sdm630"), (2, "sdm120")]

    def both():
        said = two.monitor.poll()
        return said and all(said["meters"].get(m, {}).get("good", 0) > 3 for m in ("grid", "shed")) and said
    said = wait_for(both, 30)
    assert said, (two.monitor.poll(), (two.work / "leader" / "log.txt").read_text()[-1500:])
    truth = two.status()["groups"]
    for g in ("main", "shed"):
        seen = said["groups"][g]["meter"]
        assert seen is not None and abs(seen[0] - truth[g]["total"][0]) <= 1500, (g, seen, truth[g]["total"])
    assert said["groups"]["shed"]["meter"][1:] == [0, 0]  # a 1-phase meter: its phase only
    assert said["groups"]["shed"]["meter"][0] >= 3000  # the shed's own 4 A at least
