# Energy meters' register maps, as data: adding a meter is adding a table. Each field names
# where a value lives, its data type and word order, and its scale to our integer units.
# Decoding is integers only: a float32 register is taken apart into sign, exponent and
# mantissa, so no float is made and no value reaches 2**30.
from array import array

from micropython import const

from ampshare.core.ints import SMALL_MAX

from ampshare.meter import modbus as M

# Our units, per index into Reading.values.
# A phase's value is the L1 index plus the phase (0..2).
V1 = const(0)  # mV, phase to neutral
I1 = const(3)  # mA, signed: import positive (the sign of the phase's power)
P1 = const(6)  # W, signed
PT = const(9)  # W, the total
E_IMP = const(10)  # 10 Wh steps: small ints reach 10 GWh, which no site meter shows
E_EXP = const(11)
_N_VALUES = const(12)

# Data types. The word order is part of the type: "hi" has the high word first (big-endian,
# as Modbus itself), "lo" the low word first.
_F32 = const(0)  # IEEE 754 single, high word first (Eastron)
_U32 = const(1)  # unsigned, high word first (ABB)
_S32 = const(2)  # signed, high word first (ABB)
_S32_LO = const(3)  # signed, low word first (Carlo Gavazzi)
_U64 = const(4)  # unsigned, high word first (ABB energy)
_WORDS = (2, 2, 2, 2, 4)
_RAW_MAX = SMALL_MAX
# A phase exports only when its power says so clearly: below this, noise or a mostly reactive
# current could flip the sign of the whole current every poll.
_SIGN_DEADBAND_W = const(50)
_BLOCK_GAP = const(16)  # registers skipped rather than split into two reads (16 cost ~35 ms at 9600)


def _eastron(phases):
    # Input registers, float32, in volts, amps, watts and kWh.
    f = []
    for k in range(phases):
        f += [(V1 + k, 0x0000 + 2 * k, _F32, 1000, 1), (I1 + k, 0x0006 + 2 * k, _F32, 1000, 1),
              (P1 + k, 0x000C + 2 * k, _F32, 1, 1)]
    # A 1-phase meter's total is its phase's power (0x0034 is 3-phase meters' total).
    f += [(PT, 0x0034 if phases == 3 else 0x000C, _F32, 1, 1),
          (E_IMP, 0x0048, _F32, 100, 1), (E_EXP, 0x004A, _F32, 100, 1)]
    return (M.READ_INPUT, phases, tuple(f))


MODELS = {
    "sdm630": _eastron(3),
    # The SDM72D-M V2 keeps the SDM630's registers for these values; the first SDM72D-M has
    # totals only, and would answer the per-phase reads with an exception (a failed reading).
    "sdm72d-m": _eastron(3),
    "sdm120": _eastron(1),
    # ABB B23/B24: holding registers; 0.1 V, 0.01 A, 0.01 W, 0.01 kWh (64-bit counters).
    "abb-b23": (M.READ_HOLDING, 3, (
        (V1, 0x5B00, _U32, 100, 1), (V1 + 1, 0x5B02, _U32, 100, 1), (V1 + 2, 0x5B04, _U32, 100, 1),
        (I1, 0x5B0C, _U32, 10, 1), (I1 + 1, 0x5B0E, _U32, 10, 1), (I1 + 2, 0x5B10, _U32, 10, 1),
        (PT, 0x5B14, _S32, 1, 100), (P1, 0x5B16, _S32, 1, 100), (P1 + 1, 0x5B18, _S32, 1, 100),
        (P1 + 2, 0x5B1A, _S32, 1, 100), (E_IMP, 0x5000, _U64, 1, 1), (E_EXP, 0x5004, _U64, 1, 1))),
    # Carlo Gavazzi EM340: input registers, INT32 low word first; 0.1 V, mA, 0.1 W, 0.1 kWh.
    "em340": (M.READ_INPUT, 3, (
        (V1, 0x0000, _S32_LO, 100, 1), (V1 + 1, 0x0002, _S32_LO, 100, 1), (V1 + 2, 0x0004, _S32_LO, 100, 1),
        (I1, 0x000C, _S32_LO, 1, 1), (I1 + 1, 0x000E, _S32_LO, 1, 1), (I1 + 2, 0x0010, _S32_LO, 1, 1),
        (P1, 0x0012, _S32_LO, 1, 10), (P1 + 1, 0x0014, _S32_LO, 1, 10), (P1 + 2, 0x0016, _S32_LO, 1, 10),
        (PT, 0x0028, _S32_LO, 1, 10), (E_IMP, 0x0034, _S32_LO, 10, 1), (E_EXP, 0x004E, _S32_LO, 10, 1))),
}


def blocks(fields):
    """The reads that cover every field: (start, count) runs, near registers merged."""
    spans = sorted((reg, reg + _WORDS[typ]) for _, reg, typ, _, _ in fields)
    out = []
    for lo, hi in spans:
        if out and lo - out[-1][1] <= _BLOCK_GAP and hi - out[-1][0] <= M.REGS_MAX:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi - lo) for lo, hi in out)


def _implausible(what):
    raise M.ModbusError(M.E_IMPLAUSIBLE, what)


def f32(hi, lo, mul):
    """round(value * mul) of a float32 in two words; mul <= 1000."""
    exp = (hi >> 7) & 0xFF
    if exp == 0xFF:
        _implausible("NaN or infinity")
    if exp == 0:
        return 0  # zero, or too small for any unit of ours
    top = ((hi & 0x7F) << 16 | lo | 0x800000) >> 4  # 20 of the 24 bits: 1 ppm is plenty
    shift = 150 - exp - 4  # value = top * 2**-shift
    if shift > 31:
        return 0
    r = top * mul  # below 2**30: top < 2**20, mul <= 1000
    if shift >= 1:
        r = ((r >> (shift - 1)) + 1) >> 1  # rounded half up
    elif shift < 0:
        if shift < -29 or r > _RAW_MAX >> -shift:
            _implausible("beyond range")
        r <<= -shift
    return -r if hi & 0x8000 else r


def _u32(hi, lo):
    if hi >= 0x4000:  # 2**30 and above: also the all-ones "not available" mark
        _implausible("beyond range")
    return hi << 16 | lo


def _s32(hi, lo):
    if hi & 0x8000:
        if hi <= 0xC000:  # -2**30 and below (0xC0000000 itself would be 2**30 on the way)
            _implausible("beyond range")
        return -((0xFFFF - hi) << 16 | (0xFFFF - lo)) - 1
    return _u32(hi, lo)


def value(frame, i, typ, mul, div):
    """The field at register offset i of a checked answer, in our units."""
    w = M.word
    if typ == _F32:
        return f32(w(frame, i), w(frame, i + 1), mul)
    if typ == _U32:
        raw = _u32(w(frame, i), w(frame, i + 1))
    elif typ == _S32:
        raw = _s32(w(frame, i), w(frame, i + 1))
    elif typ == _S32_LO:
        raw = _s32(w(frame, i + 1), w(frame, i))
    else:
        if w(frame, i) or w(frame, i + 1):
            _implausible("beyond range")
        raw = _u32(w(frame, i + 2), w(frame, i + 3))
    if abs(raw) > _RAW_MAX // mul:
        _implausible("beyond range")
    return raw * mul // div if div > 1 else raw * mul


class Reading:
    """One poll's values (see the indices above); `present` has a bit per value read."""

    def __init__(self):
        self.values = array("i", [0] * _N_VALUES)
        self.present = 0

    def signed_currents(self):
        # Meters report a phase's current as a magnitude; its power carries the direction. An
        # exporting phase is credited its active current only (|P| / V): its reactive part
        # is no export, and crediting it would hand the fuse current it does not have.
        v = self.values
        for k in range(3):
            i = abs(v[I1 + k])
            p = v[P1 + k]
            volts = v[V1 + k] // 1000
            if self.present & (1 << (P1 + k)) and p < -_SIGN_DEADBAND_W and volts > 0:
                active = -p * 1000 // volts
                i = -(active if active < i else i)
            v[I1 + k] = i


def site_currents(values, phases, phase):
    """(l1, l2, l3) mA on the site's phases: a 1-phase meter's current on its phase."""
    if phases == 3:
        return values[I1], values[I1 + 1], values[I1 + 2]
    i = values[I1]
    return (i if phase == 0 else 0), (i if phase == 1 else 0), (i if phase == 2 else 0)


def decode(fields, start, count, frame, reading):
    """Takes the fields inside registers start..start+count from a checked answer. A current
    or a phase's power that is not plausible fails the reading; any other field (voltage,
    total, energy) is only left out: the control does not stand on it."""
    for idx, reg, typ, mul, div in fields:
        if start <= reg and reg + _WORDS[typ] <= start + count:
            try:
                reading.values[idx] = value(frame, reg - start, typ, mul, div)
            except M.ModbusError as e:
                if I1 <= idx <= P1 + 2:
                    raise e  # named: the native emitter (the twin's) compiles no bare raise
                continue
            reading.present |= 1 << idx
