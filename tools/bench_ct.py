# make bench-ct: samples per second through the CT metering core, and the heap one window costs,
# in the MicroPython port. A window is 10 cycles of 50 Hz at 2 kHz per channel: 400 frames of
# L1 L2 L3 (and, in voltage mode, V1 V2 V3), as a sampling loop would leave them.
import gc
import math
import time
from array import array

from ampshare.meter import ct

_FRAMES = 400
_RATE_HZ = 2000
_WINDOWS = 100
_UA = 4316  # 100 A rms fills a 16-bit reading's half range
_UV = 16263  # 230 V peaks at 20000 steps
_ANGLE = (0.0, math.pi, 0.5)  # import, export, import at cos 0.88


def window(width, volts):
    buf = array("H", bytearray(2 * _FRAMES * width))
    for k in range(_FRAMES):
        for p in range(3):
            w = 2 * math.pi * (50 * k / _RATE_HZ + p / 3)
            buf[k * width + p] = int(32768 + 14000 * math.sin(w + _ANGLE[p]))
            if volts:
                buf[k * width + 3 + p] = int(32768 + 20000 * math.sin(w))
    return buf


def run(m, buf):
    gc.collect()
    gc.disable()  # so that a collection cannot hide an allocation
    before = gc.mem_alloc()
    t0 = time.ticks_us()
    for _ in range(_WINDOWS):
        err = m.read(buf, _FRAMES)
    us = time.ticks_diff(time.ticks_us(), t0)
    heap = gc.mem_alloc() - before
    gc.enable()
    return err, us, heap


def bench(mode):
    phases = [{"ua_per_count": _UA}] * 3
    volts = mode == ct.VOLTAGE
    m = ct.Ct(phases, mode, [{"uv_per_count": _UV}] * 3 if volts else None)
    buf = window(m.width, volts)
    m.read(buf, _FRAMES)
    err, us, heap = run(m, buf)
    samples = _WINDOWS * _FRAMES * m.width
    extra = " + 3 voltages" if volts else ""
    per_window = (heap + _WINDOWS - 1) // _WINDOWS  # rounded up: any allocation shows
    print("ct %s: 3 phases%s x %d samples: %d samples/s, heap per window: %d B (read -> %s, %s mA)"
          % (mode, extra, _FRAMES, samples * 1000000 // us, per_window, ct.REASONS[err],
             " ".join(str(x) for x in m.ma)))


bench(ct.IMPORT_ONLY)
bench(ct.VOLTAGE)
