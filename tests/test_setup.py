"""First boot: a unit without settings.json serves its setup page on its own access point (the
unix port stands in for the board: label.json says where to serve and what a scan found),
saves the role and Wi-Fi it is given, and starts again in that role."""
import http.client
import json
import subprocess
import time

import pytest

from test_system import wait_for
from vm import ROOT, micropython, mp_env

PORT = 27050  # this file's ports: 27050 the setup page, 27051 the leader's page after it
CODE = "label-code-7"


def call(method, path, body=None, port=PORT):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode()


def start(work):
    log = open(work / "log.txt", "a")
    return subprocess.Popen([micropython(), "-c", "from ampshare.run import app\napp.main('settings.json')"],
                            cwd=work, env=mp_env(), stdout=log, stderr=subprocess.STDOUT)


def up(port=PORT):
    try:
        return call("GET", "/api/setup" if port == PORT else "/api/state", port=port)[0] == 200
    except OSError:
        return False


@pytest.fixture
def unit(tmp_path):
    label = {"code": CODE, "hal": "unix", "uid": "02a5000000ff", "http": {"port": PORT, "bind": "127.0.0.1"},
             # What a scan found: [ssid, bssid, channel, rssi, security, hidden], as network.WLAN.scan().
             "networks": [["garage-ap", "", 6, -71, 3, 0], ["home", "", 1, -48, 3, 0], ["home", "", 11, -80, 3, 0],
                          ["", "", 3, -40, 0, 1]],
             # What the board needs whatever its role (the unix port's stand-ins for the hardware).
             "settings": {"hal": "unix", "bind": "127.0.0.1", "broadcast": "127.0.0.1", "port_leader": 27060,
                          "plant": ["127.0.0.1", 27061], "http": {"port": PORT + 1, "bind": "127.0.0.1"},
                          "page": str(ROOT / "build" / "page.html.gz")}}
    (tmp_path / "label.json").write_text(json.dumps(label))
    proc = start(tmp_path)
    yield tmp_path, proc
    proc.kill()
    proc.wait()


def test_the_setup_page_lists_the_networks_and_refuses_what_is_wrong(unit):
    work, proc = unit
    assert wait_for(up, 10), (work / "log.txt").read_text()
    status, doc = call("GET", "/api/setup")
    assert status == 200 and doc["essid"] == "ampshare-00ff"  # the MAC's last four hex digits
    # Each network once, at its strongest, strongest first; a hidden one is not listed.
    assert doc["networks"] == [{"ssid": "home", "rssi": -48, "secure": True},
                               {"ssid": "garage-ap", "rssi": -71, "secure": True}]
    status, page = call("GET", "/generate_204")  # a phone's portal probe gets the setup page
    assert status == 200 and "Code on the unit's label" in page
    for form, field in (({"code": "wrong", "role": "leader", "wifi": None}, "code"),
                        ({"code": CODE, "role": "boss", "wifi": None}, "role"),
                        ({"code": CODE, "role": "follower", "wifi": None}, "wifi"),
                        ({"code": CODE, "role": "leader", "wifi": {"ssid": "home", "password": "short"}}, "wifi.password"),
                        ({"code": CODE, "role": "leader", "wifi": None, "colour": "red"}, "colour")):
        status, doc = call("POST", "/api/setup", form)
        assert status == 400 and doc["field"] == field, (form, doc)
    assert not (work / "settings.json").exists() and proc.poll() is None  # nothing saved, still serving


def test_a_leader_set_up_from_its_page_starts_with_sharing_off_on_a_starter_site(unit):
    work, proc = unit
    assert wait_for(up, 10), (work / "log.txt").read_text()
    status, doc = call("POST", "/api/setup", {"code": CODE, "role": "leader",
                                              "wifi": {"ssid": "home", "password": "home-pass-1"}})
    assert status == 200 and doc == {"saved": True, "role": "leader", "join": "home"}, doc
    assert proc.wait(5) == 0  # it ends, to start again in its role
    s = json.loads((work / "settings.json").read_text())
    assert s["role"] == "leader" and s["wifi"] == {"ssid": "home", "password": "home-pass-1"}
    assert s["ap"] == {"essid": "ampshare-00ff", "password": CODE} and s["sharing"] is False and s["code"] == CODE
    site = json.loads((work / "site.json").read_text())
    assert [g["id"] for g in site["groups"]] == ["main"] and site["chargers"] == []
    leader = start(work)
    try:
        assert wait_for(lambda: up(PORT + 1), 10), (work / "log.txt").read_text()
        state = call("GET", "/api/state", port=PORT + 1)[1]
        assert state["sharing"] is False and state["chargers"] == {}
    finally:
        leader.kill()
        leader.wait()


def test_a_follower_joins_the_network_it_is_given(unit):
    work, proc = unit
    assert wait_for(up, 10), (work / "log.txt").read_text()
    status, doc = call("POST", "/api/setup", {"code": CODE, "role": "follower",
                                              "wifi": {"ssid": "ampshare-1a2b", "password": "leader-label"}})
    assert status == 200 and doc["role"] == "follower", doc
    assert proc.wait(5) == 0
    s = json.loads((work / "settings.json").read_text())
    assert s["role"] == "follower" and s["wifi"]["ssid"] == "ampshare-1a2b" and "ap" not in s
    assert not (work / "site.json").exists()
