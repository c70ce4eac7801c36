# The application: read the board's settings, build the role (start.py), and run its shell
# until something fatal happens.
import gc

import asyncio

from ampshare.run.store import SETTINGS_FILE
from ampshare.run.unload import release


async def _memory(every_s):
    # What stays in the heap (after a collection), for make bench-mem: mem_info()'s
    # "GC: total: ..., used: ...".
    import micropython
    while True:
        await asyncio.sleep(every_s)
        gc.collect()
        micropython.mem_info()
        micropython.qstr_info()  # the names' pool: a pool outgrown doubles its successor


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
    start = None  # type: ignore[assignment]  # the module goes with release()
    release()
    if s["mem_report_s"]:
        asyncio.create_task(_memory(s["mem_report_s"]))
    if s["alloc_report_s"]:
        asyncio.create_task(_alloc_rate(s["alloc_report_s"]))
    await shell.main()


def main(path=SETTINGS_FILE):
    import os
    try:
        os.stat(path)
    except OSError:
        # First boot: no role yet. The setup page saves one, and the unit starts again.
        from ampshare.run import setup
        setup.main()
        return
    from ampshare.config import settings
    from ampshare.run.store import read_json
    s = settings.parse(read_json(path))
    settings = None  # type: ignore[assignment]
    release()  # before the role's modules load: the boot's peak is the heap's tightest moment
    print("ampshare: %s on %s" % (s["role"], s["hal"]))
    asyncio.run(_run(s))
