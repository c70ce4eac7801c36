"""The board's settings.json: defaults, refusals, and the leader's list of units to pair."""
import pytest

GOOD = {"role": "leader", "hal": "unix",
        "pair": {"wb1": {"uid": "02a500000001", "code": "K7Q-22"}}}


def test_defaults_fill_what_is_left_out(vm):
    s = vm.call("settings", settings=GOOD)
    assert (s["port_leader"], s["port_follower"], s["state_dir"]) == (45450, 45451, ".")
    assert s["pair"] == {"wb1": ["02a500000001", "K7Q-22"]}


@pytest.mark.parametrize("change, field", [
    ({"role": "boss"}, "settings.role"),
    ({"port_leader": 70000}, "settings.port_leader"),
    ({"phases": 2}, "settings.phases"),
    ({"phase_switching": "yes"}, "settings.phase_switching"),
    ({"phase_switching": True, "phases": 1}, "settings.phase_switching"),  # no phases to switch
    ({"colour": "red"}, "settings.colour"),
    ({"pair": ["wb1"]}, "settings.pair"),
    ({"pair": {"wb1": {"uid": "02a5000000", "code": "x"}}}, "settings.pair.wb1"),  # 5 bytes
    ({"pair": {"wb1": {"uid": "02a50000000z", "code": "x"}}}, "settings.pair.wb1"),  # not hex
    ({"pair": {"wb1": {"uid": "02a500000001"}}}, "settings.pair.wb1"),  # no label code
    ({"pair": {"wb1": {"uid": "02a500000001", "code": ""}}}, "settings.pair.wb1"),
])
def test_a_bad_setting_is_refused_by_name(vm, change, field):
    ans = vm.request("settings", settings=dict(GOOD, **change))
    assert ans.get("field") == field, ans
