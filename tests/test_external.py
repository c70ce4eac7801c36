"""External limits: a controller lowers a group's limit or a charger's maximum (A or W);
requests are answered; a watched limit lapses; nothing rises above a fuse."""
import json

from test_leader import Site, site

HOME = {"version": 1, "voltage_v": 230, "groups": [{"id": "main", "limit_a": 40, "meter": "grid"}],
        "meters": [{"id": "grid", "source": "modbus"}],
        "chargers": [{"id": "a", "group": "main", "max_a": 32, "phases": 3},
                     {"id": "b", "group": "main", "max_a": 32, "phases": 3}]}
BOTH = {"a": {"state": "C"}, "b": {"state": "C"}}


def snap(vm, external=None, chargers=BOTH, meter=10):
    state = {"meters": {"grid": [meter] * 3}, "chargers": chargers}
    if external is not None:
        state["external"] = external
    return json.loads(vm.call("snapshot", site=HOME, state=state)["json"])


def amps(out):
    return {cid: c["current_a"] for cid, c in out["chargers"].items()}


def test_a_group_limit_shares_less(vm):
    assert amps(snap(vm)) == {"a": 15.0, "b": 15.0}  # 40 A fuse, 10 A other load
    out = snap(vm, {"groups": {"main": {"limit_a": 25}}})
    assert amps(out) == {"a": 7.5, "b": 7.5} and out["external"]["groups"]["main"]["limit_a"] == [25.0] * 3


def test_a_limit_above_the_fuse_raises_nothing(vm):
    assert amps(snap(vm, {"groups": {"main": {"limit_a": 400}}, "chargers": {"a": {"limit_a": 63}}})) == \
        amps(snap(vm))


def test_a_charger_limit_in_watts_uses_the_phases_in_use(vm):
    # 4140 W: 6 A on three phases, 18 A on the one a 1-phase car draws on.
    out = snap(vm, {"chargers": {"a": {"limit_w": 4140}}})
    assert out["external"]["chargers"]["a"]["limit_a"] == 6.0 and amps(out)["a"] == 6.0
    one = dict(BOTH, a={"state": "C", "measured_a": [10, 0, 0]})
    out = snap(vm, {"chargers": {"a": {"limit_w": 4140}}}, chargers=one)
    assert out["external"]["chargers"]["a"]["limit_a"] == 18.0


def test_a_charger_limited_below_its_minimum_is_paused_and_the_other_gets_the_rest(vm):
    out = snap(vm, {"chargers": {"a": {"limit_a": 5}}})
    assert amps(out) == {"a": 0.0, "b": 30.0}


def test_refused_requests_name_the_field(vm):
    for ext, field in [({"groups": {"shed": {"limit_a": 10}}}, "state.external.groups.shed"),
                       ({"chargers": {"a": {"limit_w": -5}}}, "state.external.chargers.a"),
                       ({"chargers": {"a": {}}}, "state.external.chargers.a")]:
        ans = vm.request("snapshot", site=HOME, state={"meters": {"grid": 10}, "chargers": BOTH, "external": ext})
        assert ans.get("field") == field, ans


def test_leader_answers_requested_then_completed_and_a_watched_limit_lapses(vm):
    s = Site(vm, site(limit=32))

    def reports(*times):
        return [s.report(i, t) for t in times for i in (0, 1)]

    assert sum(s.run(*reports(0, 1000), (3000, "tick"))["end"]["out"]) == 32000
    res = s.run((3100, "limit", "group", "main", 12000, None, 30000), (3100, "answer", 1))
    assert res["trace"][1]["answer"] == ["requested", None]
    res = s.run((3100, "tick"), (3100, "answer", 1))  # allocated at once, not next period
    assert res["end"]["out"] == [6000, 6000] and res["trace"][1]["answer"] == ["completed", None]
    res = s.run((3200, "limit", "charger", "nowhere", 6000, None, 0), (3200, "answer", 2))
    assert res["trace"][1]["answer"] == ["failed", "unknown charger 'nowhere'"]
    # Not refreshed: 30 s after it was set, the group has its 32 A fuse again.
    assert s.run(*reports(20000, 32000), (32500, "tick"))["end"]["out"] == [6000, 6000]
    assert sum(s.run(*reports(33000), (33200, "tick"))["end"]["out"]) == 32000
