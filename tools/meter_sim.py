#!/usr/bin/env python3
"""Modbus RTU energy meters on a serial line, played by pymodbus, each at its own unit address:
an Eastron SDM630 (or SDM72D-M) or SDM120 register image (input registers, float32, high word
first) built from volts, amps, watts and kWh. Tests run it in a thread and change its values
and its faults while the firmware reads it; `make sim` runs it as every Modbus meter of a site.

    python3 tools/meter_sim.py DEVICE [--model sdm630] [--unit 1] [--baud 9600]
"""
import argparse
import asyncio
import struct
import threading

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

# Register addresses from Eastron's published maps (independent of the firmware's table).
_SDM = {"voltage_v": 0x0000, "current_a": 0x0006, "power_w": 0x000C}
_SDM_TOTAL_W = 0x0034
_SDM_IMPORT = 0x0048
_SDM_EXPORT = 0x004A
IMAGE_REGS = 0x0050  # every register the firmware reads, and some beyond


def _f32(x):
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [hi, lo]


# The models played: Eastron's maps (the SDM72D-M V2 keeps the SDM630's registers).
MODELS = {"sdm630": 3, "sdm72d-m": 3, "sdm120": 1}


class _Meter:
    """One meter's register image, built from its values."""

    def __init__(self, model):
        self.phases = MODELS[model]
        self.values = {"voltage_v": [230.0] * 3, "current_a": [0.0] * 3, "power_w": [0.0] * 3,
                       "import_kwh": 0.0, "export_kwh": 0.0}
        self.image = [0] * IMAGE_REGS

    def fill(self):
        v, regs = self.values, [0] * IMAGE_REGS
        for name, base in _SDM.items():
            for k in range(self.phases):
                regs[base + 2 * k:base + 2 * k + 2] = _f32(v[name][k])
        total = sum(v["power_w"][:self.phases])
        if self.phases == 3:
            regs[_SDM_TOTAL_W:_SDM_TOTAL_W + 2] = _f32(total)
        regs[_SDM_IMPORT:_SDM_IMPORT + 2] = _f32(v["import_kwh"])
        regs[_SDM_EXPORT:_SDM_EXPORT + 2] = _f32(v["export_kwh"])
        self.image = regs


class MeterSim:
    """Meters on one line, each at its own unit address: MeterSim(device, "sdm630", 1), or
    MeterSim(device, units={1: "sdm630", 2: "sdm120"}). set(unit=...) and the faults act on one
    meter's values, or on the first unit's.

    faults: None, "silent" (answers nothing), "corrupt" (every answer's CRC broken), "stray"
    (a zero byte before every answer),
    "short" (an image too small: reads of the energy registers get exception 02)."""

    def __init__(self, device, model="sdm630", unit=1, baud=9600, units=None):
        self.device, self.baud = device, baud
        self.units = dict(units or {unit: model})
        for u, m in self.units.items():
            if m not in MODELS:
                raise ValueError("meter_sim plays %s, not %s" % (", ".join(MODELS), m))
        self.unit = next(iter(self.units))
        self.meters = {u: _Meter(m) for u, m in self.units.items()}
        self.fault = None
        self.answers = 0
        self.reads = []  # the first register of each read answered, any unit
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()

    def set(self, unit=None, **values):
        m = self.meters[self.unit if unit is None else unit]
        m.values.update(values)
        m.fill()

    def _action(self, meter):
        async def answer(function_code, start_address, address, count, current_registers, set_values):
            # Each read is answered from the image as it is now; its first register is kept (reads).
            self.reads.append(address)
            if self.fault == "short" and address + count > _SDM_IMPORT:
                return ExcCodes.ILLEGAL_ADDRESS
            for i in range(count):
                current_registers[address - start_address + i] = meter.image[address + i]
            return None
        return answer

    def set_fault(self, fault):
        self.fault = fault

    def _trace(self, sending, data):
        if not sending:
            return data
        if self.fault == "silent" or data[:1] not in [bytes([u]) for u in self.units]:
            # Silent, or pymodbus answering for a unit it does not have (exception 04):
            # a real meter keeps quiet when another unit is addressed.
            return b""
        self.answers += 1
        if self.fault == "stray":
            return b"\x00" + data  # the line settling as the driver switches: one stray byte first
        if self.fault == "corrupt" and len(data) > 3:
            data = bytearray(data)
            data[3] ^= 0x40
            return bytes(data)
        return data

    # ---- running ------------------------------------------------------------------------

    async def _serve(self):
        devices = []
        for u, m in self.meters.items():
            m.fill()
            devices.append(SimDevice(id=u, simdata=[SimData(0, values=[0] * IMAGE_REGS, datatype=DataType.REGISTERS)],
                                     action=self._action(m)))
        self._server = ModbusSerialServer(devices, port=self.device, baudrate=self.baud, trace_packet=self._trace,
                                          ignore_missing_devices=True)
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._server.serve_forever()

    def start(self):
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        if self._loop is not None and self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
        self._thread.join(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("device")
    ap.add_argument("--model", default="sdm630", choices=sorted(MODELS))
    ap.add_argument("--unit", type=int, default=1)
    ap.add_argument("--baud", type=int, default=9600)
    a = ap.parse_args()
    sim = MeterSim(a.device, a.model, a.unit, a.baud)
    asyncio.run(sim._serve())


if __name__ == "__main__":
    main()
