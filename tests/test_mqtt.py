"""The leader's MQTT bridge (lib/ampshare/mqtt/bridge.py, commands.py, discovery.py) against a real
Mosquitto on a loopback port in 27300-27399, with the home example's leader and followers in the
unix port (tools/sim.py): figures out, commands in and answered, sharing, the will, an MQTT meter
and its timeout, and Home Assistant discovery configs checked against HA's documented schema.
The other end is paho-mqtt; the leader's own view is its status datagram (the live document)."""
import json
import sys
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from test_system import free_ports, wait_for
from vm import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from broker import Broker  # noqa: E402
from sim import Monitor, Sim  # noqa: E402

HOME = ROOT / "examples" / "home.json"
PRE = "ampshare/leader"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("mqtt-broker"), free_ports(27300, 27399))
    b.start()
    yield b.port
    b.stop(kill=True)


class Sub:
    """A paho subscriber: every message by topic, in order."""

    def __init__(self, port, *topics):
        self.msgs = {}
        self.lock = threading.Lock()
        self.c = paho.Client(CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        for t in topics:
            self.c.subscribe(t, 1)
        self.c.loop_start()

    def _on(self, c, u, m):
        with self.lock:
            self.msgs.setdefault(m.topic, []).append((m.payload, m.retain))

    def all(self, topic):
        with self.lock:
            return list(self.msgs.get(topic, []))

    def last(self, topic):
        got = self.all(topic)
        return json.loads(got[-1][0]) if got else None

    def pub(self, topic, payload, retain=False):
        self.c.publish(topic, payload, 1, retain).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def start(tmp_path_factory, name, base_port, port, site=HOME, **mqtt):
    sim = Sim(site, work=tmp_path_factory.mktemp(name), base_port=base_port,
              leader_settings={"mqtt": dict({"host": "127.0.0.1", "port": port}, **mqtt)})
    sim.monitor = Monitor(sim.monitor_port)
    sim.start_all()
    return sim


def log(sim):
    return (sim.work / "leader" / "log.txt").read_text()


@pytest.fixture(scope="module")
def home(tmp_path_factory, broker):
    sub = Sub(broker, PRE + "/#", "homeassistant/#")
    sim = start(tmp_path_factory, "mqtt-home", 25700, broker)
    assert wait_for(lambda: sub.last(PRE + "/site") and sim.monitor.poll(), 15), log(sim)
    yield sim, sub
    sim.stop()
    sub.close()


def _charger(sim, cid):
    st = sim.monitor.poll()
    return st["chargers"][cid] if st else None


def test_figures_out(home):
    sim, sub = home
    assert wait_for(lambda: sub.all(PRE + "/status") and sub.all(PRE + "/status")[-1][0] == b"online", 15), log(sim)
    # The group's five figures per phase, and each charger's, change as the cars start.
    assert wait_for(lambda: len(sub.all(PRE + "/group/main")) >= 2, 15), log(sim)
    g = sub.last(PRE + "/group/main")
    for k in ("meter_ma", "available_ma", "requested_ma", "allocated_ma", "usage_ma"):
        assert k in g and (g[k] is None or len(g[k]) == 3), g
    assert wait_for(lambda: (sub.last(PRE + "/charger/garage") or {}).get("offered_ma", 0) > 0, 15), log(sim)
    ch = sub.last(PRE + "/charger/garage")
    assert ch["state"] in "BC" and ch["link"] == "online" and len(ch["draw_ma"]) == 3 and ch["mode"] == "fast"
    assert set(ch) >= {"fallback_ma", "phases", "session_wh", "energy_wh", "power_w"}
    site = sub.last(PRE + "/site")
    assert site["sharing"] == "on" and "grid" in site["meters"]
    # No topic more often than once a second.
    msgs = sub.all(PRE + "/group/main")
    assert len(msgs) <= 2 + 25, len(msgs)


def _reply(sub, corr):
    return [json.loads(p) for p, _ in sub.all(PRE + "/reply") if json.loads(p)["id"] == corr]


def test_limit_command(home):
    sim, sub = home
    assert wait_for(lambda: (_charger(sim, "garage") or {}).get("offered", 0) > 6000, 20), sim.monitor.poll()
    sub.pub(PRE + "/limit/set", json.dumps({"charger": "garage", "a": 6, "id": "lim1"}))
    assert wait_for(lambda: [r["state"] for r in _reply(sub, "lim1")] == ["requested", "completed"], 5), \
        sub.all(PRE + "/reply")
    assert wait_for(lambda: _charger(sim, "garage")["offered"] <= 6000, 5), sim.monitor.poll()
    assert wait_for(lambda: (sub.last(PRE + "/charger/garage") or {}).get("ext_ma") == 6000, 3)
    sub.pub(PRE + "/limit/set", json.dumps({"charger": "garage", "clear": True, "id": "lim2"}))
    assert wait_for(lambda: [r["state"] for r in _reply(sub, "lim2")][-1:] == ["completed"], 5)
    assert wait_for(lambda: _charger(sim, "garage")["offered"] > 6000, 15), sim.monitor.poll()


def test_a_mode_command_is_in_force_and_answered(home):
    sim, sub = home
    assert wait_for(lambda: (_charger(sim, "garage") or {}).get("offered", 0) > 0, 20), sim.monitor.poll()
    sub.pub(PRE + "/mode/set", json.dumps({"charger": "garage", "mode": "off", "id": "off1"}))
    assert wait_for(lambda: [r["state"] for r in _reply(sub, "off1")] == ["requested", "completed"], 5), \
        sub.all(PRE + "/reply")
    assert wait_for(lambda: (sub.last(PRE + "/charger/garage") or {}).get("mode") == "off", 3)
    assert wait_for(lambda: _charger(sim, "garage")["offered"] == 0, 10), sim.monitor.poll()
    sub.pub(PRE + "/mode/set", json.dumps({"charger": "garage", "mode": "fast", "id": "fast1"}))
    assert wait_for(lambda: [r["state"] for r in _reply(sub, "fast1")][-1:] == ["completed"], 5)
    assert wait_for(lambda: _charger(sim, "garage")["offered"] > 0, 15), sim.monitor.poll()


def test_malformed_refused_and_counted(home):
    sim, sub = home
    before = sub.last(PRE + "/site")["refused"]
    sub.pub(PRE + "/limit/set", b"{nope")
    assert wait_for(lambda: any(json.loads(p)["reason"] and json.loads(p)["reason"].startswith("malformed")
                                for p, _ in sub.all(PRE + "/reply")), 5), sub.all(PRE + "/reply")
    sub.pub(PRE + "/limit/set", json.dumps({"group": "main", "a": 5000, "id": "big"}))
    sub.pub(PRE + "/mode/set", json.dumps({"id": "m"}))
    sub.pub(PRE + "/limit/set", json.dumps({"charger": "nowhere", "a": 6, "id": "who"}))
    sub.pub(PRE + "/limit/set", json.dumps({"charger": "garage", "group": "main", "a": 6, "id": "both"}))
    for corr, why in (("big", "a: amps"), ("m", "charger: no charger null"), ("who", 'no charger "nowhere"'),
                      ("both", "not both")):
        assert wait_for(lambda: _reply(sub, corr), 5), sub.all(PRE + "/reply")
        assert _reply(sub, corr)[-1]["state"] == "failed" and why in _reply(sub, corr)[-1]["reason"], _reply(sub, corr)
    assert wait_for(lambda: sub.last(PRE + "/site")["refused"] >= before + 5, 5), sub.last(PRE + "/site")
    assert sim.procs["leader"].poll() is None  # nothing raised out


def test_a_burst_of_commands_is_answered_and_a_flood_bounded(home):
    # Eight commands at once (a controller setting every charger): each answered requested, then
    # completed, none lost to the reply topic's one slot. Then 300 at once: the oldest answers
    # are dropped and counted, the leader goes on, and the last one is answered.
    sim, sub = home
    for k in range(8):
        sub.c.publish(PRE + "/limit/set", json.dumps({"charger": "garage", "a": 16 + k, "watchdog_s": 0,
                                                      "id": "b%d" % k}), 1)
    for k in range(8):
        assert wait_for(lambda: [r["state"] for r in _reply(sub, "b%d" % k)] == ["requested", "completed"], 10), \
            (k, sub.all(PRE + "/reply")[-20:])
    dropped = sub.last(PRE + "/site")["replies_dropped"]
    for k in range(300):
        sub.c.publish(PRE + "/mode/set", json.dumps({"charger": "garage", "mode": "fast", "id": "f%d" % k}), 0)
    sub.pub(PRE + "/limit/set", json.dumps({"charger": "garage", "clear": True, "id": "last"}))
    assert wait_for(lambda: [r["state"] for r in _reply(sub, "last")][-1:] == ["completed"], 20), \
        sub.all(PRE + "/reply")[-5:]
    assert wait_for(lambda: sub.last(PRE + "/site")["replies_dropped"] > dropped, 5), sub.last(PRE + "/site")
    assert sim.procs["leader"].poll() is None
    assert wait_for(lambda: _charger(sim, "garage")["offered"] > 6000, 15), sim.monitor.poll()


def test_sharing_off_stops_offers(home):
    sim, sub = home
    sub.pub(PRE + "/sharing/set", "off")
    assert wait_for(lambda: all(c["offered"] == 0 for c in sim.monitor.poll()["chargers"].values()), 10), \
        sim.monitor.poll()
    assert wait_for(lambda: sub.last(PRE + "/site")["sharing"] == "off", 3)
    sub.pub(PRE + "/sharing/set", "on")
    assert wait_for(lambda: sim.monitor.poll()["sharing"] is True, 5)


DEVICE_CLASS_UNITS = {"current": {"A", "mA"}, "power": {"W", "kW", "mW", "MW", "GW", "TW", "BTU/h"},
                      "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ", "cal", "kcal",
                                 "Mcal", "Gcal"}}
REQUIRED = {"sensor": ("stat_t",), "number": ("cmd_t",), "select": ("cmd_t", "ops"), "switch": ("cmd_t",)}


def test_discovery_configs(home):
    sim, sub = home
    # The home site: 1 switch, per group 9 sensors and a number, per charger 8 sensors, a number, a select.
    want = 1 + 10 + 2 * 10

    def configs():
        return {t: json.loads(m[-1][0]) for t, m in sub.msgs.copy().items()
                if t.startswith("homeassistant/") and t.endswith("/config") and m[-1][0]}
    assert wait_for(lambda: len(configs()) >= want, 20), sorted(configs())
    got = configs()
    assert len(got) == want
    ids = set()
    for topic, c in got.items():
        parts = topic.split("/")
        assert len(parts) == 5 and parts[0] == "homeassistant", topic
        comp = parts[1]
        assert comp in REQUIRED, topic
        for k in REQUIRED[comp]:
            assert k in c, (topic, k)
        assert c["avty_t"] == PRE + "/status"
        assert c["uniq_id"] not in ids
        ids.add(c["uniq_id"])
        assert c["default_entity_id"] == comp + "." + c["uniq_id"]
        assert c["dev"]["ids"] and c["name"]
        if comp == "sensor" and "dev_cla" in c:
            assert c["unit_of_meas"] in DEVICE_CLASS_UNITS[c["dev_cla"]], c
            if c["dev_cla"] == "energy":
                assert c["stat_cla"] == "total_increasing", c
            else:
                assert c["stat_cla"] == "measurement", c
        if c["dev"]["name"] != "ampshare leader":
            assert c["dev"]["via_device"] == "ampshare_leader"
            assert not c["name"].startswith(c["dev"]["name"])  # names without the device's
        if comp == "select":
            assert c["ops"] == ["fast", "pv", "min_pv", "off"]
    # Retained: a new subscriber gets them all.
    late = Sub(sim_port(sub), "homeassistant/#")
    try:
        assert wait_for(lambda: len(late.msgs) >= want, 5)
        assert all(m[0][1] for m in late.msgs.values())
    finally:
        late.close()
    # Home Assistant coming online: every config again.
    n = sum(len(m) for t, m in sub.msgs.items() if t.startswith("homeassistant/") and t.endswith("/config"))
    sub.pub("homeassistant/status", "online")
    assert wait_for(lambda: sum(len(m) for t, m in sub.msgs.items()
                                if t.startswith("homeassistant/") and t.endswith("/config")) >= n + want, 20)


def sim_port(sub):
    return sub.c._port


def test_will_when_killed(home):
    sim, sub = home
    sim.kill("leader")
    assert wait_for(lambda: sub.all(PRE + "/status")[-1][0] == b"offline", 10)


def test_lifetime_energy_never_goes_back_across_a_counter_reset_and_a_leader_restart(tmp_path_factory, broker):
    # energy_wh as docs/mqtt.md keeps it: saved (here every 2 s, a minute on a board), published
    # only once saved, carried over a charger meter's counter that starts again from zero (the
    # plant restarted: a meter replaced) and over a leader killed mid-run.
    pre = "ampshare/e"
    sub = Sub(broker, pre + "/charger/garage")
    sim = Sim(HOME, work=tmp_path_factory.mktemp("mqtt-energy"), base_port=25900,
              leader_settings={"mqtt": {"host": "127.0.0.1", "port": broker, "prefix": pre, "discovery": False},
                               "energy_save_ms": 2000})
    sim.start_all()

    def energy():
        got = [json.loads(p).get("energy_wh") for p, _ in sub.all(pre + "/charger/garage")]
        return [e for e in got if e is not None]
    try:
        assert wait_for(lambda: energy() and energy()[-1] >= 5, 40), (sub.all(pre + "/charger/garage")[-3:], log(sim))
        first = energy()[-1]
        sim.kill("plant")
        sim.start("plant")  # the charger's counter from 0 again
        assert wait_for(lambda: energy()[-1] > first + 3, 60), energy()[-5:]
        top = energy()[-1]
        sim.kill("leader")
        n = len(energy())
        sim.start("leader")
        assert wait_for(lambda: len(energy()) > n, 30), log(sim)
        assert energy()[n] >= top, (top, energy()[n:])  # the new leader's first figure
        assert wait_for(lambda: energy()[-1] > top, 30), energy()[-5:]
        got = energy()
        assert all(b >= a for a, b in zip(got, got[1:])), got
    finally:
        sim.stop()
        sub.close()


@pytest.fixture(scope="module")
def metered(tmp_path_factory, broker):
    site = json.loads(HOME.read_text())
    site["meters"] = [{"id": "grid", "source": "mqtt", "topic": "p1/grid", "timeout_s": 5}]
    path = tmp_path_factory.mktemp("mqtt-site") / "site.json"
    path.write_text(json.dumps(site))
    sub = Sub(broker, "ampshare/m/#")
    # A reading the broker kept from before the leader started: old, never taken as now.
    sub.pub("p1/grid", json.dumps([40, 40, 40]), retain=True)
    sim = start(tmp_path_factory, "mqtt-meter", 25850, broker, site=path, prefix="ampshare/m", discovery=False)
    yield sim, sub
    sim.stop()
    sub.pub("p1/grid", b"", retain=True)
    sub.close()


def test_mqtt_meter_and_timeout(metered):
    sim, sub = metered
    assert wait_for(lambda: sim.monitor.poll() is not None, 15), log(sim)
    assert wait_for(lambda: (sub.last("ampshare/m/site") or {}).get("stale") == 1, 10), sub.last("ampshare/m/site")
    assert sim.monitor.poll()["groups"]["main"]["meter"] is None  # the kept [40, 40, 40] was not taken
    stop = threading.Event()

    def feed():
        while not stop.wait(0.5):
            sub.pub("p1/grid", json.dumps([12.5, 11, 10]))
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        assert wait_for(lambda: sim.monitor.poll()["groups"]["main"]["meter"] == [12500, 11000, 10000], 10), \
            sim.monitor.poll()
        stop.set()
        t.join()
        sub.pub("p1/grid", json.dumps({"w": [2300, 2300, 4600]}))
        sub.pub("p1/grid", b"[1, 2]")  # refused and counted
        assert wait_for(lambda: sim.monitor.poll()["groups"]["main"]["meter"] == [10000, 10000, 20000], 3), \
            sim.monitor.poll()
        assert wait_for(lambda: (sub.last("ampshare/m/site") or {}).get("meter_refused", 0) >= 1, 3)
        silent_from = time.monotonic()
        # Silent at its timeout_s (5 s): the group at its reserve_a (25 of 40 A: 15 A available).
        assert wait_for(lambda: sim.monitor.poll()["groups"]["main"]["meter"] is None, 8), sim.monitor.poll()
        took = time.monotonic() - silent_from
        assert 3.5 < took < 6.5, took
        assert wait_for(lambda: sim.monitor.poll()["groups"]["main"]["available"] == [15000] * 3, 3), \
            sim.monitor.poll()
        assert sub.last("ampshare/m/group/main")["meter_ma"] is None or \
            wait_for(lambda: sub.last("ampshare/m/group/main")["meter_ma"] is None, 3)
    finally:
        stop.set()
