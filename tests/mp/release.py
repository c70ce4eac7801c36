# app.release() in a fresh VM: a module whose class a running one holds stays loaded, so a
# later import finds the same class; a module nothing holds goes. Prints one JSON line.
import json
import sys

from ampshare import app
from ampshare import meter_poll  # a running meter line: it holds ampshare.modbus (M.ModbusError)
from ampshare import settings  # start-up only: nothing running holds it

held = meter_poll.M.ModbusError
app.release(("ampshare.modbus", "ampshare.settings"))
from ampshare.modbus import ModbusError  # noqa: E402  (a lazy import after the release)

print(json.dumps({"modbus_kept": "ampshare.modbus" in sys.modules,
                  "settings_gone": "ampshare.settings" not in sys.modules,
                  "same_class": ModbusError is held}))
