# The role's start-up: load the site (a leader), bring up the network and the hardware, and
# build the role's shell. Used once: the application lets this module go afterwards.
import gc
import time

from micropython import const

_SITE_FILE = const("site.json")


def load_site(path=_SITE_FILE):
    """The configuration in force, or a ConfigError naming what is wrong with the file."""
    from ampshare.config.site import parse  # the leader's alone, and let go once it runs
    from ampshare.run.store import read_json
    return parse(read_json(path))


def _network(s):
    if s["hal"] != "esp32":
        return
    from binascii import hexlify

    from ampshare.hal import esp32
    if s["ap"] and s["role"] == "leader":
        ap = esp32.access_point(s["ap"]["essid"], s["ap"]["password"])
        if s["dns"] is None:
            s["dns"] = {"ip": ap.ifconfig()[0]}  # a phone joining the AP is led to the page
    if s["wifi"]:
        esp32.station(s["wifi"]["ssid"], s["wifi"]["password"])
    if s["uid"] is None:
        s["uid"] = hexlify(esp32.uid()).decode()


def build(s):
    """The role's shell, ready to run."""
    # Order matters on a small heap: the site's JSON is parsed first, and its garbage
    # collected, so that the code loaded next fills the holes it leaves and the core's
    # buffers (8 KB of keys for 64 followers) find room in one piece.
    site = None
    if s["role"] == "leader":
        site = load_site(s["site"])
        for w in site.warnings:
            print("warning: " + w)
        from ampshare.run.unload import release
        # The parser's code goes before the role's comes (units stays: the role's start-up
        # may still refuse a setting, with the same ConfigError).
        release(("ampshare.config.site", "ampshare.meter.maps", "ampshare.meter.modbus"))  # and collects
        site.compact()
    gc.collect()
    from ampshare import hal
    _network(s)  # on the ESP32 this also takes the uid from the Wi-Fi MAC
    if s["role"] == "follower" and s["uid"] is None:
        from ampshare.config.units import ConfigError
        raise ConfigError("settings.uid", "required off the ESP32 (no MAC to take it from)")
    board = hal.board(s)
    if site is not None:
        from ampshare.run.leader import LeaderApp as App
    else:
        from ampshare.run.follower import FollowerApp as App  # type: ignore[assignment]
    gc.collect()
    if site is not None:
        return App(s, site, board, time.ticks_ms())
    return App(s, board, time.ticks_ms())  # type: ignore[call-arg]  # FollowerApp's


