"""The CT metering core: RMS current per phase from raw ADC samples, in integers.

Every waveform is made here in CPython, in floats, and its true RMS comes from its amplitudes,
so the reference does not share a line of code with the firmware under test.
"""
import importlib
import math
import random
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vm import ROOT

TOLERANCE = 0.02  # of the reading, from 10 % to 100 % of what the ADC takes unclipped
CLAMP_A = 100  # the clamp whose peak just fills the ADC's half range: 100 A rms
BITS = (12, 16)


def full(bits):
    return (1 << bits) - 1


def margin(bits):
    return full(bits) >> 8 or 1  # ct._CLIP_SHIFT: a sample this close to a rail is clipped


def ua_per_count(bits):
    # 100 A rms (141.4 A peak) over the half range.
    return round(CLAMP_A * math.sqrt(2) * 1e6 / (full(bits) // 2))


def phase_cfg(bits, **kw):
    return dict({"ua_per_count": ua_per_count(bits)}, **kw)


UV_230 = 16263  # a 230 V reference whose peak takes 20000 steps of a 16-bit reading


class Wave:
    """One channel: harmonics (order, peak counts, phase), a midpoint that may drift, noise."""

    def __init__(self, parts, mid, drift=0.0, noise=0.0, seed=0):
        self.parts, self.mid, self.drift, self.noise = parts, mid, drift, noise
        self.rng = random.Random(seed)

    def ac(self, t, hz):
        return sum(a * math.sin(2 * math.pi * h * hz * t + ph) for h, a, ph in self.parts)

    def rms(self):
        # The true RMS of the AC part: the square root of the sum of the harmonics' squares.
        return math.sqrt(sum(a * a / 2 for _, a, _ in self.parts))

    def fit(self, times, hz, peak):
        # Scale so that the sampled wave's largest excursion is `peak` counts.
        top = max(abs(self.ac(t, hz)) for t in times)
        self.parts = [(h, a * peak / top, ph) for h, a, ph in self.parts]
        return self

    def sample(self, times, hz):
        n = len(times)
        out = []
        for k, t in enumerate(times):
            x = self.mid + self.drift * (k / max(n - 1, 1) - 0.5) + self.ac(t, hz)
            if self.noise:
                x += self.rng.gauss(0, self.noise)
            out.append(int(round(x)))
        return out


def times(n, rate, slot=0, width=1):
    # A multiplexed ADC loop reads the channels of a frame one after the other.
    return [(k + slot / width) / rate for k in range(n)]


def interleave(channels):
    return [x for frame in zip(*channels) for x in frame]


def headroom(bits, mid, drift=0.0, noise=0.0):
    # The largest peak that stays clear of the clipping margins.
    half = full(bits) / 2
    return half - margin(bits) - abs(mid - half) - abs(drift) / 2 - 5 * noise - 2


def expected_ma(wave, bits):
    return wave.rms() * ua_per_count(bits) / 1000


def read(vm, windows, phases, **kw):
    return vm.call("ct_read", windows=windows, phases=phases, **kw)


def within(got, want, tol=TOLERANCE):
    return abs(got - want) <= tol * abs(want)


@pytest.fixture(scope="module")
def lim(vm):
    return vm.call("ct_math")


# --- RMS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("level", (0.1, 0.5, 1.0))
def test_a_pure_sine_reads_its_rms(vm, bits, level):
    n, rate = 400, 2000
    mid = (full(bits) + 1) // 2
    ts = times(n, rate)
    waves = [Wave([(1, 1.0, 2.1 * p)], mid).fit(ts, 50, level * headroom(bits, mid)) for p in range(3)]
    res = read(vm, [interleave([w.sample(ts, 50) for w in waves])], [phase_cfg(bits)] * 3, adc_bits=bits)
    r = res["reads"][0]
    assert r["err"] == 0 and r["fault"] == -1
    for p, w in enumerate(waves):
        want = expected_ma(w, bits)
        assert within(r["ma"][p], want, 0.005), (p, r["ma"][p], want)


@st.composite
def distorted(draw, bits, mid, rate, hz, n, drift=0.0, noise=0.0):
    level = draw(st.floats(0.1, 1.0))
    third = draw(st.floats(0.0, 0.5))
    fifth = draw(st.floats(0.0, 0.3))
    ph = [draw(st.floats(0, 2 * math.pi)) for _ in range(3)]
    seed = draw(st.integers(0, 9999))
    w = Wave([(1, 1.0, ph[0]), (3, third, ph[1]), (5, fifth, ph[2])], mid, drift, noise, seed)
    return w.fit(times(n, rate), hz, level * headroom(bits, mid, drift, noise))


@given(data=st.data(), bits=st.sampled_from(BITS), rate=st.integers(1000, 5000),
       hz=st.floats(49.8, 50.2), mid_shift=st.floats(-0.1, 0.1), noise=st.floats(0, 3))
@settings(max_examples=60, deadline=None)
def test_harmonics_noise_and_offset_read_within_2_percent(vm, data, bits, rate, hz, mid_shift, noise):
    n = round(rate * 10 / 50)  # ten cycles of a nominal 50 Hz; the grid itself is a little off
    mid = full(bits) / 2 * (1 + mid_shift)
    noise *= 1 << (bits - 12)  # a few steps of a 12-bit converter
    waves = [data.draw(distorted(bits, mid, rate, hz, n, noise=noise)) for _ in range(3)]
    ts = times(n, rate)
    res = read(vm, [interleave([w.sample(ts, hz) for w in waves])], [phase_cfg(bits)] * 3, adc_bits=bits)
    r = res["reads"][0]
    assert r["err"] == 0
    for p, w in enumerate(waves):
        assert within(r["ma"][p], expected_ma(w, bits)), (p, r["ma"][p], expected_ma(w, bits))


@given(data=st.data(), bits=st.sampled_from(BITS), drift=st.floats(-0.01, 0.01))
@settings(max_examples=40, deadline=None)
def test_a_midpoint_drifting_through_the_window_reads_within_2_percent(vm, data, bits, drift):
    # A drift of D counts over the window adds D / sqrt(12) in quadrature: up to 1 % of the
    # full scale that stays inside 2 % even at a tenth of the range.
    n, rate = 500, 2500
    drift *= full(bits)
    mid = full(bits) / 2
    w = data.draw(distorted(bits, mid, rate, 50, n, drift=drift))
    r = read(vm, [w.sample(times(n, rate), 50)], [phase_cfg(bits)], adc_bits=bits)["reads"][0]
    assert r["err"] == 0
    assert within(r["ma"][0], expected_ma(w, bits)), (r["ma"][0], expected_ma(w, bits))


def test_the_offset_takes_off_the_reading_with_no_current(vm):
    bits, n = 16, 400
    mid = full(bits) // 2
    ts = times(n, 2000)
    quiet = Wave([], mid, noise=40, seed=3).sample(ts, 50)
    floor_ma = read(vm, [quiet], [phase_cfg(bits)])["reads"][0]["ma"][0]
    assert 0 < floor_ma < 1000  # noise reads as a small current
    loud = Wave([(1, 1.0, 0.0)], mid, noise=40, seed=4).fit(ts, 50, 0.5 * headroom(bits, mid))
    calibrated = [phase_cfg(bits, offset_ma=floor_ma)]
    res = read(vm, [quiet, loud.sample(ts, 50)], calibrated)["reads"]
    assert res[0]["ma"][0] <= floor_ma // 10
    # Noise adds in quadrature, so a real current loses next to nothing (not the whole offset).
    assert within(res[1]["ma"][0], expected_ma(loud, bits), 0.003)


# --- Clipping ----------------------------------------------------------------------------


@given(bits=st.sampled_from(BITS), phase=st.integers(0, 2), at=st.integers(0, 399),
       rail=st.sampled_from(("low", "high")), inside=st.integers(0, 10))
@settings(max_examples=40, deadline=None)
def test_a_sample_on_a_rail_is_an_error_never_a_value(vm, lim, bits, phase, at, rail, inside):
    n = 400
    mid = full(bits) // 2
    ts = times(n, 2000)
    chans = [Wave([(1, 1.0, p)], mid).fit(ts, 50, 0.5 * headroom(bits, mid)).sample(ts, 50) for p in range(3)]
    m = margin(bits)
    chans[phase][at] = m - min(inside, m) if rail == "low" else full(bits) - m + min(inside, m)
    r = read(vm, [interleave(chans)], [phase_cfg(bits)] * 3, adc_bits=bits)["reads"][0]
    assert r["err"] == lim["codes"]["clipped"]
    assert r["fault"] == phase
    assert r["ma"] == [lim["invalid_ma"]] * 3  # an overload to anyone who ignores the code


@pytest.mark.parametrize("bits", BITS)
def test_a_clipped_sine_is_an_error(vm, lim, bits):
    n = 400
    mid = full(bits) // 2
    ts = times(n, 2000)
    w = Wave([(1, 1.2 * mid, 0.0)], mid).sample(ts, 50)
    w = [min(max(x, 0), full(bits)) for x in w]  # the burden saturates
    r = read(vm, [w], [phase_cfg(bits)], adc_bits=bits)["reads"][0]
    assert r["err"] == lim["codes"]["clipped"] and r["ma"] == [lim["invalid_ma"]]


def test_samples_just_inside_the_margin_are_valid(vm):
    bits = 12
    lo, hi = margin(bits) + 1, full(bits) - margin(bits) - 1
    r = read(vm, [[lo, hi] * 200], [phase_cfg(bits)], adc_bits=bits)["reads"][0]
    assert r["err"] == 0
    want = (hi - lo) / 2 * ua_per_count(bits) / 1000  # a square wave's RMS is its peak
    assert within(r["ma"][0], want, 0.001)


# --- Direction ---------------------------------------------------------------------------


def direction_window(n, rate, amps, angles, bits=16, volts=20000, order="interleaved"):
    # Currents and their voltage references, sampled one slot after another as a loop would.
    mid = full(bits) // 2
    width = 2 * len(amps)
    pos = [2 * p for p in range(len(amps))] + [2 * p + 1 for p in range(len(amps))]
    if order == "grouped":
        pos = list(range(width))
    chans = [None] * width
    waves = []
    for p, (a, ang) in enumerate(zip(amps, angles)):
        base = 2 * math.pi * p / 3
        i = Wave([(1, a, base + ang)], mid)
        v = Wave([(1, volts, base)], mid)
        chans[pos[p]] = i.sample(times(n, rate, pos[p], width), 50)
        chans[pos[len(amps) + p]] = v.sample(times(n, rate, pos[len(amps) + p], width), 50)
        waves.append(i)
    phases = [phase_cfg(bits, at=pos[p]) for p in range(len(amps))]
    voltages = [{"uv_per_count": UV_230, "at": pos[len(amps) + p]} for p in range(len(amps))]
    return interleave(chans), phases, voltages, waves


def test_in_phase_reads_import_and_antiphase_reads_export(vm):
    win, phases, voltages, waves = direction_window(400, 2000, [8000, 8000, 3000], [0.0, math.pi, 0.5])
    r = read(vm, [win], phases, mode="voltage", voltages=voltages)["reads"][0]
    assert r["err"] == 0
    want = [expected_ma(w, 16) for w in waves]
    assert r["ma"][0] > 0 and r["ma"][1] < 0 and r["ma"][2] > 0
    assert all(within(abs(got), w, 0.005) for got, w in zip(r["ma"], want))
    assert all(within(mv, 230000, 0.005) for mv in r["mv"])
    # Import only: the same currents, every one read as import (the frame still holds voltages).
    r = read(vm, [win], phases, stride=6)["reads"][0]
    assert r["err"] == 0 and all(within(got, w, 0.005) for got, w in zip(r["ma"], want))


@given(level=st.floats(0.1, 1.0), angle=st.floats(0, 2 * math.pi), rate=st.sampled_from((1000, 2000, 4000)))
@settings(max_examples=50, deadline=None)
def test_import_never_reads_as_export_and_clear_export_does(vm, level, angle, rate):
    amp = level * headroom(16, full(16) // 2)
    win, phases, voltages, waves = direction_window(rate // 5, rate, [amp], [angle])
    r = read(vm, [win], phases, mode="voltage", voltages=voltages)["reads"][0]
    assert r["err"] == 0
    want = expected_ma(waves[0], 16)
    assert within(abs(r["ma"][0]), want), (r["ma"][0], want)
    cos = math.cos(angle)
    if cos >= 0:
        assert r["ma"][0] > 0  # whatever the slots between current and voltage do
    elif cos <= -0.65:
        assert r["ma"][0] < 0  # export at |cos| 1/2 and up, once the slots' 9 degrees are allowed
    r = read(vm, [win], phases, stride=2)["reads"][0]
    assert within(r["ma"][0], want)


def test_unclear_direction_reads_as_import(vm, lim):
    def amps(ma):
        return ma * math.sqrt(2) / ua_per_count(16) * 1000

    small = amps(lim["deadband_ma"] / 2)
    cases = [
        (amps(10000), math.pi, -1),  # 10 A of export
        (small, math.pi, 1),  # a little export, within the noise band: import, never flipping
        (small, 0.0, 1),
        (amps(10000), math.pi / 2, 1),  # 10 A, reactive: no real power to tell by
        (amps(10000), 0.55 * math.pi, 1),  # 10 A at cos -0.16: skew alone could make that
        (amps(10000), 0.6 * math.pi, 1),  # 10 A at cos -0.31: mostly reactive, import
        (amps(10000), 0.75 * math.pi, -1),  # 10 A at cos -0.71: export
    ]
    windows = [direction_window(400, 2000, [a], [ang])[0] for a, ang, _ in cases]
    _, phases, voltages, _ = direction_window(400, 2000, [1], [0])
    reads = read(vm, windows, phases, mode="voltage", voltages=voltages)["reads"]
    assert [math.copysign(1, r["ma"][0]) for r in reads] == [sign for _, _, sign in cases]


def test_a_missing_voltage_reference_is_an_error(vm, lim):
    win, phases, voltages, _ = direction_window(400, 2000, [8000, 8000, 8000], [0, 0, 0], volts=0)
    r = read(vm, [win], phases, mode="voltage", voltages=voltages)["reads"][0]
    assert r["err"] == lim["codes"]["no_voltage"] and r["fault"] == 0
    assert r["ma"] == [lim["invalid_ma"]] * 3


def test_a_clipped_voltage_reference_is_an_error(vm, lim):
    win, phases, voltages, _ = direction_window(400, 2000, [8000], [0], volts=40000)
    win = [min(max(x, 0), 65535) for x in win]
    r = read(vm, [win], phases, mode="voltage", voltages=voltages)["reads"][0]
    assert r["err"] == lim["codes"]["clipped"] and r["ma"] == [lim["invalid_ma"]]


# --- Layout: stride, start, views --------------------------------------------------------


def test_stride_and_start_pick_the_channels_out_of_a_larger_buffer(vm):
    n = 400
    win, phases, voltages, _ = direction_window(n, 2000, [8000, 5000, 2000], [0.0, math.pi, 0.3],
                                                order="grouped")
    plain = read(vm, [win], phases, mode="voltage", voltages=voltages)["reads"][0]
    # The same frames with a foreign channel pinned to a rail in each, after two junk frames.
    width = 6
    padded = [0] * (2 * (width + 1))
    for k in range(n):
        padded += win[k * width:(k + 1) * width] + [65535]
    res = read(vm, [padded], phases, mode="voltage", voltages=voltages, n=n, stride=width + 1,
               start=2 * (width + 1), view=True)
    assert res["reads"][0] == plain and plain["err"] == 0


# --- Windows and integer arithmetic ------------------------------------------------------


def test_windows_are_whole_mains_cycles(vm, lim):
    cases = [[r, hz, c] for r in (1000, 1250, 2000, 3200, 5000) for hz in (50, 60) for c in (1, 10)]
    got = vm.call("ct_math", samples_for=cases + [[100000, 50, 10]])["samples_for"]
    for (rate, hz, cycles), n in zip(cases, got):
        if rate * cycles % hz == 0:
            assert n * hz == rate * cycles  # exactly `cycles` periods of the mains
        else:
            assert abs(n * hz - rate * cycles) * 2 <= hz  # the nearest whole number of samples
    assert got[-1] is None  # beyond MAX_SAMPLES: refused
    assert lim["max_samples"] == 4096


def test_isqrt_matches_the_exact_floor_square_root(vm):
    rng = random.Random(7)
    xs = list(range(0, 300)) + [rng.randrange(1 << 30) for _ in range(300)]
    xs += [v for r in (1 << 15, 46340, 32767, 12345) for v in (r * r - 1, r * r, r * r + 1)] + [(1 << 30) - 1]
    got = vm.call("ct_math", isqrt=xs)["isqrt"]
    assert got == [math.isqrt(x) for x in xs]


def test_per_count_turns_a_clamp_rating_into_a_calibration(vm):
    got = vm.call("ct_math", per_count=[[30, 1000, 50], [100, 1100, 806], [230, 1000, 50]])["per_count"]
    assert got == [1500, round(100e6 / 1100 * 806 / 1000), 11500]


def test_bad_configuration_names_the_field(vm):
    ans = vm.request("ct_read", windows=[], phases=[{"ua_per_count": 0}])
    assert ans["field"] == "ct.phases[0].ua_per_count"
    ans = vm.request("ct_read", windows=[], phases=[{"ua_per_count": 100}], mode="voltage")
    assert ans["field"] == "ct.voltages"
    ans = vm.request("ct_read", windows=[], phases=[{"ua_per_count": 100}, {"ua_per_count": 100, "at": 0}])
    assert ans["field"] == "ct.phases[1].at"


@pytest.mark.parametrize("mode", ("import_only", "voltage"))
@pytest.mark.parametrize("volts", (20000, 0, 40000))  # ok, no reference, clipped
def test_a_window_costs_no_heap(vm, mode, volts):
    win, phases, voltages, _ = direction_window(400, 2000, [8000, 5000, 2000], [0.0, math.pi, 0.3],
                                                volts=volts)
    win = [min(max(x, 0), 65535) for x in win]
    ans = vm.call("ct_heap", windows=[win], phases=phases, mode=mode, voltages=voltages, stride=6, reps=5)
    assert ans["heap"] == 0, ans
    assert ans["err"] == (0 if volts == 20000 or mode == "import_only" else 2 if volts == 0 else 1)


# --- Every intermediate below 2**30 ------------------------------------------------------
# The unix port's small ints reach 2**62, so it cannot show a big int the ESP32 would make.
# Here the same module runs in CPython on ints that refuse to leave the ESP32's small range.

SMALL = 1 << 30


class Small(int):
    seen = 0


def _checked(name):
    op = getattr(int, name)

    def f(self, *other):
        r = op(int(self), *other)
        if r is NotImplemented:
            return r
        if not -SMALL <= r < SMALL:
            raise OverflowError("%s gives %d, beyond the ESP32's small ints" % (name, r))
        Small.seen = max(Small.seen, abs(r))
        return Small(r)
    return f


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__",
              "__rfloordiv__", "__mod__", "__rmod__", "__lshift__", "__rlshift__", "__rshift__",
              "__rrshift__", "__and__", "__rand__", "__or__", "__ror__", "__neg__", "__abs__"):
    setattr(Small, _name, _checked(_name))


@pytest.fixture
def host_ct(monkeypatch):
    fake = types.ModuleType("micropython")
    fake.const = lambda x: x
    monkeypatch.setitem(sys.modules, "micropython", fake)
    monkeypatch.syspath_prepend(str(ROOT / "lib"))
    yield importlib.import_module("ampshare.meter.ct")
    for name in [m for m in sys.modules if m == "ampshare" or m.startswith("ampshare.")]:
        del sys.modules[name]


@pytest.mark.parametrize("bits", (8, 12, 16))
@pytest.mark.parametrize("shape", ("square", "one_spike", "spikes", "antiphase"))
def test_the_worst_window_keeps_every_integer_small(host_ct, bits, shape):
    ct = host_ct
    n = ct.MAX_SAMPLES
    lo, hi = margin(bits) + 1, full(bits) - margin(bits) - 1
    top = (ct._MAX_PER_COUNT - 1) >> max(bits - 14, 0)
    i = [(lo, hi)[k & 1] for k in range(n)]
    v = [(hi, lo)[k & 1] for k in range(n)] if shape == "antiphase" else list(i)
    if shape in ("one_spike", "spikes"):
        # Far from the mean, which the other samples hold near a rail: the largest squares.
        i = [lo] * n
        for k in range(n // 2, n, 37 if shape == "spikes" else n):
            i[k] = hi
    buf = [Small(x) for pair in zip(i, v) for x in pair]
    m = ct.Ct([{"ua_per_count": top, "offset_ma": 5000}], ct.VOLTAGE, [{"uv_per_count": top, "at": 1}],
              adc_bits=bits, deadband_ma=32767)
    Small.seen = 0
    assert m.read(buf, Small(n), Small(2)) == ct.OK
    if bits == 16:
        assert Small.seen >= 1 << 28  # the worst case really came near the edge
    for x in (0, 1, 2, 3, (1 << 30) - 1, (1 << 28) + 12345):
        assert ct.isqrt(Small(x)) == math.isqrt(x)
