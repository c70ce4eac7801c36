"""The leader's page and HTTP API (docs/api.md), served by the real firmware in the unix port
over loopback, its plant and followers running: every endpoint, its refusals, the login rules
and the body cap."""
import gzip
import http.client
import json
import socket
import sys
import time

import pytest

from test_system import wait_for
from vm import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from sim import Monitor, Sim  # noqa: E402

SITE = ROOT / "examples" / "home.json"
PASSWORD = "garage-door-42"


class Client:
    def __init__(self, port):
        self.port = port
        self.cookie = None

    def call(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if self.cookie:
            h["Cookie"] = self.cookie
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        set_cookie = r.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";")[0]
        try:
            doc = json.loads(payload)
        except ValueError:
            doc = payload
        return r.status, doc, r

    def login(self, password):
        return self.call("POST", "/api/login", {"password": password})


def page_gz(tmp_path_factory):
    # The page as make builds it, from the source in lib/.
    path = tmp_path_factory.mktemp("page") / "page.html.gz"
    path.write_bytes(gzip.compress((ROOT / "lib" / "ampshare" / "web" / "page.html").read_bytes(), mtime=0))
    return path


def running(tmp_path_factory, name, base_port, **kw):
    sim = Sim(SITE, work=tmp_path_factory.mktemp(name), base_port=base_port, http_port=base_port + 80,
              page=page_gz(tmp_path_factory), **kw)
    sim.monitor = Monitor(sim.monitor_port)
    sim.start_all()
    client = Client(base_port + 80)
    assert wait_for(lambda: _up(client), 15), (sim.work / "leader" / "log.txt").read_text()
    return sim, client


def _up(client):
    try:
        return client.call("GET", "/api/units")[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # The driveway's unit is not in the leader's list: it is paired from the page.
    # History buckets of 2 s rather than 4 min: records are written while the tests run.
    sim, client = running(tmp_path_factory, "web", 26300, unpaired=[1], leader_settings={"history_bucket_ms": 2000})
    yield sim, client
    sim.stop()


@pytest.fixture(scope="module")
def admin(site):
    sim, _ = site
    c = Client(sim.http_port)
    assert c.login(sim.label)[0] == 200
    assert c.call("POST", "/api/password", {"password": PASSWORD})[0] == 200
    return c


# ---- the page ------------------------------------------------------------------------------

def test_the_page_is_one_gzipped_file_with_an_etag(site):
    sim, client = site
    status, body, r = client.call("GET", "/")
    assert status == 200 and r.getheader("Content-Encoding") == "gzip"
    html = gzip.decompress(body).decode()
    assert "<title>ampshare</title>" in html and "/api/stream" in html
    assert "http://" not in html and "https://" not in html  # no CDN: the AP has no internet
    etag = r.getheader("ETag")
    assert etag and client.call("GET", "/", headers={"If-None-Match": etag})[0] == 304
    for probe in ("/generate_204", "/hotspot-detect.html", "/connecttest.txt"):  # phones' portal checks
        status, body, r = client.call("GET", probe)
        assert status == 200 and r.getheader("ETag") == etag


def test_a_path_not_served_is_404_and_a_method_a_path_does_not_take_is_405(site):
    # The routes are one table the server reads (web/server.py), not a Microdot route each.
    sim, client = site
    for method, path in (("GET", "/nowhere"), ("GET", "/api/limit/"), ("GET", "/api/limit/7x"),
                         ("GET", "/api/limit/7/8"), ("GET", "/api/statex")):
        assert client.call(method, path)[0] == 404, (method, path)
    for method, path in (("DELETE", "/api/site"), ("POST", "/api/state"), ("POST", "/"), ("GET", "/api/site/preview"),
                         ("PUT", "/api/limit/7")):
        assert client.call(method, path)[0] == 405, (method, path)
    assert client.call("HEAD", "/api/state")[0] == 200


def raw_answer(sim, request):
    with socket.create_connection(("127.0.0.1", sim.http_port), timeout=10) as s:
        s.sendall(request)
        got = b""
        while True:
            part = s.recv(4096)
            if not part:
                return got
            got += part


def test_a_malformed_request_is_400_and_a_query_is_url_decoded(site):
    # The server reads requests itself (web/server.py's _request), keeping only what a
    # handler reads: what it cannot read is answered 400 and the server goes on.
    sim, client = site
    # Each ends with its faulty line: the server answers at that line, and bytes it had not
    # read would make its close a reset that may cut the answer.
    for bad in (b"GET /api/state\r\n",  # no protocol
                b"GET /api/state HTTP/1.0\r\nno colon here\r\n",
                b"PUT /api/site HTTP/1.0\r\nContent-Length: ten\r\n",
                # A line over 1,024 bytes that never ends is refused when its 1,025th byte is
                # read, not read on until its end comes (or the 10 s a request has).
                b"GET /api/state HTTP/1.0\r\nX-Long: " + b"a" * 1017):
        t0 = time.monotonic()
        assert raw_answer(sim, bad).startswith(b"HTTP/1.0 400"), bad
        assert time.monotonic() - t0 < 5, bad
    # A query's names and values are URL-decoded, and a repeated name counts once, the first.
    plain = client.call("GET", "/api/history?node=main&phase=1")
    encoded = client.call("GET", "/api/history?no%64e=ma%69n&phase=1&phase=9")
    assert plain[0] == encoded[0] == 200 and encoded[1]["series"].keys() == plain[1]["series"].keys()
    assert client.call("GET", "/api/history?node=nowhere&phase=1")[1]["field"] == "node"
    assert client.call("GET", "/api/state")[0] == 200


# ---- the live view ---------------------------------------------------------------------------

def test_the_live_document_shows_the_five_figures_and_why(site):
    sim, client = site

    def charging():
        doc = client.call("GET", "/api/state")[1]
        return doc if doc["chargers"]["garage"]["offered"] > 0 and doc["chargers"]["garage"]["meas"][0] > 0 else None
    doc = wait_for(charging, 30)
    assert doc, client.call("GET", "/api/state")[1]
    main = doc["groups"]["main"]
    for fig in ("meter", "available", "requested", "allocated", "usage"):
        assert len(main[fig]) == 3, fig
    assert main["meter"][0] > 0 and main["usage"][0] > 0 and main["requested"][0] >= 6000
    g = doc["chargers"]["garage"]
    assert g["link"] == "online" and g["heard_ms_ago"] < 3000 and g["pilot"] in "CD"
    assert g["why"] in ("at its maximum", "demand-limited: its car draws less") or g["why"].startswith("limited by fuse main")


def test_the_stream_sends_the_document_every_second(site):
    sim, client = site
    conn = http.client.HTTPConnection("127.0.0.1", sim.http_port, timeout=10)
    conn.request("GET", "/api/stream")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    events, t0 = [], time.monotonic()
    while len(events) < 3:
        line = r.fp.readline().decode()
        if line.startswith("data: "):
            events.append((time.monotonic(), json.loads(line[6:])))
    conn.close()
    assert all("groups" in e and "chargers" in e for _, e in events)
    assert events[-1][0] - events[0][0] >= 1.5  # paced, not a flood


def test_reading_needs_no_login_but_changing_does(site):
    sim, _ = site
    anyone = Client(sim.http_port)
    assert anyone.call("GET", "/api/state")[0] == 200
    assert anyone.call("GET", "/api/site")[0] == 200
    site_doc = json.loads((sim.work / "leader" / "site.json").read_text())
    for method, path, body in (("PUT", "/api/site", site_doc), ("POST", "/api/site/preview", site_doc),
                               ("POST", "/api/pair", {"charger": "driveway", "uid": "02a500000002", "code": "x"}),
                               ("POST", "/api/limit", {"charger": "garage", "a": 10})):
        status, doc, _ = anyone.call(method, path, body)
        assert status == 401 and doc["field"] == "session", (path, doc)


# ---- the site ----------------------------------------------------------------------------------

def test_a_refused_site_names_the_field_and_changes_nothing(site, admin):
    sim, _ = site
    path = sim.work / "leader" / "site.json"
    before = path.read_text()
    bad = json.loads(before)
    bad["chargers"][0]["rotation"] = "L124"
    status, doc, _ = admin.call("PUT", "/api/site", bad)
    assert status == 400 and doc["field"] == "chargers[0].rotation" and doc["reason"], doc
    status, doc, _ = admin.call("PUT", "/api/site", raw=b"{not json")
    assert status == 400 and doc == {"field": "body", "reason": "not JSON"}
    # Over the body cap: refused on its length, before the body is read (so it is not sent
    # here: a server that answers first may reset a connection still sending).
    with socket.create_connection(("127.0.0.1", sim.http_port), timeout=10) as s:
        s.sendall(b"PUT /api/site HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 30000\r\n" + ("Cookie: %s\r\n\r\n" % admin.cookie).encode())
        assert s.recv(64).startswith(b"HTTP/1.0 413")
    assert path.read_text() == before
    assert admin.call("GET", "/api/state")[0] == 200  # and the server goes on


def test_a_preview_allocates_the_edited_site_without_saving_it(site, admin):
    sim, _ = site
    path = sim.work / "leader" / "site.json"
    before = path.read_text()
    edited = json.loads(before)
    edited["groups"][0]["limit_a"] = 20
    status, doc, _ = admin.call("POST", "/api/site/preview", edited)
    assert status == 200, doc
    cur = {c: v["current_a"] for c, v in doc["chargers"].items()}
    assert set(cur) == {"garage", "driveway"}
    avail = doc["groups"]["main"]["available_a"]
    assert max(avail) <= 20 and sum(cur.values()) <= max(avail)  # both 3-phase: every phase
    assert any(cur.values())  # the garage's car charges, and still would
    assert path.read_text() == before


# ---- units and pairing ---------------------------------------------------------------------------

def test_a_unit_heard_is_paired_from_the_page(site, admin):
    sim, _ = site
    uid = "02a500000002"

    def heard():
        u = admin.call("GET", "/api/units")[1]
        return u if any(h["uid"] == uid and h["charger"] is None for h in u["heard"]) else None
    units = wait_for(heard, 15)
    assert units and units["chargers"]["driveway"]["uid"] is None
    status, doc, _ = admin.call("POST", "/api/pair", {"charger": "driveway", "uid": "02a5", "code": "code-1"})
    assert status == 400 and doc["field"] == "uid"
    status, doc, _ = admin.call("POST", "/api/pair", {"charger": "nowhere", "uid": uid, "code": "code-1"})
    assert status == 400 and doc["field"] == "charger"
    status, doc, _ = admin.call("POST", "/api/pair", {"charger": "garage", "uid": uid, "code": "code-1"})
    assert status == 400 and doc["field"] == "charger"  # the garage's own unit keeps it
    assert admin.call("POST", "/api/pair", {"charger": "driveway", "uid": uid, "code": "code-1"})[0] == 200

    def online():
        ch = admin.call("GET", "/api/units")[1]["chargers"]["driveway"]
        return ch["uid"] == uid and ch["link"] == "online"
    assert wait_for(online, 20), admin.call("GET", "/api/units")[1]


# ---- external limits -------------------------------------------------------------------------------

def test_a_limit_set_from_the_page_holds_and_clears(site, admin):
    sim, _ = site
    status, doc, _ = admin.call("POST", "/api/limit", {"charger": "garage", "a": 8, "watchdog_s": 60})
    assert status == 200 and doc["state"] in ("requested", "completed"), doc
    rid = doc["id"]
    assert wait_for(lambda: admin.call("GET", "/api/limit/%d" % rid)[1]["state"] == "completed", 5)
    assert wait_for(lambda: 0 < admin.call("GET", "/api/state")[1]["chargers"]["garage"]["offered"] <= 8000, 10)
    assert admin.call("GET", "/api/state")[1]["chargers"]["garage"]["why"] == "external limit"
    for body, field in (({"charger": "garage"}, "a"), ({"charger": "garage", "a": 8, "w": 2000}, "a"),
                        ({"charger": "garage", "a": "8"}, "a"), ({"group": "main", "charger": "garage", "a": 8}, "group"),
                        ({"charger": "garage", "a": 8, "colour": 1}, "colour"),
                        ({"charger": "garage", "a": 8, "watchdog_s": -1}, "watchdog_s")):
        status, doc, _ = admin.call("POST", "/api/limit", body)
        assert status == 400 and doc["field"] == field, (body, doc)
    status, doc, _ = admin.call("POST", "/api/limit", {"charger": "nowhere", "a": 8})
    assert status == 200 and doc["state"] == "failed" and "unknown charger" in doc["reason"]
    status, doc, _ = admin.call("DELETE", "/api/limit/%d" % rid)
    assert status == 200 and doc["state"] in ("requested", "completed")
    assert wait_for(lambda: admin.call("GET", "/api/state")[1]["chargers"]["garage"]["offered"] > 8000, 20)
    assert admin.call("GET", "/api/limit/999999")[0] == 404


# ---- sharing, unpairing and the event log --------------------------------------------------------

def test_an_unpaired_unit_is_stopped_first_then_forgotten(site, admin):
    # The driveway's unit was paired from the page (above): it is told nothing first, then
    # its key is dropped, and the charger is free for another unit.
    sim, _ = site
    uid = "02a500000002"
    assert admin.call("GET", "/api/units")[1]["chargers"]["driveway"]["uid"] == uid
    assert admin.call("POST", "/api/unpair", {"charger": "nowhere"})[1]["field"] == "charger"
    status, doc, _ = admin.call("POST", "/api/unpair", {"charger": "driveway"})
    assert status == 200 and doc == {"unpaired": "driveway"}, doc
    assert admin.call("GET", "/api/state")[1]["chargers"]["driveway"]["why"].startswith("unpairing")
    assert wait_for(lambda: admin.call("GET", "/api/state")[1]["chargers"]["driveway"]["offered"] == 0, 2)

    def gone():
        return admin.call("GET", "/api/units")[1]["chargers"]["driveway"]["uid"] is None
    assert wait_for(gone, 20), admin.call("GET", "/api/units")[1]
    keys = json.loads((sim.work / "leader" / "leader.json").read_text())["keys"]
    assert "driveway" not in keys and "garage" in keys
    assert admin.call("POST", "/api/unpair", {"charger": "driveway"})[1] == {"field": "charger", "reason": "has no unit"}


def test_the_history_is_read_from_flash_per_node_and_phase(site):
    sim, client = site

    def recorded():
        doc = client.call("GET", "/api/history?node=main&phase=1")[1]
        return doc if len([v for v in doc["series"]["allocated"] if v]) >= 2 else None
    doc = wait_for(recorded, 15)
    assert doc, client.call("GET", "/api/history?node=main&phase=1")[1]
    assert doc["period_s"] == 2 and set(doc["series"]) == {"meter", "allocated", "usage"}
    assert doc["restarts"][0] == 0  # the first record follows the start: a gap of unknown length
    n = len(doc["series"]["meter"])
    assert all(len(v) == n for v in doc["series"].values())
    assert max(v for v in doc["series"]["meter"] if v is not None) > 5000  # the garage's car and the house
    garage = client.call("GET", "/api/history?node=garage&phase=1")[1]
    assert set(garage["series"]) == {"offered", "drawn"} and max(v or 0 for v in garage["series"]["drawn"]) > 0
    for query, field in (("node=main&phase=4", "phase"), ("node=nowhere&phase=1", "node"), ("phase=1", "node")):
        status, doc, _ = client.call("GET", "/api/history?" + query)
        assert status == 400 and doc["field"] == field, (query, doc)
    files = sorted(p.name for p in (sim.work / "leader").glob("history*"))
    assert files, "the history is kept on flash"


def test_the_event_log_tells_what_happened(site, admin):
    events = admin.call("GET", "/api/events")[1]["events"]
    texts = [e["text"] for e in events]
    kinds = {e["kind"] for e in events}
    assert {"pair", "limit", "config", "link", "site"} <= kinds, events
    assert any(t.startswith("driveway: unit 02a500000002 unpaired") for t in texts)
    assert any(t.startswith("site refused: chargers[0].rotation") for t in texts)
    assert "garage heard" in texts
    ages = [e["s_ago"] for e in events]
    assert ages == sorted(ages)  # newest first


# ---- a slow client --------------------------------------------------------------------------------

def test_a_client_sending_a_byte_a_second_holds_no_control_period(site):
    sim, client = site
    sim.monitor.poll()
    slow = socket.create_connection(("127.0.0.1", sim.http_port))
    got, t0 = 0, time.monotonic()
    try:
        for ch in b"GET /api/state HTTP/1.1\r\n"[:6]:
            slow.send(bytes([ch]))
            time.sleep(1)
            before = sim.monitor.received
            sim.monitor.poll()
            got += sim.monitor.received > before
            assert client.call("GET", "/api/units")[0] == 200  # others are served meanwhile
    finally:
        slow.close()
    # The leader's status datagram comes from its once-a-second task: it kept coming.
    assert got >= 4, got
    st = client.call("GET", "/api/state")[1]
    assert st["chargers"]["garage"]["link"] == "online"  # (the driveway's unit was unpaired above)


def closed(sock):
    # Closed by the server without an answer: an end of stream, or a reset (data left unread).
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True


def test_a_stalled_request_is_dropped_and_connections_are_bounded(site):
    # Five connections that never finish their request hold the server's five slots: a sixth
    # is closed at once, and after the 10 s a request may take, the five are closed too.
    sim, client = site
    sim.monitor.poll()
    before = sim.monitor.received
    stalled = [socket.create_connection(("127.0.0.1", sim.http_port)) for _ in range(5)]
    t0 = time.monotonic()
    try:
        for s in stalled:
            s.sendall(b"GET /api/sta")
        time.sleep(0.5)
        extra = socket.create_connection(("127.0.0.1", sim.http_port), timeout=5)
        extra.sendall(b"GET /api/state HTTP/1.0\r\n\r\n")
        assert closed(extra)  # unanswered: every slot is held
        extra.close()
        for s in stalled:
            s.settimeout(15)
            assert closed(s)  # by the server
        assert 9 <= time.monotonic() - t0 <= 14
        sim.monitor.poll()
        assert sim.monitor.received - before >= 8  # the control loop's status kept coming, once a second
    finally:
        for s in stalled:
            s.close()
    assert client.call("GET", "/api/units")[0] == 200  # and the slots are free again


# ---- saving a site: applied by a restart, and no car pauses ----------------------------------------

def test_a_saved_site_is_applied_and_no_charging_car_pauses(site, admin):
    sim, _ = site
    path = sim.work / "leader" / "site.json"
    new = json.loads(path.read_text())
    new["chargers"][0]["max_a"] = 30
    draws = []
    status, doc, _ = admin.call("PUT", "/api/site", new)
    assert status == 200 and doc["saved"], doc
    assert json.loads(path.read_text()) == new
    end = time.monotonic() + 20
    while time.monotonic() < end:
        sim.restart_dead()
        draws.append(sim.status()["chargers"]["garage"]["draw_ma"])
        try:
            if admin.call("GET", "/api/site")[1] == new and len(draws) > 8:
                break
        except OSError:
            pass  # the leader is starting again
        time.sleep(0.5)
    assert admin.call("GET", "/api/site")[1] == new
    assert min(draws) > 0, draws  # the garage's car drew throughout
    # The password survives the restart (saved), the session does not (RAM).
    assert admin.call("PUT", "/api/site", new)[0] == 401
    assert admin.login(PASSWORD)[0] == 200


def test_a_unit_unpaired_while_it_kept_its_key_claims_its_charger_on_the_page(site, admin):
    # The driveway's unit was unpaired above and keeps its key: no leader commands it, so it
    # says which charger it thinks it is (a HELLO every 10 s once at its fallback), and the
    # page lists it among the units heard, not paired here.
    def claimed():
        heard = admin.call("GET", "/api/units")[1]["heard"]
        return [h for h in heard if h["uid"] == "02a500000002" and h["charger"] is None and h["claims"]]
    found = wait_for(claimed, 30)
    assert found and found[0]["claims"] == "driveway", admin.call("GET", "/api/units")[1]


def _restarted(sim, admin):
    # A save restarts the leader (make sim's restart_dead stands in for the board's reset); the
    # session is gone with it.
    time.sleep(1)
    assert wait_for(lambda: sim.restart_dead() or _up(admin), 20), (sim.work / "leader" / "log.txt").read_text()[-2000:]
    assert admin.login(PASSWORD)[0] == 200


def test_the_mqtt_settings_are_refused_by_field_saved_and_applied(site, admin):
    sim, _ = site
    path = sim.work / "leader" / "settings.json"
    assert Client(admin.port).call("GET", "/api/mqtt")[0] == 401
    status, doc, _ = admin.call("GET", "/api/mqtt")
    assert status == 200 and doc == {"mqtt": None, "status": None}, doc
    before = path.read_text()
    for body, field in (({"host": "broker.example"}, "settings.mqtt.host"), ({"host": "127.0.0.1", "port": 0},
                        "settings.mqtt.port"), ({"host": "127.0.0.1", "password": "x"}, "settings.mqtt.password"),
                        ({"host": "127.0.0.1", "qos": 1}, "qos")):
        status, doc, _ = admin.call("PUT", "/api/mqtt", body)
        assert status == 400 and doc["field"] == field, (body, doc)
    assert path.read_text() == before  # refused: nothing changed
    mqtt = {"host": "127.0.0.1", "port": 1, "user": "u", "password": "secret", "prefix": "ampshare/t", "discovery": False}
    status, doc, _ = admin.call("PUT", "/api/mqtt", mqtt)
    assert status == 200 and doc["saved"], doc
    assert json.loads(path.read_text())["mqtt"] == mqtt
    _restarted(sim, admin)
    doc = admin.call("GET", "/api/mqtt")[1]
    assert doc["mqtt"]["host"] == "127.0.0.1" and doc["mqtt"]["password_set"] is True and "password" not in doc["mqtt"]
    assert doc["status"]["state"] in ("connecting", "backoff"), doc  # the bridge runs: nothing listens on port 1
    # A form that leaves the password out keeps it.
    assert admin.call("PUT", "/api/mqtt", {k: v for k, v in mqtt.items() if k != "password"})[0] == 200
    assert json.loads(path.read_text())["mqtt"]["password"] == "secret"
    _restarted(sim, admin)
    assert admin.call("DELETE", "/api/mqtt")[0] == 200
    assert json.loads(path.read_text())["mqtt"] is None
    _restarted(sim, admin)
    assert admin.call("GET", "/api/mqtt")[1] == {"mqtt": None, "status": None}


def test_a_unit_without_a_phase_relay_is_refused_for_a_switching_charger(site, admin):
    # The driveway's unit (no relay: its settings say no phase_switching) says so in its HELLO.
    # A site that switches the driveway's phases would ask it to switch for ever: it is
    # refused by name at pairing, and a listing made before it was heard is not paired.
    sim, _ = site
    path = sim.work / "leader" / "site.json"
    new = json.loads(path.read_text())
    new["chargers"][1]["phase_switching"] = True
    assert admin.call("PUT", "/api/site", new)[0] == 200
    _restarted(sim, admin)
    uid = "02a500000002"
    assert wait_for(lambda: any(h["uid"] == uid for h in admin.call("GET", "/api/units")[1]["heard"]), 15)
    status, doc, _ = admin.call("POST", "/api/pair", {"charger": "driveway", "uid": uid, "code": "code-1"})
    assert status == 400 and doc["field"] == "chargers[1].phase_switching" and "no phase relay" in doc["reason"], doc
    time.sleep(3)  # a HELLO every 2 s: had it been listed, it would be paired by now
    assert admin.call("GET", "/api/units")[1]["chargers"]["driveway"]["uid"] is None


# ---- the admin's login, from the first boot ------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    # A leader as its first-boot page leaves it: sharing off until the installer turns it on.
    sim, client = running(tmp_path_factory, "web-fresh", 26500, followers=1, leader_settings={"sharing": False})
    yield sim, client
    sim.stop()


def test_the_first_login_only_sets_a_password_and_guessing_is_braked(fresh):
    sim, c = fresh
    assert c.login("wrong-code")[0] == 401
    status, doc, r = c.login(sim.label)  # the code on the leader's label, before a password exists
    assert status == 200 and doc == {"password_set": False}
    cookie = r.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    site_doc = json.loads((sim.work / "leader" / "site.json").read_text())
    status, doc, _ = c.call("PUT", "/api/site", site_doc)
    assert status == 403 and doc["reason"] == "set a password first"
    assert c.call("POST", "/api/password", {"password": "short"})[0] == 400
    assert c.call("POST", "/api/password", {"password": sim.label})[0] == 400
    assert c.call("POST", "/api/password", {"password": PASSWORD, "also": 1})[1]["field"] == "also"
    assert c.call("POST", "/api/password", {"password": PASSWORD})[0] == 200
    saved = json.loads((sim.work / "leader" / "web.json").read_text())
    assert PASSWORD not in json.dumps(saved) and len(saved["hash"]) == 64  # a salted hash
    assert c.call("POST", "/api/site/preview", site_doc)[0] == 200  # the session may now change things
    other = Client(sim.http_port)
    assert other.login(sim.label)[0] == 401  # the label code no longer logs in
    statuses = [other.login("guess-%d" % i) for i in range(7)]
    assert [s for s, _, _ in statuses[:5]] == [401] * 5
    locked = [r for s, _, r in statuses[5:] if s == 429]
    assert locked and int(locked[0].getheader("Retry-After")) >= 1
    assert other.login(PASSWORD)[0] == 429  # even the right one waits out the brake
    time.sleep(int(locked[-1].getheader("Retry-After")) + 0.2)
    assert other.login(PASSWORD)[0] == 200


def test_until_sharing_is_on_no_charger_is_offered_current_and_the_switch_is_kept(fresh):
    sim, c = fresh
    assert c.login(PASSWORD)[0] == 200  # set by the first login's test
    st = c.call("GET", "/api/state")[1]
    g = st["chargers"]["garage"]
    assert st["sharing"] is False and g["offered"] == 0 and g["fallback"] == 0 and g["why"] == "sharing is off"
    assert sim.status()["chargers"]["garage"]["offered_ma"] == 0  # the follower offers its car nothing
    assert Client(sim.http_port).call("POST", "/api/sharing", {"on": True})[0] == 401
    assert c.call("POST", "/api/sharing", {"on": "yes"})[1]["field"] == "on"
    assert c.call("POST", "/api/sharing", {"on": True})[1] == {"sharing": True}
    assert wait_for(lambda: sim.status()["chargers"]["garage"]["draw_ma"] > 0, 15)  # the car charges
    assert json.loads((sim.work / "leader" / "leader.json").read_text())["sharing"] is True
    assert "sharing on" in [e["text"] for e in c.call("GET", "/api/events")[1]["events"]]
    # Kept across a restart, over the setting's "off".
    sim.kill("leader")
    sim.start("leader")
    assert wait_for(lambda: _up(c), 15)
    assert wait_for(lambda: c.call("GET", "/api/state")[1]["chargers"]["garage"]["link"] == "online", 10)
    st = c.call("GET", "/api/state")[1]
    assert st["sharing"] is True and st["chargers"]["garage"]["why"] != "sharing is off"


def test_a_paused_charger_says_when_the_next_turn_is(fresh):
    sim, admin = fresh
    assert admin.login(PASSWORD)[0] == 200  # again: the leader started again above
    # (Last: its car stays paused for the follower's minimum pause, a minute.)
    # A group limit under the garage's 6 A minimum pauses it: the page says when turns re-rank.
    doc = admin.call("POST", "/api/limit", {"group": "main", "a": 4, "watchdog_s": 60})[1]

    def paused():
        return admin.call("GET", "/api/state")[1]["chargers"]["garage"]["why"]
    assert wait_for(lambda: paused().startswith("paused: the minimum does not fit now; next turn in "), 10), paused()
    mins = int(paused().split("next turn in ")[1].split()[0])
    assert 1 <= mins <= 15  # the site's turn interval (core/site.py's default: 15 min)
    admin.call("DELETE", "/api/limit/%d" % doc["id"])
    assert wait_for(lambda: admin.call("GET", "/api/state")[1]["chargers"]["garage"]["offered"] > 0, 20)


def test_an_answer_a_client_stops_taking_frees_its_slot():
    # A writer that never takes its data (a phone asleep with the stream open, its window
    # shut): the write gives up after the limit, the connection is closed, the slot freed.
    code = """
import asyncio
from ampshare.web import server as S
class Stuck:
    closed = False
    async def awrite(self, data):
        await asyncio.sleep_ms(60_000)
    async def aclose(self):
        Stuck.closed = True
    def get_extra_info(self, what):
        return ("127.0.0.1", 1)
class Reader:
    data = b"GET /api/state HTTP/1.0\\r\\n\\r\\n"
    async def read(self, n):
        got, Reader.data = Reader.data[:n], Reader.data[n:]
        return got
class Web:
    asked = None
    def state(self, req):
        Web.asked = req.path
        return "a" * 100
async def main():
    srv = S._Server(Web())
    srv.timeout = 200
    await srv.handle_request(Reader(), Stuck())
    print(srv.open, srv.stalled, Stuck.closed, Web.asked)
asyncio.run(main())
"""
    import subprocess
    from vm import micropython, mp_env
    out = subprocess.run([micropython(), "-c", code], capture_output=True, text=True, env=mp_env(), cwd=ROOT,
                         timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.split() == ["0", "1", "True", "/api/state"]
