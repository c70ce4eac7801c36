"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven
by Selenium against the leader in the unix port, its plant and followers running. The page
is used as an installer would: log in with the label code, set a password, pair the unit
that is not paired yet, preview and save an edited site, and watch the live view follow the
plant. A screenshot of each step goes to build/screens/."""
import json
import sys
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from test_web import page_gz
from vm import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from sim import Sim  # noqa: E402

SCREENS = ROOT / "build" / "screens"
PASSWORD = "garage-door-42"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    sim = Sim(ROOT / "examples" / "home.json", work=tmp_path_factory.mktemp("browser"), base_port=26900,
              http_port=26980, page=page_gz(tmp_path_factory), unpaired=[1])
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
                 "--window-size=1200,900"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    drv.implicitly_wait(0)
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
    return WebDriverWait(drv, timeout, poll_frequency=0.25).until(step)


# The live tables are drawn anew every second: read them in one script, never hold an element.
COLUMNS = {"offered": 2, "link": 7, "why": 8}


def cell(drv, charger, column):
    return drv.execute_script(
        "const r = document.querySelector('tr.ch[data-id=\"' + arguments[0] + '\"]');"
        "return r ? r.cells[arguments[1]].textContent : null", charger, COLUMNS[column])


def text(drv, ident):
    return drv.execute_script("return document.getElementById(arguments[0]).innerText", ident)


def offered(drv, charger):
    t = cell(drv, charger, "offered")
    return float(t) if t not in (None, "–") else None


def message(drv):
    return drv.find_element(By.ID, "msg").text


def tab(drv, name):
    drv.find_element(By.CSS_SELECTOR, 'nav button[data-s="%s"]' % name).click()


def test_an_installer_commissions_the_home_site_from_the_page(site, browser):
    drv = browser
    drv.get("http://127.0.0.1:%d/" % site.http_port)
    # The live view streams: the garage's car charges, the driveway has no unit yet.
    until(drv, lambda d: (offered(d, "garage") or 0) > 0)
    assert text(drv, "conn") == "live"
    groups = text(drv, "groups")
    assert "main" in groups and "L3" in groups and "available" in groups
    assert cell(drv, "driveway", "why") == "no unit paired"
    shot(drv, "1-live")

    # First login: the label code, then a password of the installer's own.
    tab(drv, "admin")
    drv.find_element(By.ID, "pw").send_keys(site.label)
    drv.find_element(By.ID, "login").click()
    until(drv, lambda d: "set a password now" in message(d))
    drv.find_element(By.ID, "newpw").send_keys(PASSWORD)
    drv.find_element(By.ID, "setpw").click()
    until(drv, lambda d: message(d) == "password set")
    shot(drv, "2-admin")

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
    shot(drv, "3-paired")

    # The site: load it, lower the main fuse, preview (nothing saved), then save.
    tab(drv, "site")
    until(drv, lambda d: '"groups"' in d.find_element(By.ID, "sitetext").get_attribute("value"))
    cfg = json.loads(drv.find_element(By.ID, "sitetext").get_attribute("value"))
    cfg["groups"][0]["limit_a"] = 32
    drv.execute_script("document.getElementById('sitetext').value = arguments[0]", json.dumps(cfg, indent=1))
    drv.find_element(By.ID, "preview").click()
    until(drv, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.pv")) == 2)
    assert message(drv) == "preview: nothing saved"
    shot(drv, "4-preview")
    saved_before = json.loads((site.work / "leader" / "site.json").read_text())
    assert saved_before["groups"][0]["limit_a"] == 40
    drv.find_element(By.ID, "save").click()
    until(drv, lambda d: "saved" in message(d))
    assert json.loads((site.work / "leader" / "site.json").read_text())["groups"][0]["limit_a"] == 32

    # The leader starts again on it; the page's stream comes back and both cars charge.
    tab(drv, "live")
    time.sleep(1)
    until(drv, lambda d: text(d, "conn") == "live" and (offered(d, "garage") or 0) > 0
          and (offered(d, "driveway") or 0) > 0, 60, sim=site)
    shot(drv, "5-applied")
    # The view follows the plant: the figures it shows move as the cars charge, and the two
    # offers stay within the new 32 A fuse less the other load the meter shows.
    first = text(drv, "chargers")
    until(drv, lambda d: text(d, "chargers") != first, 20, sim=site)
    assert offered(drv, "garage") + offered(drv, "driveway") <= 32
