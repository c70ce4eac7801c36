# A leader on the (fake) ESP32 board with its CT clamps: one window of samples through the
# sampler, the CT core and the leader's meter task into the core. stdin: JSON {site, ct,
# samples}; prints the core's meter reading and the CT counters.
import json
import sys

import asyncio
import machine
from ampshare.hal import esp32
from ampshare.run import live
from ampshare.run.leader import LeaderApp
from ampshare.config.site import parse
from ampshare.config.settings import DEFAULTS

req = json.loads(sys.stdin.read())
settings = dict(DEFAULTS, hal="esp32", state_dir=req["dir"], pair={}, bind="127.0.0.1", port_leader=0, ct=req["ct"])
app = LeaderApp(settings, parse(req["site"]), esp32.Board(pilot=False), 0)
machine.ADC_U16[:] = req["samples"]


async def one_window():
    task = asyncio.create_task(app.clamps.run())
    await asyncio.sleep_ms(300)
    task.cancel()

asyncio.run(one_window())
a = app.core.alloc
print(json.dumps({"meter": [a.meter[k] for k in range(3)], "ok": a.meter_ok[0], "good": app.clamps.good,
                  "errors": sum(app.clamps.failed), "health": live.meter_health(app)}))
