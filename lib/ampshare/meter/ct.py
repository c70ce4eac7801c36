# CT clamps on the ADC: the RMS current of each phase, in signed integer milliamps, from one
# window of raw samples. Sans-I/O: a buffer in, numbers out; the shell owns the ADC and the
# clock. No float, no heap in a window, and every intermediate below 2**30 (DESIGN.md).
from array import array
from micropython import const

from ampshare.config.units import ConfigError, whole

# What read() returns. On anything but OK every phase reads INVALID_MA.
OK = const(0)
CLIPPED = const(1)  # a sample at an ADC rail: the clamp or its burden saturates, the peak is lost
NO_VOLTAGE = const(2)  # voltage mode: a phase's reference is missing, so its direction is unknown
REASONS = ("ok", "clipped", "no voltage reference")
# Larger than any fuse: a caller that ignores the error code still sees an overload, the safe
# side, never a current that looks plausible.
INVALID_MA = const(1 << 29)

IMPORT_ONLY = "import_only"
VOLTAGE = "voltage"

# The first pass sums raw samples: 4096 of 16 bits stay below 2**28. In 10 mains cycles that
# would be 20 kHz per channel, far beyond the few kHz a sampling loop is designed for.
MAX_SAMPLES = const(4096)
_MAINS_HZ = const(50)
# Ten cycles, 200 ms at 50 Hz: whole cycles cancel the ripple of a partial one, and five windows
# still fit in the leader's 1 s control period.
CYCLES = const(10)
# A phase reads as export only when the real power clearly says so; anything else reads as
# import, the safe side for the fuse. Clearly: the active current (I cos phi) beyond this band,
# where two or three ADC steps of noise on a 100 A clamp (about 0.2 A) cannot reach...
SIGN_DEADBAND_MA = const(300)
# ...and at least half the current (|cos phi| >= 1/2). The sign of a nearly reactive current is
# decided by small errors (the slots between a current and its voltage in a multiplexed loop,
# the reference transformer's phase shift), and a reading of -I credits the fuse with all of I
# while only I |cos phi| of it is real export: read as export, a reactive 10 A would credit
# the fuse with 20 A it does not have.
_EXPORT_COS_SHIFT = const(1)

# Deviations are worked with in 14 bits: one squared is at most 2**28, so the accumulator can
# take one more before it is folded, still below 2**30. A 16-bit reading (ADC.read_u16) loses
# its 2 lowest bits; the ESP32's converter has 12 real ones.
_WORK_BITS = const(14)
_FOLD = const(1 << 28)
_LOW16 = const(0xFFFF)  # a folded accumulator keeps its low 16 bits, the rest moves up
_CLIPPED_MEAN = const(-1)
_FRAC = const(4)  # RMS in sixteenths of a step: 1 mA of resolution on a 100 A clamp
_DIV = const(16000)  # sixteenths of a step, times micro- to milli-
# A rail is "reached" within 1/256 of the full scale: a few steps of noise around a flattened
# peak must not let it pass for a valid one.
_CLIP_SHIFT = const(8)
_MIN_BITS = const(8)
_MAX_BITS = const(16)  # read_u16; wider samples would not fit an array('H')
# Calibrations (after scaling to 14 bits) below 2**20 keep _scale's partial products small:
# over 1 A per step, beyond any clamp on any ADC.
_MAX_PER_COUNT = const(1 << 20)
# A residual of more than 5 A with no current is a wiring fault, not noise; it also keeps
# offset**2 below 2**30.
_MAX_OFFSET_MA = const(5000)
_QUAD_MAX_MA = const(32767)  # up to here ma**2 is a small int
# Below any public network's phase voltage (100 V in Japan) less its tolerance: a reading this
# low means the reference transformer is unplugged or wired to the wrong input.
_VREF_MIN_MV = const(80000)


def isqrt(x):
    """The exact floor of the square root of a non-negative int (Newton's method)."""
    if x < 2:
        if x < 0:
            raise ValueError("isqrt of a negative number")
        return x
    # Start at a power of two above the root: Newton then falls onto it from above.
    r = 1
    t = x
    while t > 3:
        t >>= 2
        r <<= 1
    r <<= 1
    while True:
        y = (r + x // r) >> 1
        if y >= r:
            return r
        r = y


def samples_for(rate_hz, mains_hz=_MAINS_HZ, cycles=CYCLES):
    """Samples per channel in a window of `cycles` mains cycles; `rate_hz` is per channel."""
    n = (rate_hz * cycles + (mains_hz >> 1)) // mains_hz
    if not 1 <= n <= MAX_SAMPLES:
        raise ValueError("%d samples per window; 1..%d" % (n, MAX_SAMPLES))
    return n


def per_count(rated, rated_mv, adc_uv_per_count):
    """Calibration in micro-units per ADC step (ua_per_count for amps, uv_per_count for volts).

    A clamp (or voltage transformer) that gives `rated_mv` at `rated` A (or V), on an ADC whose
    step is `adc_uv_per_count` microvolts: 30 A at 1000 mV on 50 uV steps is 1500 uA per step.
    A current-output clamp gives its secondary current times the burden resistor.
    """
    # The bounds are _mul_div's, and 1000 A or V is beyond any clamp or phase voltage.
    whole(rated, "rated", 1, 1000)
    whole(rated_mv, "rated_mv", 1, (1 << 19) - 1)
    whole(adc_uv_per_count, "adc_uv_per_count", 1, (1 << 17) - 1)
    return _mul_div(adc_uv_per_count, rated * 1000, rated_mv)


def _mul_div(a, b, c):
    # round(a * b / c) for a < 2**18, b < 2**20, c < 2**19, with no product above 2**30: b is
    # split in two 10-bit halves and the high half's remainder carried into the low one.
    x = a * (b >> 10)
    q = x // c
    return (q << 10) + (((x - q * c) << 10) + a * (b & 1023) + (c >> 1)) // c


def _scale(x16, per_count):
    # sixteenths of a step times micro-units per step -> milli-units
    return _mul_div(x16, per_count, _DIV)


def _mean(buf, i, n, step, lo, hi):
    # The DC offset (the burden's bias), rounded; or _CLIPPED_MEAN at the first sample on a rail.
    s = 0
    end = i + n * step
    while i < end:
        x = buf[i]
        if x <= lo or x >= hi:
            return _CLIPPED_MEAN
        s += x
        i += step
    return (s + (n >> 1)) // n


def _root(hi, acc, n):
    # RMS in sixteenths of a step from the sum of squares hi * 2**16 + acc over n samples. Long
    # division brings in two fraction bits per round while the mean square has room for them.
    q = hi // n
    r = ((hi - q * n) << 16) + acc
    ms = (q << 16) + r // n
    r %= n
    f = 0
    while f < _FRAC and ms < _FOLD:
        r <<= 2
        ms = (ms << 2) + r // n
        r %= n
        f += 1
    return isqrt(ms) << (_FRAC - f)


def _rms16(buf, i, n, step, q, sh):
    q -= (1 << sh) >> 1  # so that >> sh rounds to nearest instead of down
    hi = 0
    acc = 0
    end = i + n * step
    while i < end:
        d = (buf[i] - q) >> sh
        acc += d * d
        if acc >= _FOLD:
            hi += acc >> 16
            acc &= _LOW16
        i += step
    return _root(hi, acc, n)


def _dot(buf, i, j, n, step, qi, qv, sh):
    # Mean of (i - mean_i) * (v - mean_v), in steps squared: the real power, floored.
    half = (1 << sh) >> 1
    qi -= half
    qv -= half
    hi = 0
    acc = 0
    end = i + n * step
    while i < end:
        acc += ((buf[i] - qi) >> sh) * ((buf[j] - qv) >> sh)
        if not -_FOLD < acc < _FOLD:
            hi += acc >> 16  # floors: acc = hi * 2**16 + low bits holds for negatives too
            acc &= _LOW16
        i += step
        j += step
    q = hi // n
    return (q << 16) + (((hi - q * n) << 16) + acc) // n


def _less_noise(ma, off):
    # The residual reading with no current is noise, and noise adds in quadrature: taking it off
    # whole would under-read every real current by it, the unsafe side for a fuse.
    if ma <= off:
        return 0
    if ma <= _QUAD_MAX_MA:
        return isqrt(ma * ma - off * off)
    return ma - off * off // (ma << 1)  # first order; above 32 A it is within 3 mA


def _number(cfg, key, where, lo, hi, default=None):
    if not isinstance(cfg, dict):
        raise ConfigError(where, "must be an object")
    v = cfg.get(key, default)
    if v is None:
        raise ConfigError(where + "." + key, "missing required field")
    return whole(v, where + "." + key, lo, hi)


def _position(cfg, where, default, taken):
    at = _number(cfg, "at", where, 0, 255, default)
    if at in taken:
        raise ConfigError(where + ".at", "position %d is used twice" % at)
    taken.append(at)
    return at


class Ct:
    """A CT meter of 1 to 3 phases, read from one buffer of interleaved samples.

    `phases`: per phase {"ua_per_count": int, "offset_ma": int (0), "at": position in a frame}.
    `mode` IMPORT_ONLY (every current positive) or VOLTAGE, which needs `voltages`: per phase
    {"uv_per_count": int, "at": position}. By default a frame is L1 L2 L3 then V1 V2 V3.
    After read(): `ma` the signed current per phase (+ import), `mv` the voltage per phase
    (voltage mode), `fault` the phase of the last error or -1.
    """

    def __init__(self, phases, mode=IMPORT_ONLY, voltages=None, adc_bits=_MAX_BITS,
                 deadband_ma=SIGN_DEADBAND_MA):
        k = len(phases) if isinstance(phases, list) else 0
        if not 1 <= k <= 3:
            raise ConfigError("ct.phases", "must list 1 to 3 phases")
        if mode not in (IMPORT_ONLY, VOLTAGE):
            raise ConfigError("ct.mode", "'%s' is not one of %s %s" % (mode, IMPORT_ONLY, VOLTAGE))
        bits = whole(adc_bits, "ct.adc_bits", _MIN_BITS, _MAX_BITS)
        self._sh = bits - _WORK_BITS if bits > _WORK_BITS else 0
        full = (1 << bits) - 1
        self._lo = full >> _CLIP_SHIFT or 1
        self._hi = full - self._lo
        deadband = whole(deadband_ma, "ct.deadband_ma", 0, _QUAD_MAX_MA)
        self.n_phases = k
        self._i_at = array("B", [0] * k)
        self._upc = array("i", [0] * k)
        self._off = array("i", [0] * k)
        self._band = array("i", [0] * k)  # SIGN_DEADBAND_MA in whole steps of each phase
        taken = []
        for p in range(k):
            where = "ct.phases[%d]" % p
            self._upc[p] = self._per_count(phases[p], "ua_per_count", where)
            self._off[p] = _number(phases[p], "offset_ma", where, 0, _MAX_OFFSET_MA, 0)
            self._i_at[p] = _position(phases[p], where, p, taken)
            self._band[p] = deadband * 1000 // self._upc[p]
        self._v_at = None
        if mode == VOLTAGE:
            if not isinstance(voltages, list) or len(voltages) != k:
                raise ConfigError("ct.voltages", "voltage mode needs one reference per phase")
            self._v_at = array("B", [0] * k)
            self._uvpc = array("i", [0] * k)
            for p in range(k):
                where = "ct.voltages[%d]" % p
                self._uvpc[p] = self._per_count(voltages[p], "uv_per_count", where)
                self._v_at[p] = _position(voltages[p], where, k + p, taken)
        self.width = max(taken) + 1
        self.ma = array("i", [0] * k)
        self.mv = array("i", [0] * k)
        self.fault = -1

    def _per_count(self, cfg, key, where):
        # Scaled to the 14-bit working step, where it meets the RMS.
        limit = (_MAX_PER_COUNT - 1) >> self._sh
        return _number(cfg, key, where, 1, limit) << self._sh

    def read(self, buf, n, stride=0, start=0):
        """Read one window: `n` frames of `stride` samples (default `width`) from `start`.

        `buf` holds unsigned samples (array('H'), or a memoryview of one). Returns OK or the
        error; fills `ma` (and `mv`). Allocates nothing.
        """
        if not 1 <= n <= MAX_SAMPLES:
            raise ValueError("n: %d frames; 1..%d" % (n, MAX_SAMPLES))
        step = stride or self.width
        for p in range(self.n_phases):
            err = self._phase(p, buf, start, n, step)
            if err:
                self.fault = p
                for k in range(self.n_phases):
                    self.ma[k] = INVALID_MA
                return err
        self.fault = -1
        return OK

    def _phase(self, p, buf, start, n, step):
        i = start + self._i_at[p]
        q = _mean(buf, i, n, step, self._lo, self._hi)
        if q == _CLIPPED_MEAN:
            return CLIPPED
        rms16 = _rms16(buf, i, n, step, q, self._sh)
        ma = _less_noise(_scale(rms16, self._upc[p]), self._off[p])
        if self._v_at is not None:
            export = self._export(p, buf, start, n, step, i, q, rms16 >> _FRAC)
            if export < 0:
                return -export
            if export:
                ma = -ma
        self.ma[p] = ma
        return OK

    def _export(self, p, buf, start, n, step, i, qi, irms):
        # 1 when the real power, mean((i - mean_i) * (v - mean_v)), is clearly negative; 0 when
        # not; minus the error code when the reference cannot tell.
        j = start + self._v_at[p]  # type: ignore[index]  # called only with a voltage reference
        qv = _mean(buf, j, n, step, self._lo, self._hi)
        if qv == _CLIPPED_MEAN:
            return -CLIPPED
        sh = self._sh
        vrms16 = _rms16(buf, j, n, step, qv, sh)
        self.mv[p] = _scale(vrms16, self._uvpc[p])
        if self.mv[p] < _VREF_MIN_MV:
            return -NO_VOLTAGE
        pm = _dot(buf, i, j, n, step, qi, qv, sh)
        if pm >= 0:
            return 0
        # The active current, I cos(phi) = P / V, in whole steps (80 V at the largest
        # calibration is still 76 steps: never a division by 0).
        active = -pm // (vrms16 >> _FRAC)
        return 1 if active > self._band[p] and active >= irms >> _EXPORT_COS_SHIFT else 0
