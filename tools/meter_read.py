# make meter-read: reads one Modbus meter once, in the MicroPython unix port, and prints JSON:
# {"voltage_v": [..3], "current_a": [..3], "power_w": [..3], "total_power_w": ..,
#  "import_kwh": .., "export_kwh": ..}; what a model lacks is null. A failure exits 1 with a
# one-line reason.
#
#     micropython tools/meter_read.py DEVICE MODEL ADDRESS [BAUD]
import sys

import asyncio

from ampshare.meter import maps as meters
from ampshare.hal.serial_unix import Serial
from ampshare.meter.poll import ModbusMeter
from ampshare.meter.modbus import ModbusError
from ampshare.meter.rtu import Master
from ampshare.config.units import fmt_a

_NO_LIMIT_MA = 1 << 29  # a bench read knows no fuse: only the decoder's own range applies


def _num(r, idx, per_unit):
    if not r.present & (1 << idx):
        return "null"
    v = r.values[idx]
    return fmt_a(v * 1000 // per_unit) if per_unit != 1 else str(v)


def to_json(r):
    def three(base, per_unit):
        return "[%s]" % ", ".join(_num(r, base + k, per_unit) for k in range(3))
    return ('{"voltage_v": %s, "current_a": %s, "power_w": %s, "total_power_w": %s, "import_kwh": %s, '
            '"export_kwh": %s}' % (three(meters.V1, 1000), three(meters.I1, 1000), three(meters.P1, 1),
                                   _num(r, meters.PT, 1), _num(r, meters.E_IMP, 100), _num(r, meters.E_EXP, 100)))


async def read_once(device, model, unit, baud):
    port = Serial(device, baud)
    try:
        meter = ModbusMeter(Master(port), model, unit, _NO_LIMIT_MA)
        return await meter.poll(everything=True)  # the whole map, and any failure fails
    finally:
        port.close()


def main(argv):
    if len(argv) < 4:
        print("usage: meter_read.py DEVICE MODEL ADDRESS [BAUD]")
        return 2
    try:
        unit, baud = int(argv[3]), int(argv[4]) if len(argv) > 4 else 9600
        r = asyncio.run(read_once(argv[1], argv[2], unit, baud))
    except (ModbusError, ValueError, OSError) as e:
        print("meter-read: %s" % e)
        return 1
    print(to_json(r))
    return 0


sys.exit(main(sys.argv))
