# The application: read the board's settings, build the role (start.py), and run its shell
# until something fatal happens.
import gc
import sys

import asyncio

SETTINGS_FILE = "settings.json"
# What only start-up needs. A board that runs .mpy files from its filesystem keeps their
# bytecode in RAM, as the unix port does; once the role runs, that RAM is given back. (Their
# names stay interned: the saving is the code.) A running leader keeps only the site's arrays (site_arrays.py), not its parser.
_START_ONLY = ("ampshare.settings", "ampshare.units", "ampshare.hal", "ampshare.start", "ampshare.site",
               "ampshare.meters", "ampshare.modbus")  # the last two stay in use where a meter line holds them


def release(names=_START_ONLY):
    import ampshare
    for name in names:
        if sys.modules.pop(name, None) is not None:
            short = name.split(".")[-1]
            if short in ampshare.__dict__:
                delattr(ampshare, short)
    gc.collect()


async def _memory(every_s):
    # What stays in the heap (after a collection), for make bench-mem: mem_info()'s
    # "GC: total: ..., used: ...".
    import micropython
    while True:
        await asyncio.sleep(every_s)
        gc.collect()
        micropython.mem_info()


async def _run(s):
    from ampshare import start
    shell = start.build(s)
    start = None
    release()
    if s["mem_report_s"]:
        asyncio.create_task(_memory(s["mem_report_s"]))
    await shell.main()


def main(path=SETTINGS_FILE):
    from ampshare import settings
    s = settings.load(path)
    settings = None
    release()  # before the role's modules load: the boot's peak is the heap's tightest moment
    print("ampshare: %s on %s" % (s["role"], s["hal"]))
    asyncio.run(_run(s))
