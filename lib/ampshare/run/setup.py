# First boot: a unit without settings.json opens its own access point, "ampshare-" and the last
# four hex digits of its MAC, WPA2 with the code on its label, and serves a setup page: its
# role, and the Wi-Fi it is to join. The answer is saved atomically and the unit starts again
# in its role. Nothing is controlled meanwhile (no role yet), so the scan of the networks may
# block for its two seconds; in a role a scan never runs.
import json
import time

import asyncio
from micropython import const

LABEL_FILE = "label.json"  # {"code": ...}: written when the board is flashed, as its label says
RESTART_MS = const(500)  # time for the answer to leave before the unit starts again
# A fresh leader's site: one group, no charger, and sharing off until the installer builds
# the site on the page. 16 A is the smallest main fuse commonly fitted to a home, so that a
# forgotten edit errs low.
STARTER_SITE = {"version": 1, "groups": [{"id": "main", "limit_a": 16}], "chargers": [], "meters": []}
_SSID_MAX = const(32)  # IEEE 802.11's longest SSID
WIFI_PASSWORD = (8, 63)  # WPA2's passphrase length (an open network: empty)
_NETWORKS_MAX = const(16)  # a scan list for a phone's screen, strongest first

PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>ampshare setup</title><style>body{font:16px sans-serif;max-width:30em;margin:1em auto;padding:0 1em}
label{display:block;margin:.8em 0 .2em}input,select,button{font:inherit;width:100%;box-sizing:border-box;padding:.4em}
button{margin-top:1em}#msg{margin-top:1em;color:#a00}</style></head><body>
<h1>Set up <span id="uid"></span></h1>
<form id="f"><label for="code">Code on the unit's label</label><input id="code" required>
<label for="role">This unit is</label><select id="role"><option value="leader">the leader (it shares the current)</option>
<option value="follower">a wallbox (a follower)</option></select>
<label for="ssid">Wi-Fi to join</label><select id="ssid"></select>
<label for="pw">Its password</label><input id="pw" type="password">
<button>Save and start</button></form><div id="msg"></div>
<script>
const $=id=>document.getElementById(id);
fetch('/api/setup').then(r=>r.json()).then(d=>{$('uid').textContent=d.essid;
 const s=$('ssid');s.add(new Option('none: the leader\\'s own access point is the network',''));
 d.networks.forEach(n=>s.add(new Option(n.ssid+' ('+n.rssi+' dBm)',n.ssid)));});
$('f').onsubmit=e=>{e.preventDefault();const ssid=$('ssid').value;
 fetch('/api/setup',{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify({code:$('code').value,
  role:$('role').value,wifi:ssid?{ssid:ssid,password:$('pw').value}:null})}).then(r=>r.json().then(d=>{
  $('msg').textContent=r.ok?'Saved: the unit starts again as '+d.role+'. Join '+(d.join||'its network')+' to go on.':
  d.field+': '+d.reason;}));};
</script></body></html>"""


def essid(mac):
    """The access point's name: the last four hex digits of the MAC tell two units apart."""
    return "ampshare-%02x%02x" % (mac[-2], mac[-1])


def settings_for(form, code, ap_essid):
    """The settings a setup form asks for, or a ConfigError naming the field. form: {"code",
    "role", "wifi": {"ssid", "password"} or null}. A leader keeps its access point (the page,
    commissioning) with the label code as its password, and starts with sharing off."""
    from ampshare.config.units import ConfigError
    if not isinstance(form, dict):
        raise ConfigError("body", "must be a JSON object")
    for name in form:
        if name not in ("code", "role", "wifi"):
            raise ConfigError(name, "unknown field")
    if form.get("code") != code:
        raise ConfigError("code", "not the code on this unit's label")
    role = form.get("role")
    if role not in ("leader", "follower"):
        raise ConfigError("role", "must be leader or follower")
    wifi = form.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict) or any(k not in ("ssid", "password") for k in wifi):
            raise ConfigError("wifi", "must be {\"ssid\", \"password\"} or null")
        ssid, pw = wifi.get("ssid"), wifi.get("password", "")
        if not isinstance(ssid, str) or not 1 <= len(ssid) <= _SSID_MAX:
            raise ConfigError("wifi.ssid", "1 to %d characters" % _SSID_MAX)
        if not isinstance(pw, str) or (pw and not WIFI_PASSWORD[0] <= len(pw) <= WIFI_PASSWORD[1]):
            raise ConfigError("wifi.password", "%d to %d characters, or none for an open network" % WIFI_PASSWORD)
        wifi = {"ssid": ssid, "password": pw}
    elif role == "follower":
        raise ConfigError("wifi", "a wallbox joins the site's Wi-Fi or the leader's access point: pick one")
    s = {"role": role, "code": code, "wifi": wifi}
    if role == "leader":
        s.update(ap={"essid": ap_essid, "password": code}, http={"port": 80}, sharing=False)
    return s


class Setup:
    """The setup page's shell: Microdot on the access point, the captive-portal DNS beside it."""

    def __init__(self, label, board_settings, networks, mac):
        from microdot import Microdot, Request
        Request.max_content_length = Request.max_body_length = 1024  # a form is a few lines
        self.code = label["code"]
        self.base = board_settings  # what the board needs whatever the role (hal, ports: the unix stand-in)
        self.networks = networks
        self.essid = essid(mac)
        self.done = None
        md = self.md = Microdot()
        for path in ("/", "/generate_204", "/gen_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt"):
            md.route(path)(self.page)
        md.route("/api/setup")(self.get)
        md.route("/api/setup", methods=["POST"])(self.post)

    async def page(self, req):
        return PAGE, 200, {"Content-Type": "text/html; charset=UTF-8"}

    async def get(self, req):
        return {"essid": self.essid, "networks": self.networks}

    async def post(self, req):
        from ampshare.config import settings
        from ampshare.config.units import ConfigError
        from ampshare.run import store
        try:
            form = json.loads(req.body)
        except (ValueError, TypeError, UnicodeError):
            return {"field": "body", "reason": "not JSON"}, 400
        try:
            s = settings_for(form, self.code, self.essid)
            s.update(self.base)
            settings.parse(s)  # what the role would refuse is refused here
        except ConfigError as e:
            return {"field": e.field, "reason": e.reason}, 400
        try:
            if s["role"] == "leader":
                store.save_json("site.json", STARTER_SITE)
            store.save_json(store.SETTINGS_FILE, s)
        except OSError as e:
            return {"field": "settings", "reason": "could not be saved to flash: %s" % e}, 500
        asyncio.create_task(self._restart())
        join = s["wifi"]["ssid"] if s["wifi"] else None
        return {"saved": True, "role": s["role"], "join": join}

    async def _restart(self):
        await asyncio.sleep_ms(RESTART_MS)
        self.done = True
        self.md.shutdown()


def networks_seen(scan):
    """A scan's [(ssid, bssid, channel, rssi, security, hidden)] as the page's list: named
    ones, each once at its strongest, strongest first."""
    best = {}
    for net in scan:
        ssid = net[0].decode() if isinstance(net[0], bytes) else net[0]
        if ssid and (ssid not in best or net[3] > best[ssid][0]):
            best[ssid] = (net[3], net[4] != 0)
    out = [{"ssid": k, "rssi": v[0], "secure": v[1]} for k, v in best.items()]
    out.sort(key=lambda n: -n["rssi"])
    return out[:_NETWORKS_MAX]


async def _serve(setup, http, dns):
    tasks = [asyncio.create_task(setup.md.start_server(host=http.get("bind", "0.0.0.0"), port=http["port"]))]
    if dns is not None:
        from ampshare.web.dns import Portal
        tasks.append(asyncio.create_task(Portal(dns["ip"], dns.get("bind", "0.0.0.0"), dns.get("port", 53)).run()))
    await tasks[0]
    for t in tasks[1:]:
        t.cancel()


def main(label_path=LABEL_FILE):
    """Serve the setup page until an answer is saved; the caller starts the unit again."""
    from ampshare.run.store import read_json
    label = read_json(label_path)
    hal = label.get("hal", "esp32")
    if hal == "esp32":
        from ampshare.hal import esp32
        mac = esp32.uid()
        name = essid(mac)
        ap = esp32.access_point(name, label["code"])
        nets = networks_seen(esp32.scan())
        base, http = {}, {"port": 80}
        dns = {"ip": ap.ifconfig()[0]}
    else:
        # The unix port stands in for a board: label.json also says where to serve, and what
        # a scan would have found.
        from binascii import unhexlify
        mac = unhexlify(label["uid"])
        nets = networks_seen(label.get("networks", []))
        base = dict(label["settings"], uid=label["uid"])
        http, dns = label["http"], label.get("dns")
    setup = Setup(label, base, nets, mac)
    print("ampshare: setup on %s" % essid(mac))
    asyncio.run(_serve(setup, http, dns))
    time.sleep_ms(100)
    if hal == "esp32":
        from ampshare.hal import esp32
        esp32.restart()  # into the role just saved (the unix port's process ends: started again)
