# The application: read the board's settings, build the role (start.py), and run its shell
# until something fatal happens.
import gc
import sys

import asyncio

SETTINGS_FILE = "settings.json"
# What only start-up needs. A board that runs .mpy files from its filesystem keeps their
# bytecode in RAM, as the unix port does; once the role runs, that RAM is given back. (Their
# names stay interned: the saving is the code.) A running leader keeps only the site's arrays (site_arrays.py), not its parser.
_START_ONLY = ("ampshare.config.settings", "ampshare.config.units", "ampshare.hal", "ampshare.run.start", "ampshare.config.site",
               "ampshare.meter.maps", "ampshare.meter.modbus")


def release(names=_START_ONLY):
    """Let go of the modules named that nothing running holds (see _held)."""
    for name in names:
        if name not in sys.modules or _held(name):
            continue
        del sys.modules[name]
        parent, _, short = name.rpartition(".")
        up = sys.modules.get(parent)
        if up is not None and short in up.__dict__:
            delattr(up, short)
    gc.collect()


def _held(name):
    # A module another loaded one still holds (the module, or a class of it: a meter line
    # keeps ModbusError) stays: a later import would make a second module with a second
    # class of that name, and an except or isinstance on one would not match the other.
    mod = sys.modules[name]
    for other in sys.modules:
        if other == name or other == name.rpartition(".")[0] or not other.startswith("ampshare."):
            continue  # its package's attribute for it goes with it
        for v in sys.modules[other].__dict__.values():
            if v is mod or (isinstance(v, type) and getattr(v, "__module__", None) == name):
                return True
    return False


async def _memory(every_s):
    # What stays in the heap (after a collection), for make bench-mem: mem_info()'s
    # "GC: total: ..., used: ...".
    import micropython
    while True:
        await asyncio.sleep(every_s)
        gc.collect()
        micropython.mem_info()


async def _alloc_rate(every_s):
    # What the role allocates on its heap in a second (make bench-mem): the collector off for
    # one second between two readings of gc.mem_alloc(), so that nothing is freed in between.
    import time
    while True:
        await asyncio.sleep(every_s)
        gc.collect()
        gc.disable()
        a0, t0 = gc.mem_alloc(), time.ticks_ms()
        await asyncio.sleep_ms(1000)
        a1, t1 = gc.mem_alloc(), time.ticks_ms()
        gc.enable()
        print("alloc: %d bytes in %d ms" % (a1 - a0, time.ticks_diff(t1, t0)))


async def _run(s):
    from ampshare.run import start
    shell = start.build(s)
    start = None
    release()
    if s["mem_report_s"]:
        asyncio.create_task(_memory(s["mem_report_s"]))
    if s["alloc_report_s"]:
        asyncio.create_task(_alloc_rate(s["alloc_report_s"]))
    await shell.main()


def main(path=SETTINGS_FILE):
    from ampshare.config import settings
    s = settings.load(path)
    settings = None
    release()  # before the role's modules load: the boot's peak is the heap's tightest moment
    print("ampshare: %s on %s" % (s["role"], s["hal"]))
    asyncio.run(_run(s))
