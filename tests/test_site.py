"""The site model: every refusal names its field and reason; a refusal changes nothing."""
import copy
import json

import pytest

from vm import ROOT


def home():
    return json.loads((ROOT / "examples" / "home.json").read_text())


def garage():
    return json.loads((ROOT / "examples" / "apartment-garage.json").read_text())


def _set(path, value):
    def change(cfg):
        *head, last = path
        node = cfg
        for key in head:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return cfg
    return change


DELETE = object()

REFUSALS = {
    "turn interval 0": (lambda c: c.update(turn_interval_min=0) or c, "turn_interval_min", "0 is outside 1..1440"),
    "1-phase meter on 3 phases": (lambda c: c["meters"][0].update(model="sdm120") or c, "groups[0].meter",
                                  "measures L1 only"),
    "unknown meter model": (_set(["meters", 0, "model"], "sdm999"), "meters[0].model", "'sdm999' is not one of"),
    "meter address 0": (_set(["meters", 0, "address"], 0), "meters[0].address", "0 is outside 1..247"),
    "unknown parent": (
        lambda c: c["groups"].append({"id": "sub", "parent": "nowhere", "limit_a": 16}) or c,
        "groups[1].parent", "unknown parent 'nowhere'"),
    "unknown group": (_set(["chargers", 0, "group"], "shed"), "chargers[0].group", "unknown group 'shed'"),
    "cycle": (
        lambda c: c["groups"].extend([{"id": "a", "parent": "b", "limit_a": 16},
                                      {"id": "b", "parent": "a", "limit_a": 16}]) or c,
        "parent", "cycle a -> b -> a"),
    "duplicate group id": (
        lambda c: c["groups"].append({"id": "main", "limit_a": 16}) or c,
        "groups[1].id", "duplicate id 'main'"),
    "duplicate charger id": (_set(["chargers", 1, "id"], "garage"), "chargers[1].id", "duplicate id 'garage'"),
    "duplicate meter id": (
        lambda c: c["meters"].append({"id": "grid", "source": "ct"}) or c,
        "meters[1].id", "duplicate id 'grid'"),
    "negative limit": (_set(["groups", 0, "limit_a"], -5), "groups[0].limit_a", "outside 0..1000 A"),
    "limit above 1000 A": (_set(["groups", 0, "limit_a"], [40, 1200, 40]), "groups[0].limit_a[1]",
                           "outside 0..1000 A"),
    "rotation typo": (_set(["chargers", 0, "rotation"], "L132x"), "chargers[0].rotation",
                      "'L132x' is not one of L123 L132 L213 L231 L312 L321 unknown"),
    "max_a below the minimum": (_set(["chargers", 0, "max_a"], 5), "chargers[0].max_a",
                                "below the minimum current 6.0 A"),
    "max_a below a raised site minimum": (
        lambda c: _set(["min_current_a"], 16)(c) and _set(["chargers", 1, "max_a"], 10)(c),
        "chargers[1].max_a", "below the minimum current 16.0 A"),
    "meter named but not defined": (_set(["groups", 0, "meter"], "sdm"), "groups[0].meter",
                                    "meter 'sdm' is not defined"),
    "missing version": (_set(["version"], DELETE), "site.version", "missing required field"),
    "missing limit": (_set(["groups", 0, "limit_a"], DELETE), "groups[0].limit_a", "missing required field"),
    "missing max_a": (_set(["chargers", 0, "max_a"], DELETE), "chargers[0].max_a", "missing required field"),
    "missing charger group": (_set(["chargers", 1, "group"], DELETE), "chargers[1].group",
                              "missing required field"),
    "missing group id": (_set(["groups", 0, "id"], DELETE), "groups[0].id", "missing required field"),
    "phases other than 1 or 3": (_set(["chargers", 0, "phases"], 2), "chargers[0].phases", "must be 1 or 3"),
    "phases as a decimal": (_set(["chargers", 0, "phases"], 3.0), "chargers[0].phases", "must be 1 or 3"),
    "phases as true": (_set(["chargers", 0, "phases"], True), "chargers[0].phases", "must be 1 or 3"),
    "minimum above 32 A": (_set(["min_current_a"], 40), "min_current_a", "outside 6..32 A"),
    "minimum below 6 A": (_set(["min_current_a"], 5), "min_current_a", "outside 6..32 A"),
    "max_a above the pilot's 80 A": (_set(["chargers", 0, "max_a"], 100), "chargers[0].max_a", "outside 0..80 A"),
    "two decimals": (_set(["groups", 0, "limit_a"], 40.25), "groups[0].limit_a", "more than 1 decimal"),
    "unknown mode": (_set(["chargers", 0, "mode"], "turbo"), "chargers[0].mode", "'turbo' is not one of"),
    "unsupported version": (_set(["version"], 2), "version", "not a supported version"),
    "version as true": (_set(["version"], True), "version", "not a supported version"),
    "one meter on two groups": (
        lambda c: c["groups"].append({"id": "sub", "parent": "main", "limit_a": 16, "meter": "grid"}) or c,
        "groups[1].meter", "already measures group 'main'"),
    "more than 64 chargers": (
        lambda c: _set(["chargers"], [dict(c["chargers"][0], id="c%d" % i) for i in range(65)])(c),
        "chargers", "65 chargers; at most 64"),
    "more than 16 MQTT meters": (
        lambda c: _set(["meters"], [{"id": "m%d" % i, "source": "mqtt", "topic": "p1/%d" % i}
                                    for i in range(17)])(c),
        "meters[16].source", "at most 16 MQTT meters"),
    "text where amps belong": (_set(["chargers", 0, "max_a"], "32"), "chargers[0].max_a", "must be a number"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_names_field_and_reason(vm, name):
    change, field, reason = REFUSALS[name]
    ans = vm.request("parse", site=change(home()))
    assert "error" in ans, name
    assert ans["field"].endswith(field) or field in ans["field"], ans
    assert reason in ans["error"], ans


def test_the_examples_are_accepted(vm):
    for path in sorted((ROOT / "examples").glob("*.json")):
        if "state" in path.name:
            continue
        ans = vm.call("parse", site=json.loads(path.read_text()))
        assert ans["chargers"], path


def test_a_child_above_its_parent_is_accepted_with_a_warning(vm):
    cfg = home()
    cfg["groups"].append({"id": "carport", "parent": "main", "limit_a": [30, 50, 30]})
    cfg["chargers"][1]["group"] = "carport"
    ans = vm.call("parse", site=cfg)
    assert any("carport" in w and "parent" in w for w in ans["warnings"]), ans
    # The parent binds: 40 A at main still caps what carport's chargers get on L2.
    state = {"meters": {"grid": [0, 0, 0]}, "chargers": {"driveway": {"state": "C"}}}
    cfg["chargers"][1]["max_a"] = 63
    out = vm.call("allocate", site=cfg, state=state)["out"]
    assert out == [0, 30000]  # carport's own 30 A on L1 and L3 binds before main's 40 A
    cfg["groups"][1]["limit_a"] = 60
    assert vm.call("allocate", site=cfg, state=state)["out"] == [0, 40000]


def test_a_refused_configuration_changes_nothing(vm):
    good = home()
    state = {"meters": {"grid": [10, 10, 10]},
             "chargers": {"garage": {"state": "C", "measured_a": [0, 0, 0]}, "driveway": {"state": "C"}}}
    vm.call("hold", site=good)
    before = vm.call("held", state=state)
    for name, (change, field, _) in sorted(REFUSALS.items()):
        ans = vm.request("propose", site=change(home()))
        assert "error" in ans, name
        assert vm.call("held", state=state) == before, name
    assert before["site"] == vm.call("parse", site=good)
    # A good proposal does take effect.
    better = copy.deepcopy(good)
    better["groups"][0]["limit_a"] = 50
    vm.call("propose", site=better)
    assert vm.call("held", state=state)["out"] != before["out"]


def test_wiring_follows_the_rotation(vm):
    cfg = home()
    cfg["chargers"][0]["rotation"] = "L312"
    cfg["chargers"][1]["rotation"] = "unknown"
    wire = vm.call("parse", site=cfg)["wire"]
    assert wire == [2, 0, 1, -1, -1, -1]


def test_compact_copies_every_table_and_keeps_its_values():
    # start.build compacts the parsed site once the parser's garbage is gone; the copies must
    # be the same tables, and new objects (else the originals stay where the parser left them).
    import subprocess
    from vm import micropython, mp_env
    script = (
        "from ampshare.run.start import load_site\n"
        "s = load_site('examples/garage-64.json')\n"
        "tables = [k for k, v in s.__dict__.items() if hasattr(v, 'append') or isinstance(v, bytearray)]\n"
        "before = {k: list(s.__dict__[k]) for k in tables}\n"
        "old = {k: id(s.__dict__[k]) for k in tables}\n"
        "s.compact()\n"
        "print(len(tables), all(list(s.__dict__[k]) == before[k] for k in tables),"
        " sum(id(s.__dict__[k]) != old[k] for k in tables))\n")
    run = subprocess.run([micropython(), "-c", script], capture_output=True, text=True, cwd=ROOT, env=mp_env())
    n, same, moved = run.stdout.split()
    assert int(n) >= 15 and same == "True" and int(moved) == int(n), run.stdout + run.stderr
