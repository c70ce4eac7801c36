"""Reading a meter through the real Modbus path: the firmware's RTU master in the unix port,
on one end of a socat pty pair, and a pymodbus RTU server serving an SDM630 or SDM120 image
on the other (tools/meter_sim.py), with the faults a line has."""
import json
import shutil
import subprocess
import sys
import time

import pytest

from vm import ROOT, micropython, mp_env

sys.path.insert(0, str(ROOT / "tools"))
from meter_sim import MeterSim  # noqa: E402

VALUES = {"voltage_v": [231.2, 229.8, 230.4], "current_a": [15.25, 4.5, 9.75], "power_w": [3500.0, -1034.1, 2240.0],
          "import_kwh": 10234.5, "export_kwh": 812.25}


@pytest.fixture
def line(tmp_path):
    """Two ends of a serial line: (the firmware's, the meter's)."""
    socat = shutil.which("socat")
    assert socat, "socat is needed: make setup installs it"
    a, b = tmp_path / "fw", tmp_path / "meter"
    proc = subprocess.Popen([socat, "pty,raw,echo=0,link=%s" % a, "pty,raw,echo=0,link=%s" % b],
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield str(a), str(b)
    proc.kill()
    proc.wait()


def meter(end, model="sdm630", unit=1):
    sim = MeterSim(end, model, unit).start()
    sim.set(**VALUES)
    return sim


def read(device, model="sdm630", address=1, via_make=False):
    if via_make:
        args = ["make", "-s", "meter-read", "DEVICE=" + device, "MODEL=" + model, "ADDRESS=%d" % address]
    else:
        args = [micropython(), str(ROOT / "tools" / "meter_read.py"), device, model, str(address)]
    p = subprocess.run(args, cwd=ROOT, env=mp_env(), capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip()


def test_an_sdm630_reads_as_its_image(line):
    sim = meter(line[1])
    try:
        rc, out = read(line[0], via_make=True)
    finally:
        sim.stop()
    assert rc == 0, out
    got = json.loads(out)
    assert got["voltage_v"] == VALUES["voltage_v"]
    assert got["current_a"] == [15.25, -4.5, 9.75]  # L2 exports: its power is negative
    assert got["power_w"] == [3500, -1034, 2240]
    assert got["total_power_w"] == round(3500 - 1034.1 + 2240)
    assert (got["import_kwh"], got["export_kwh"]) == (10234.5, 812.25)


def test_an_sdm120_has_one_phase_and_nulls(line):
    sim = meter(line[1], "sdm120")
    try:
        rc, out = read(line[0], "sdm120")
    finally:
        sim.stop()
    assert rc == 0, out
    got = json.loads(out)
    assert got["current_a"] == [15.25, None, None] and got["voltage_v"][1:] == [None, None]
    assert got["total_power_w"] == 3500 and got["import_kwh"] == 10234.5


@pytest.mark.parametrize("fault, reason", [
    ("silent", "timeout"),  # the meter stopped answering
    ("corrupt", "crc"),  # a frame damaged on the line
    ("short", "exception: 02 illegal data address"),  # a register the meter does not have
])
def test_a_line_fault_fails_with_its_reason_then_clears(line, fault, reason):
    sim = meter(line[1])
    try:
        sim.set_fault(fault)
        rc, out = read(line[0])
        assert rc == 1 and out.startswith("meter-read: " + reason) and "\n" not in out, out
        sim.set_fault(None)
        rc, out = read(line[0])
        assert rc == 0 and json.loads(out)["current_a"][0] == 15.25, out
    finally:
        sim.stop()


POLLS = """
import asyncio, json, sys
from ampshare.hal.serial_unix import Serial
from ampshare.meter.poll import ModbusMeter
from ampshare.meter.rtu import Master

async def main():
    m = ModbusMeter(Master(Serial(sys.argv[1], 9600)), "sdm630", 1, 1 << 29)
    got = []
    for _ in range(12):
        r = await m.poll()
        got.append([r.values[3], bool(r.present & (1 << 10))])
    print(json.dumps({"got": got, "errors": list(m.errors), "kinds": list(m.kinds)}))

asyncio.run(main())
"""


def test_the_currents_are_read_every_poll_and_a_failed_energy_read_costs_them_nothing(line):
    # The leader's poll: currents (with the voltages and powers that sign them) every second;
    # total power and energy every 10th poll. A meter without the energy registers still gives
    # its currents every time, and its failures are counted.
    sim = meter(line[1])
    try:
        sim.set_fault("short")
        p = subprocess.run([micropython(), "-c", POLLS, line[0]], cwd=ROOT, env=mp_env(), capture_output=True,
                           text=True, timeout=60)
        reads = list(sim.reads)
    finally:
        sim.stop()
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [g[0] for g in out["got"]] == [15250] * 12 and not any(g[1] for g in out["got"])
    assert out["errors"][out["kinds"].index("exception")] == 2  # polls 1 and 11 tried the energy
    assert reads.count(0) == 12 and len(reads) - reads.count(0) <= 2 * 2  # 1-2 slow blocks, twice


def test_a_stray_byte_before_the_answer_is_skipped(line):
    sim = meter(line[1])
    try:
        sim.set_fault("stray")
        rc, out = read(line[0])
    finally:
        sim.stop()
    assert rc == 0 and json.loads(out)["current_a"][0] == 15.25, out


def test_a_wrong_slave_id_is_a_timeout(line):
    sim = meter(line[1], unit=3)
    try:
        rc, out = read(line[0], address=4)
        assert rc == 1 and out.startswith("meter-read: timeout"), out
        assert sim.answers == 0  # unit 3 kept quiet, as a meter on a shared line must
        assert read(line[0], address=3)[0] == 0
    finally:
        sim.stop()
