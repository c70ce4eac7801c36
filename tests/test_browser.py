"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven
by Selenium against the leader in the unix port, its plant and followers running, in a
phone-sized window. The page is used as an installer commissions a site: the leader starts
with sharing off; log in with the label code, set a password, pair the unit that is not paired
yet, edit the site in the tree editor (a refusal shown at its field), preview and save it,
turn sharing on and watch the live view follow the plant, read the events, the history, and
unpair a unit. The history graph is also drawn from a fixed answer, to check its gaps and
restart marks. A screenshot of each step goes to build/screens/."""
import json
import re
import sys
import time
from urllib.parse import unquote

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from test_web import page_gz
from vm import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from sim import Sim  # noqa: E402

SCREENS = ROOT / "build" / "screens"
PASSWORD = "garage-door-42"
PHONE = (412, 915)  # CSS pixels of a common Android phone


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # As the first-boot setup leaves a leader: nothing offered before the installer says so.
    sim = Sim(ROOT / "examples" / "home.json", work=tmp_path_factory.mktemp("browser"), base_port=26900,
              http_port=26980, page=page_gz(tmp_path_factory), unpaired=[1], meter_line=True,
              # History records every 2 s rather than 4 min: the graph has figures within the test.
              leader_settings={"sharing": False, "history_bucket_ms": 2000})
    sim.start_all()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    # No screen, root in a container, and a closed network: nothing may reach out.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--force-device-scale-factor=1"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    drv.implicitly_wait(0)
    drv.set_window_size(*PHONE)
    # The window's outer size holds the browser's frame: make the page itself phone-wide.
    inner = drv.execute_script("return window.innerWidth")
    drv.set_window_size(PHONE[0] * 2 - inner, PHONE[1])
    yield drv
    drv.quit()


def shot(drv, name):
    SCREENS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SCREENS / (name + ".png")))


def until(drv, what, timeout=30, sim=None):
    def step(d):
        if sim is not None:
            sim.restart_dead()  # the leader starts again after a saved site
        return what(d)
    # An element the page drew anew between finding and reading it is not there yet: asked again.
    return WebDriverWait(drv, timeout, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(step)


# The live tables are drawn anew every second: read them in one script, never hold an element.
COLUMNS = {"offered": 2, "L1": 3, "link": 7, "why": 8}


def cell(drv, charger, column):
    return drv.execute_script(
        "const r = document.querySelector('tr.ch[data-id=\"' + arguments[0] + '\"]');"
        "return r ? r.cells[arguments[1]].textContent : null", charger, COLUMNS[column])


def text(drv, ident):
    return drv.execute_script("return document.getElementById(arguments[0]).innerText", ident)


def amps(drv, charger, column="offered"):
    t = cell(drv, charger, column)
    return float(t) if t not in (None, "–") else None


def message(drv):
    return text(drv, "msg")


def tab(drv, name):
    drv.find_element(By.CSS_SELECTOR, 'nav button[data-s="%s"]' % name).click()


def field(drv, path):
    """The site editor's input for a field, by the parser's name for it."""
    return drv.find_element(By.CSS_SELECTOR, '#tree [data-p="%s"]' % path)


def type_in(drv, path, value):
    # As a user does: select what is there and type over it (the change comes with leaving it).
    el = field(drv, path)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(value)
    return el


def click(drv, css):
    # Scrolled to the middle of the screen first: the site editor's bar sits over the bottom.
    el = drv.find_element(By.CSS_SELECTOR, css)
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def unit_of(drv, charger):
    return drv.execute_script(
        "const r = document.querySelector('#paired tr[data-id=\"' + arguments[0] + '\"]');"
        "return r ? r.cells[1].textContent : null", charger)


def legend(drv):
    """The history graph's legend: each series and its last figure in A."""
    words = text(drv, "hlegend").replace("■", "").split()
    return {words[i]: float(words[i + 1]) for i in range(0, len(words) - 2, 3) if words[i + 2] == "A"}


def columns(drv):
    """Per column of the history canvas: whether the usage or drawn line (#07c), and a restart
    mark (#a00), colour a pixel in it."""
    return drv.execute_script(
        "const c = document.getElementById('graph'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const has = (x, r, g, b) => { for (let y = 0; y < c.height; y++) { const i = 4 * (y * c.width + x);"
        "  if (Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) return 1 } return 0 };"
        "return [...Array(c.width).keys()].map(x => [has(x, 0, 119, 204), has(x, 170, 0, 0)])")


def saved_site(sim):
    return json.loads((sim.work / "leader" / "site.json").read_text())


def test_an_installer_commissions_the_home_site_from_the_page(site, browser, tmp_path):
    drv = browser
    drv.get("http://127.0.0.1:%d/" % site.http_port)
    # The live view streams. Sharing is off: the garage's car waits, offered nothing, and the
    # page says so plainly; the driveway has no unit yet.
    until(drv, lambda d: text(d, "conn") == "live" and cell(d, "garage", "why") == "sharing is off")
    assert text(drv, "sharetext") == "Sharing is off: no charger is offered current"
    assert amps(drv, "garage") == 0
    groups = text(drv, "groups")
    assert "main" in groups and "L3" in groups and "available" in groups
    assert cell(drv, "driveway", "why") == "no unit paired"
    # The meter the leader reads on its RS485 line, and how it is faring.
    until(drv, lambda d: re.match(r"meter grid: [1-9]\d* good reads", text(d, "meters")))
    shot(drv, "01-live-sharing-off")

    # First login: the label code, then a password of the installer's own.
    tab(drv, "admin")
    drv.find_element(By.ID, "pw").send_keys(site.label)
    drv.find_element(By.ID, "login").click()
    until(drv, lambda d: "set a password now" in message(d))
    drv.find_element(By.ID, "newpw").send_keys(PASSWORD)
    drv.find_element(By.ID, "setpw").click()
    until(drv, lambda d: message(d) == "password set")
    shot(drv, "02-admin")

    # The unit heard but not paired: pair it as the driveway, with the code on its label.
    tab(drv, "units")
    until(drv, lambda d: d.find_elements(By.CSS_SELECTOR, ".unit .pair"), sim=site)
    unit = drv.find_element(By.CSS_SELECTOR, ".unit")
    assert unit.get_attribute("data-uid") == "02a500000002"
    Select(unit.find_element(By.TAG_NAME, "select")).select_by_visible_text("driveway")
    unit.find_element(By.CSS_SELECTOR, ".code").send_keys("code-1")
    unit.find_element(By.CSS_SELECTOR, ".pair").click()
    until(drv, lambda d: "pairs when next heard" in message(d))
    tab(drv, "live")
    until(drv, lambda d: (cell(d, "driveway", "link") or "").startswith("online"), 30)
    shot(drv, "03-paired")

    # The site as a tree: the fuse, its meter, its two chargers under it.
    tab(drv, "site")
    until(drv, lambda d: d.find_elements(By.CSS_SELECTOR, '#tree [data-p="groups[0].limit_a"]'))
    assert field(drv, "groups[0].limit_a").get_attribute("value") == "40"
    assert Select(field(drv, "groups[0].meter")).first_selected_option.text == "grid"
    tree = text(drv, "tree")
    assert "charger garage · 32 A · 3-phase" in tree and "charger driveway · 16 A · 3-phase" in tree
    assert "meter grid · modbus sdm630" in tree
    shot(drv, "04-site-tree")
    # A file the installer brought (the site with another reserve), imported into the editor.
    brought = json.loads((ROOT / "examples" / "home.json").read_text())
    brought["groups"][0]["reserve_a"] = 20
    (tmp_path / "site.json").write_text(json.dumps(brought))
    drv.find_element(By.ID, "import").send_keys(str(tmp_path / "site.json"))
    until(drv, lambda d: field(d, "groups[0].reserve_a").get_attribute("value") == "20")
    # Lower the main fuse, cap the garage's connector, add a charger under the main fuse.
    type_in(drv, "groups[0].limit_a", "32")
    click(drv, 'details[data-p="chargers[0]"] > summary')
    type_in(drv, "chargers[0].connector_max_a", "20")
    click(drv, 'details[data-p="groups[0]"] > p > button[data-a="c"]')
    type_in(drv, "chargers[2].id", "carport")
    Select(field(drv, "chargers[2].rotation")).select_by_visible_text("L312")
    # Its maximum is left out: the leader refuses the site, and the page shows why at the field.
    click(drv, "#preview")
    until(drv, lambda d: text(d, "siteerr") == "chargers[2].max_a: missing required field")
    assert "err" in field(drv, "chargers[2].max_a").get_attribute("class").split()
    assert drv.switch_to.active_element.get_attribute("data-p") == "chargers[2].max_a"
    assert "charger carport" in text(drv, "tree")
    shot(drv, "05-refused")
    field(drv, "chargers[2].max_a").send_keys("16")
    click(drv, "#preview")
    until(drv, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.pv")) == 3)
    assert message(drv) == "preview: nothing saved" and text(drv, "siteerr") == ""
    assert not drv.find_elements(By.CSS_SELECTOR, "#site .err")
    rows = {r[0]: r[1:] for r in drv.execute_script(
        "return [...document.querySelectorAll('tr.pv')].map(r => [...r.cells].map(c => c.textContent))")}
    assert set(rows) == {"garage", "driveway", "carport"}
    assert float(rows["garage"][0]) <= 20  # its connector's maximum, in the preview
    shot(drv, "06-preview")
    assert saved_site(site)["groups"][0]["limit_a"] == 40  # a preview saves nothing
    # The raw JSON (for experts) shows the same edited site.
    raw = json.loads(drv.find_element(By.ID, "sitetext").get_attribute("value"))
    assert raw["groups"][0]["limit_a"] == 32 and raw["chargers"][2] == {
        "id": "carport", "group": "main", "rotation": "L312", "max_a": 16}
    # Export: the edited site as a file (the link's data, read rather than downloaded).
    href = drv.execute_script("const a = document.getElementById('export'); a.onclick(); return a.href")
    assert json.loads(unquote(href.split(",", 1)[1])) == raw
    click(drv, "#save")
    until(drv, lambda d: message(d).startswith("saved"))  # not the preview's "nothing saved"
    cfg = saved_site(site)
    assert cfg["groups"][0]["limit_a"] == 32 and cfg["groups"][0]["reserve_a"] == 20
    assert cfg["chargers"][0]["connector_max_a"] == 20
    assert cfg["chargers"][2] == {"id": "carport", "group": "main", "rotation": "L312", "max_a": 16}

    # The leader starts again on it (and forgets every session): the stream comes back, the
    # new charger is listed, and sharing is still off.
    tab(drv, "live")
    time.sleep(1)
    until(drv, lambda d: text(d, "conn") == "live" and cell(d, "carport", "why") == "no unit paired"
          and cell(d, "driveway", "why") == "sharing is off", 60, sim=site)
    assert text(drv, "sharetext") == "Sharing is off: no charger is offered current"
    tab(drv, "admin")
    drv.find_element(By.ID, "pw").clear()
    drv.find_element(By.ID, "pw").send_keys(PASSWORD)
    drv.find_element(By.ID, "login").click()
    until(drv, lambda d: message(d) == "logged in", sim=site)

    # Sharing on: both cars are offered current, within the new 32 A fuse.
    tab(drv, "live")
    drv.find_element(By.ID, "sharebtn").click()
    until(drv, lambda d: message(d) == "sharing on")
    until(drv, lambda d: text(d, "sharetext") == "Sharing is on." and (amps(d, "garage") or 0) > 0
          and (amps(d, "driveway") or 0) > 0, 30, sim=site)
    assert drv.find_element(By.ID, "sharebtn").text == "Turn sharing off"
    assert amps(drv, "garage") <= 20
    assert amps(drv, "garage") + amps(drv, "driveway") <= 32
    # The view follows the plant: the cars start drawing.
    until(drv, lambda d: (amps(d, "garage", "L1") or 0) > 0 and (amps(d, "driveway", "L1") or 0) > 0, 30, sim=site)
    shot(drv, "07-sharing-on")

    # The events since the restart (kept in RAM), newest first, each with its kind.
    tab(drv, "events")
    until(drv, lambda d: "sharing on" in text(d, "evlist"))
    log = text(drv, "evlist").splitlines()
    assert log[-1].endswith("site leader started: 3 chargers, sharing off")
    assert [line for line in log if line.endswith("link driveway heard")]
    assert log.index([line for line in log if line.endswith("sharing sharing on")][0]) < len(log) - 1
    shot(drv, "08-events")

    # Unpair the driveway (two taps): it is offered nothing, then its unit is forgotten.
    tab(drv, "units")
    until(drv, lambda d: unit_of(d, "driveway") == "02a500000002")
    click(drv, 'tr[data-id="driveway"] .unpair')
    assert drv.find_element(By.CSS_SELECTOR, 'tr[data-id="driveway"] .unpair').text == "Sure? Unpair driveway"
    assert unit_of(drv, "driveway") == "02a500000002"  # the first tap asks, no more
    click(drv, 'tr[data-id="driveway"] .unpair')
    until(drv, lambda d: message(d) == "unpaired: driveway; reset its unit to pair it again")
    until(drv, lambda d: unit_of(d, "driveway") == "–", 30)
    assert unit_of(drv, "garage") == "02a500000001"
    assert not drv.find_elements(By.CSS_SELECTOR, 'tr[data-id="driveway"] .unpair')
    shot(drv, "09-unpaired")
    tab(drv, "live")
    until(drv, lambda d: cell(d, "driveway", "why") == "no unit paired" and amps(d, "driveway") == 0)

    # The history of the main fuse on L1 (the first node): its three series, each named with
    # its last figure; the garage's car draws, and it shows in the usage, drawn on the canvas.
    tab(drv, "history")
    nodes = [o.text for o in Select(drv.find_element(By.ID, "hnode")).options]
    assert nodes[0] == "main" and sorted(nodes[1:]) == ["carport", "driveway", "garage"]
    until(drv, lambda d: legend(d).get("usage", 0) > 0, 20)
    assert list(legend(drv)) == ["meter", "allocated", "usage"]
    assert drv.find_element(By.ID, "graph").get_attribute("aria-label").startswith("main L1: meter ")
    assert any(usage for usage, _ in columns(drv))
    shot(drv, "10-history")
    # A charger's: what it was offered and what it drew.
    Select(drv.find_element(By.ID, "hnode")).select_by_visible_text("garage")
    until(drv, lambda d: list(legend(d)) == ["offered", "drawn"] and legend(d)["drawn"] > 0)

    # MQTT from the admin page: a name is refused at its field, an address is saved and the
    # leader restarts with it; the form shows it back, the password only as set.
    tab(drv, "admin")

    def fill(field, value):
        el = drv.find_element(By.ID, "mq_" + field)
        el.clear()
        el.send_keys(value)
    fill("host", "broker.lan")
    drv.find_element(By.ID, "mqsave").click()
    until(drv, lambda d: message(d).startswith("settings.mqtt.host: the broker's IPv4 address"))
    fill("host", "127.0.0.1")
    fill("port", "1")  # nothing listens there: the client keeps trying, the leader runs on
    fill("user", "ha")
    fill("password", "broker-pw")
    drv.find_element(By.ID, "mqsave").click()
    until(drv, lambda d: message(d) == "MQTT saved: the leader restarts with it")
    saved = json.loads((site.work / "leader" / "settings.json").read_text())["mqtt"]
    assert saved == {"host": "127.0.0.1", "port": 1, "discovery": True, "tls": False, "user": "ha",
                     "password": "broker-pw"}, saved
    time.sleep(1)
    until(drv, lambda d: d.execute_script("return fetch('/api/units').then(r => r.ok).catch(() => false)"), 30,
          sim=site)
    drv.find_element(By.ID, "pw").clear()
    drv.find_element(By.ID, "pw").send_keys(PASSWORD)
    drv.find_element(By.ID, "login").click()
    until(drv, lambda d: "a password is set" in text(d, "mqstate"), sim=site)
    assert text(drv, "mqstate").startswith(("MQTT connecting", "MQTT backoff")), text(drv, "mqstate")
    assert drv.find_element(By.ID, "mq_host").get_attribute("value") == "127.0.0.1"
    assert drv.find_element(By.ID, "mq_password").get_attribute("value") == ""
    shot(drv, "12-mqtt")


# A fixed history answer: 3 h of a group at 240 s, a gap in the middle hour, a restart.
HISTORY = {"period_s": 240, "newest_s_ago": 100, "restarts": [30],
           "series": {"meter": [8000 + 100 * i if not 15 <= i < 30 else None for i in range(45)],
                      "allocated": [20000] * 45, "usage": [12000] * 15 + [None] * 15 + [11000] * 15}}


def test_the_history_graph_draws_gaps_and_restarts(site, browser):
    drv = browser
    drv.get("http://127.0.0.1:%d/" % site.http_port)
    until(drv, lambda d: text(d, "conn") == "live", sim=site)
    drv.execute_script(
        "const real = window.fetch;"
        "window.fetch = (u, o) => u.startsWith('/api/history') ? Promise.resolve(new Response("
        "arguments[0], {headers: {'Content-Type': 'application/json'}})) : real(u, o)", json.dumps(HISTORY))
    tab(drv, "history")
    Select(drv.find_element(By.ID, "hphase")).select_by_visible_text("L2")
    until(drv, lambda d: "usage" in text(d, "hlegend"))
    assert text(drv, "hlegend").split() == ["■", "meter", "12.4", "A", "■", "allocated", "20.0", "A",
                                            "■", "usage", "11.0", "A"]
    label = drv.find_element(By.ID, "graph").get_attribute("aria-label")
    assert label == "main L2: meter 12.4 A, allocated 20.0 A, usage 11.0 A, over the last 3 h"
    assert "no clock" in text(drv, "history")
    shot(drv, "11-history-fixture")
    cols = columns(drv)
    width = len(cols)
    # The page's x axis: 40 px on the left for the amps, 8 on the right; 3 h wide, now on the right.
    def x(i):
        age_h = (HISTORY["newest_s_ago"] + (44 - i) * 240) / 3600
        return round(40 + (width - 48) * (1 - age_h / 3))
    usage = [c[0] for c in cols]
    assert usage[x(5)] and usage[x(40)]  # drawn where there are figures,
    assert not any(usage[x(17):x(28)])  # a gap where there are none
    marks = [c[1] for c in cols]
    assert any(marks[x(30) - 1:x(30) + 2])  # the restart
    assert not any(marks[x(5):x(25)])


def test_the_raw_json_edits_the_same_site(site, browser):
    drv = browser
    drv.get("http://127.0.0.1:%d/" % site.http_port)
    tab(drv, "site")
    until(drv, lambda d: d.find_elements(By.CSS_SELECTOR, '#tree [data-p="groups[0].limit_a"]'), sim=site)
    click(drv, "#rawbox > summary")
    raw = drv.find_element(By.ID, "sitetext")
    assert json.loads(raw.get_attribute("value")) == saved_site(site)
    raw.send_keys(Keys.CONTROL, "a")
    raw.send_keys('{"version": 1, "groups": [')  # half typed: said, and nothing is sent
    until(drv, lambda d: text(d, "siteerr").startswith("raw JSON: "))
    click(drv, "#preview")
    assert text(drv, "siteerr") == "raw JSON: not valid"
    raw.send_keys(Keys.CONTROL, "a")
    raw.send_keys('{"version": 1, "groups": [{"id": "fuse", "limit_a": [25, 25, 20]}]}')
    until(drv, lambda d: field(d, "groups[0].limit_a").get_attribute("value") == "25 / 25 / 20")
    assert text(drv, "siteerr") == ""
    assert "group fuse · 25/25/20 A" in text(drv, "tree")
    assert not drv.find_elements(By.CSS_SELECTOR, 'details[data-k="chargers"]')
    # Valid again, it goes to the leader (which previews it, or asks for a login first).
    click(drv, "#preview")
    until(drv, lambda d: message(d) == "preview: nothing saved" or message(d).startswith("session: "))
