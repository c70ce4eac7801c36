# app.release() in a fresh VM: a module whose class a running one holds stays loaded, so a
# later import finds the same class; a module nothing holds goes. Prints one JSON line.
import json
import sys

from ampshare.run import unload
from ampshare.meter import poll as meter_poll  # a running meter line: it holds ampshare.meter.modbus (M.ModbusError)
from ampshare.config import settings  # start-up only: nothing running holds it

held = meter_poll.M.ModbusError
unload.release(("ampshare.meter.modbus", "ampshare.config.settings"))
from ampshare.meter.modbus import ModbusError  # noqa: E402  (a lazy import after the release)

print(json.dumps({"modbus_kept": "ampshare.meter.modbus" in sys.modules,
                  "settings_gone": "ampshare.config.settings" not in sys.modules,
                  "same_class": ModbusError is held}))
