# The board's own settings (settings.json beside main.py): its role, its hardware, its ports.
# The site configuration (site.json) is separate: it is the leader's, edited by the page.

from micropython import const

from ampshare.config.units import ConfigError

# UDP ports, each configurable: the leader listens on one, every follower on the other (a
# follower answers on its own port, so one host can run many in the simulator).
_PORT_LEADER = const(45450)
_PORT_FOLLOWER = const(45451)
# Where a follower sends HELLO, and its STATE until a COMMAND tells it the leader's address.
_BROADCAST = const("255.255.255.255")

DEFAULTS = {
    "role": None,  # "leader" or "follower": required
    "hal": "esp32",  # or "unix": the host plant simulator plays the hardware
    "port_leader": _PORT_LEADER,
    "port_follower": _PORT_FOLLOWER,
    "bind": "0.0.0.0",
    "broadcast": _BROADCAST,
    "state_dir": ".",  # where keys, pairing and boot epochs are kept
    "pins": None,  # esp32: GPIO numbers over hal.esp32.PINS
    "wifi": None,  # {"ssid", "password"}: the site network to join
    "ap": None,  # {"essid", "password"}: the leader's commissioning access point
    # {"ip", "port": 53, "bind"}: the captive-portal DNS that answers every name with the
    # leader (web/dns.py). On the ESP32 a leader's access point sets it to its own address.
    "dns": None,
    # follower
    "uid": None,  # 12 hex digits; on the ESP32 the Wi-Fi MAC when not set
    "code": "",  # the pairing code on the unit's label
    "nameplate_a": 32,  # the wallbox's own rating
    "phases": 3,
    "phase_switching": False,  # the wallbox has the second contactor and its relay (hal: phase_relay)
    # leader
    "site": "site.json",
    "pair": {},  # charger id -> {"uid": 12 hex digits, "code": label code}: paired when first heard
    # {"baud": 9600, and the line: "device" (a tty, unix) or "uart", "tx", "rx", "de" (esp32,
    # over hal.esp32.RS485)}: where the site's Modbus meters are; without it a leader on the
    # unix port takes its meters' readings from the plant simulator.
    "rs485": None,
    # {"pins": [GPIO, ...] (a frame's channels: L1 L2 L3, then V1 V2 V3), "phases": [...],
    # "mode": "import_only" | "voltage", "voltages": [...], "rate_hz": 2000}: the leader's own
    # CT clamps, for the site's "ct" meter (docs/metering.md). Off the ESP32 the plant plays it.
    "ct": None,
    "monitor": None,  # [host, port]: a status datagram once a second (the simulator's view)
    # {"port": 80, "bind": "0.0.0.0"}: the page and the HTTP API (docs/api.md); None: none
    "http": None,
    # The page, gzipped (make page). "": where make deploy put it, in the ROM image
    # (/rom/page.html.gz) or, on a board without a ROMFS partition, /lib/page.html.gz.
    "page": "",
    "private": False,  # true: reading the live view needs the admin's login too
    # Sharing when the leader has never been told (leader.json keeps the switch once set):
    # a site written by hand was commissioned by whoever wrote it; the first-boot setup page
    # writes false, so that nothing is offered before the installer turns it on.
    "sharing": True,
    # unix hal
    "plant": ["127.0.0.1", 45460],  # the host plant simulator
    "plant_id": None,  # the charger this board plays in the plant (follower)
    # unix hal, testing: the board hangs its control loop this many ms after start (watchdog test)
    "stall_at_ms": None,
    # unix hal, testing: the history's bucket (run/history.py's 4 minutes), short enough for a
    # test to see records written
    "history_bucket_ms": None,
    # unix hal, testing: how often the MQTT bridge saves the lifetime energy (a minute on a
    # board), short enough for a test to restart the leader after a save
    "energy_save_ms": None,
    "mem_report_s": None,  # print micropython.mem_info() this often (make bench-mem)
    "alloc_report_s": None,  # print the heap bytes allocated in a second, this often (make bench-mem)
    # leader: {"host": an IP address (a name's DNS lookup can block the board), "port": 1883,
    # "user", "password", "prefix": "ampshare/<uid or leader>", "discovery": true (Home
    # Assistant), "tls": false}: the MQTT bridge (docs/mqtt.md); None: none, nothing loaded
    "mqtt": None,
}

MQTT_DEFAULTS = {"host": None, "port": 1883, "user": None, "password": None, "prefix": None, "discovery": True,
                 "tls": False}


def parse(cfg):
    if not isinstance(cfg, dict):
        raise ConfigError("settings", "must be a JSON object")
    s = _merged(cfg, DEFAULTS, "settings.")
    if s["role"] not in ("leader", "follower"):
        raise ConfigError("settings.role", "must be leader or follower")
    if s["hal"] not in ("esp32", "unix"):
        raise ConfigError("settings.hal", "must be esp32 or unix")
    for name in ("stall_at_ms", "history_bucket_ms", "energy_save_ms"):
        if s[name] is not None and s["hal"] != "unix":
            raise ConfigError("settings." + name, "a test's setting, for the unix board only")
    for name in ("port_leader", "port_follower"):
        p = s[name]
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise ConfigError("settings." + name, "must be a UDP port, 1..65535")
    if s["phases"] not in (1, 3) or isinstance(s["phases"], bool):
        raise ConfigError("settings.phases", "must be 1 or 3")
    if not isinstance(s["phase_switching"], bool) or (s["phase_switching"] and s["phases"] != 3):
        raise ConfigError("settings.phase_switching", "must be true or false, and true only on a 3-phase wallbox")
    s["pair"] = _listed(s["pair"])
    h = s["http"]
    if h is not None:
        p = h.get("port") if isinstance(h, dict) else None
        if not isinstance(h, dict) or isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535 or \
                any(k not in ("port", "bind") for k in h):
            raise ConfigError("settings.http", "must be {\"port\": 1..65535, \"bind\": address}")
        if s["role"] == "leader" and not s["code"]:
            raise ConfigError("settings.code", "the label code: the page's first login, before a password is set")
    d = s["dns"]
    if d is not None and (not isinstance(d, dict) or not isinstance(d.get("ip"), str) or
                          any(k not in ("ip", "port", "bind") for k in d)):
        raise ConfigError("settings.dns", "must be {\"ip\": the leader's address, \"port\": 53, \"bind\": address}")
    for name in ("private", "sharing"):
        if not isinstance(s[name], bool):
            raise ConfigError("settings." + name, "must be true or false")
    if s["mqtt"] is not None:
        s["mqtt"] = _mqtt(s["mqtt"], s)
    return s


def _merged(cfg, defaults, field):
    # The defaults with cfg over them; a name the defaults do not have is refused by its field.
    for name in cfg:
        if name not in defaults:
            raise ConfigError(field + name, "unknown setting")
    out = dict(defaults)
    out.update(cfg)
    return out


def _mqtt(m, s):
    # The broker: each field refused by its name. The prefix's default is the leader's uid (the
    # site has no name), else "leader": ampshare/<uid or leader>.
    if s["role"] != "leader":
        raise ConfigError("settings.mqtt", "a leader's setting")
    if not isinstance(m, dict):
        raise ConfigError("settings.mqtt", "must be {\"host\": ..., \"port\": 1883, ...}")
    out = _merged(m, MQTT_DEFAULTS, "settings.mqtt.")
    if not _ipv4(out["host"]):
        # A name would be looked up by getaddrinfo(), which on the ESP32 stops the whole board
        # until the DNS answers or gives up: longer than the leader's 5 s watchdog.
        raise ConfigError("settings.mqtt.host", "the broker's IPv4 address, such as 192.168.1.10 (a name would stop "
                                                "the board while the DNS is asked)")
    p = out["port"]
    if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
        raise ConfigError("settings.mqtt.port", "must be a TCP port, 1..65535")
    for name in ("user", "password"):
        if out[name] is not None and not isinstance(out[name], str):
            raise ConfigError("settings.mqtt." + name, "must be a string")
    if out["password"] is not None and out["user"] is None:
        raise ConfigError("settings.mqtt.password", "needs a user")
    if out["prefix"] is None:
        out["prefix"] = "ampshare/" + (s["uid"] or "leader")
    pre = out["prefix"]
    if not isinstance(pre, str) or not pre or len(pre) > 64 or pre[0] == "/" or pre[-1] == "/" or \
            "+" in pre or "#" in pre or "\x00" in pre:
        raise ConfigError("settings.mqtt.prefix", "1..64 characters, no wildcard (+ #), no leading or trailing /")
    for name in ("discovery", "tls"):
        if not isinstance(out[name], bool):
            raise ConfigError("settings.mqtt." + name, "must be true or false")
    return out


def _ipv4(host):
    parts = host.split(".") if isinstance(host, str) else ()
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def _listed(pair):
    # charger id -> (uid, label code) as bytes: a typo is refused at start-up rather than when
    # the unit is heard, and 64 tuples hold a third of the heap that 64 dicts of strings would.
    from binascii import unhexlify
    if not isinstance(pair, dict):
        raise ConfigError("settings.pair", "must map charger ids to {\"uid\": ..., \"code\": ...}")
    out = {}
    for cid, want in pair.items():
        field = "settings.pair." + cid
        try:
            uid, code = unhexlify(want["uid"]), want["code"].encode()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(field, "needs a \"uid\" of 12 hex digits and a label \"code\"")
        if len(uid) != 6 or not code:
            raise ConfigError(field, "needs a \"uid\" of 12 hex digits and a label \"code\"")
        for other, (seen, _) in out.items():
            if seen == uid:
                raise ConfigError(field, "uid %s is listed for %s too" % (want["uid"], other))
        out[cid] = (uid, code)
    return out


# A meter's source, and the setting that wires it to the board.
_WIRING = const((("modbus", "rs485"), ("ct", "ct"), ("mqtt", "mqtt")))


def unwired(settings, site):
    """(meter index, its source, the setting it needs) of the first meter the board does not
    read, or None. On the ESP32 nothing else reads a meter: one named but not wired would be
    silent for ever. Start-up (run/leader.py) stops on one; the page refuses such a site before it
    is saved (web/server.py)."""
    if settings["hal"] != "esp32":
        return None
    for m, source in enumerate(site.meter_source):
        for s, setting in _WIRING:
            if s == source and settings[setting] is None:
                return m, source, setting
    return None
