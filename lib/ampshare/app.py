# The application's start: read the board's settings, load the site (a leader), bring up the
# network and the hardware, and run the role's shell until something fatal happens.
import time

import asyncio

from ampshare import settings as settingsmod
from ampshare.units import ConfigError, read_json

SITE_FILE = "site.json"


def load_site(path=SITE_FILE):
    """The configuration in force, or a ConfigError naming what is wrong with the file."""
    from ampshare.site import SiteHolder  # the leader's alone: a follower keeps the RAM
    return SiteHolder(read_json(path))


def _network(s):
    if s["hal"] != "esp32":
        return
    from binascii import hexlify

    from ampshare.hal import esp32
    if s["ap"] and s["role"] == "leader":
        esp32.access_point(s["ap"]["essid"], s["ap"]["password"])
    if s["wifi"]:
        esp32.station(s["wifi"]["ssid"], s["wifi"]["password"])
    if s["uid"] is None:
        s["uid"] = hexlify(esp32.uid()).decode()


def build(s):
    """The role's shell, ready to run."""
    from ampshare import hal
    _network(s)
    board = hal.board(s)
    now = time.ticks_ms()
    if s["role"] == "leader":
        from ampshare.leader_app import LeaderApp
        holder = load_site(s["site"])
        for w in holder.site.warnings:
            print("warning: " + w)
        return LeaderApp(s, holder.site, board, now)
    from ampshare.follower_app import FollowerApp
    if s["uid"] is None:
        raise ConfigError("settings.uid", "required off the ESP32 (no MAC to take it from)")
    return FollowerApp(s, board, now)


async def _memory(every_s):
    # What stays in the heap (after a collection), for make bench-mem: mem_info()'s
    # "GC: total: ..., used: ...".
    import gc

    import micropython
    while True:
        await asyncio.sleep(every_s)
        gc.collect()
        micropython.mem_info()


async def _run(s):
    shell = build(s)
    if s["mem_report_s"]:
        asyncio.create_task(_memory(s["mem_report_s"]))
    await shell.main()


def main(path=settingsmod.SETTINGS_FILE):
    s = settingsmod.load(path)
    print("ampshare: %s on %s" % (s["role"], s["hal"]))
    asyncio.run(_run(s))
