"""Modbus RTU frames and the meters' register maps, against references written here from the
Modbus specification and the vendors' published maps."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def answer(unit, fc, regs_bytes):
    body = bytes([unit, fc, len(regs_bytes)]) + regs_bytes
    return body + struct.pack("<H", crc16(body))


def test_crc_check_value(vm):
    # The catalogue's check value for CRC-16/MODBUS.
    assert vm.call("mb_crc", hex=b"123456789".hex())["crc"] == 0x4B37


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=64))
def test_crc_matches_the_reference(vm, data):
    assert vm.call("mb_crc", hex=data.hex())["crc"] == crc16(data)


def test_a_read_request_is_unit_function_start_count_crc(vm):
    got = bytes.fromhex(vm.call("mb_request", unit=1, fc=4, start=0x48, count=4)["hex"])
    assert got[:6] == bytes([1, 4, 0, 0x48, 0, 4])
    assert got[6:] == struct.pack("<H", crc16(got[:6]))  # low byte first


def test_a_good_answer_gives_its_words(vm):
    frame = answer(7, 3, struct.pack(">3H", 1, 0xBEEF, 65535))
    assert vm.call("mb_check", hex=frame.hex(), unit=7, fc=3, count=3)["words"] == [1, 0xBEEF, 65535]


@pytest.mark.parametrize("frame, error", [
    (answer(1, 4, b"\x00\x01")[:-1] + b"\x00", "crc"),  # a bit flipped on the line
    (answer(2, 4, b"\x00\x01"), "frame"),  # another unit answered
    (answer(1, 3, b"\x00\x01"), "frame"),  # another function
    (answer(1, 4, b"\x00\x01\x00\x02"), "frame"),  # more registers than asked for
    (b"\x01\x04", "timeout"),  # cut short
])
def test_a_wrong_answer_is_refused_by_kind(vm, frame, error):
    assert vm.call("mb_check", hex=frame.hex(), unit=1, fc=4, count=1)["error"] == error


def test_an_exception_answer_is_decoded(vm):
    body = bytes([1, 0x84, 2])
    ans = vm.call("mb_check", hex=(body + struct.pack("<H", crc16(body))).hex(), unit=1, fc=4, count=2)
    assert ans["error"] == "exception" and "illegal data address" in ans["text"]


# ---- the data types, integers only -----------------------------------------------------------

F32, U32, S32, S32_LO, U64 = range(5)


def words(fmt, value, swap=False):
    raw = struct.pack(fmt, value)
    if swap:  # low word first
        raw = b"".join(raw[i:i + 2] for i in reversed(range(0, len(raw), 2)))
    return answer(1, 4, raw)


@settings(max_examples=300)
@given(st.floats(min_value=-500_000, max_value=500_000, allow_nan=False, width=32),
       st.sampled_from([1, 100, 1000]))
def test_float32_decodes_to_rounded_integers(vm, x, mul):
    got = vm.call("mb_value", hex=words(">f", x).hex(), type=F32, mul=mul, div=1)["value"]
    want = x * mul
    # 20 of float32's 24 mantissa bits are kept: within a unit, or a millionth of the value.
    assert abs(got - want) <= max(1, abs(want) * 2 ** -19), (x, mul, got)


@pytest.mark.parametrize("bits", [0x7FC00000, 0x7F800000, 0xFF800000])
def test_float32_nan_and_infinity_are_implausible(vm, bits):
    frame = answer(1, 4, struct.pack(">I", bits))
    assert vm.call("mb_value", hex=frame.hex(), type=F32, mul=1000, div=1)["error"] == "implausible"


@settings(max_examples=200)
@given(st.integers(-(2 ** 29), 2 ** 29), st.sampled_from([(1, 1), (10, 1), (1, 100)]))
def test_integer_types_and_word_orders(vm, raw, scale):
    mul, div = scale
    if abs(raw) >= (1 << 30) // mul:
        return
    want = raw * mul // div if div > 1 else raw * mul
    assert vm.call("mb_value", hex=words(">i", raw).hex(), type=S32, mul=mul, div=div)["value"] == want
    assert vm.call("mb_value", hex=words(">i", raw, swap=True).hex(), type=S32_LO, mul=mul, div=div)["value"] == want
    if raw >= 0:
        assert vm.call("mb_value", hex=words(">I", raw).hex(), type=U32, mul=mul, div=div)["value"] == want
        assert vm.call("mb_value", hex=words(">Q", raw).hex(), type=U64, mul=mul, div=div)["value"] == want


@pytest.mark.parametrize("fmt, value, typ", [
    (">I", 0xFFFFFFFF, U32), (">i", 0x7FFFFFFF, S32), (">Q", 2 ** 64 - 1, U64), (">Q", 2 ** 40, U64)])
def test_not_available_marks_and_overflow_are_implausible(vm, fmt, value, typ):
    assert vm.call("mb_value", hex=words(fmt, value).hex(), type=typ, mul=1, div=1)["error"] == "implausible"


# ---- the register maps ------------------------------------------------------------------------
# Each model's image is built from the vendor's published map: (register, struct format, scale
# from the unit on the wire to V, A, W or kWh, word order swapped).

PHYS = {"voltage_v": [230.4, 229.1, 231.7], "current_a": [12.5, 3.25, 0.75], "power_w": [2870.0, -744.0, 170.0],
        "total_power_w": 2296.0, "import_kwh": 4321.09, "export_kwh": 123.45}

EASTRON3 = [("voltage_v", k, 0x00 + 2 * k, ">f", 1, False) for k in range(3)] + \
           [("current_a", k, 0x06 + 2 * k, ">f", 1, False) for k in range(3)] + \
           [("power_w", k, 0x0C + 2 * k, ">f", 1, False) for k in range(3)] + \
           [("total_power_w", None, 0x34, ">f", 1, False), ("import_kwh", None, 0x48, ">f", 1, False),
            ("export_kwh", None, 0x4A, ">f", 1, False)]
MAPS = {
    "sdm630": (4, EASTRON3),
    "sdm72d-m": (4, EASTRON3),
    "sdm120": (4, [("voltage_v", 0, 0x00, ">f", 1, False), ("current_a", 0, 0x06, ">f", 1, False),
                   ("power_w", 0, 0x0C, ">f", 1, False), ("import_kwh", None, 0x48, ">f", 1, False),
                   ("export_kwh", None, 0x4A, ">f", 1, False)]),
    "abb-b23": (3, [("voltage_v", k, 0x5B00 + 2 * k, ">I", 10, False) for k in range(3)] +
                [("current_a", k, 0x5B0C + 2 * k, ">I", 100, False) for k in range(3)] +
                [("power_w", k, 0x5B16 + 2 * k, ">i", 100, False) for k in range(3)] +
                [("total_power_w", None, 0x5B14, ">i", 100, False), ("import_kwh", None, 0x5000, ">Q", 100, False),
                 ("export_kwh", None, 0x5004, ">Q", 100, False)]),
    "em340": (4, [("voltage_v", k, 0x00 + 2 * k, ">i", 10, True) for k in range(3)] +
              [("current_a", k, 0x0C + 2 * k, ">i", 1000, True) for k in range(3)] +
              [("power_w", k, 0x12 + 2 * k, ">i", 10, True) for k in range(3)] +
              [("total_power_w", None, 0x28, ">i", 10, True), ("import_kwh", None, 0x34, ">i", 10, True),
               ("export_kwh", None, 0x4E, ">i", 10, True)]),
}


def signed_ma(amps, watts, volts):
    """Import positive; an exporting phase (beyond 50 W) is credited its active current only."""
    i = round(amps * 1000)
    if watts < -50:
        return -min(i, int(-round(watts)) * 1000 // int(volts))
    return i


def test_a_reactive_export_is_credited_its_active_current_only(vm):
    # 10 A at 230 V but only -230 W: 1 A of export, 9 A of it reactive. And -20 W: import.
    for watts, want in ((-230.0, -1000), (-20.0, 10000), (-4600.0, -10000)):
        regs = image([("voltage_v", 0, 0x00, ">f", 1, False), ("current_a", 0, 0x06, ">f", 1, False),
                      ("power_w", 0, 0x0C, ">f", 1, False)], {"voltage_v": [230.0], "current_a": [10.0],
                                                               "power_w": [watts]})
        answers = {}
        for start, count in vm.call("mb_blocks", model="sdm120")["blocks"]:
            answers["%d" % start] = answer(1, 4, b"".join(regs.get(start + i, b"\x00\x00")
                                                         for i in range(count))).hex()
        assert vm.call("mb_decode", model="sdm120", answers=answers)["values"][3] == want, watts


def image(entries, phys=None):
    regs, phys = {}, phys or PHYS
    for name, k, reg, fmt, scale, swap in entries:
        x = phys[name] if k is None else phys[name][k]
        raw = struct.pack(fmt, x if fmt == ">f" else round(x * scale))
        ws = [raw[i:i + 2] for i in range(0, len(raw), 2)]
        for i, w in enumerate(reversed(ws) if swap else ws):
            regs[reg + i] = w
    return regs


@pytest.mark.parametrize("model", sorted(MAPS))
def test_each_model_reads_its_own_map(vm, model):
    fc, entries = MAPS[model]
    regs = image(entries)
    # The decoder's own reads (which blocks) are asked first, then answered from the image.
    answers = {}
    for start, count in vm.call("mb_blocks", model=model)["blocks"]:
        data = b"".join(regs.get(start + i, b"\x00\x00") for i in range(count))
        answers["%d" % start] = answer(1, fc, data).hex()
    ans = vm.call("mb_decode", model=model, answers=answers)
    assert ans["fc"] == fc
    v, present = ans["values"], ans["present"]
    phases = 1 if model == "sdm120" else 3
    for k in range(phases):
        assert v[k] == round(PHYS["voltage_v"][k] * 1000)
        assert v[3 + k] == signed_ma(PHYS["current_a"][k], PHYS["power_w"][k], PHYS["voltage_v"][k])
        assert v[6 + k] == round(PHYS["power_w"][k])
    assert v[9] == round(PHYS["total_power_w"] if phases == 3 else PHYS["power_w"][0])
    # Energy in 10 Wh steps, from what the wire can carry (EM340: 0.1 kWh).
    e_fmt, e_scale = {e[0]: (e[3], e[4]) for e in entries}["import_kwh"]
    for idx, name in ((10, "import_kwh"), (11, "export_kwh")):
        on_wire = PHYS[name] if e_fmt == ">f" else round(PHYS[name] * e_scale) / e_scale
        assert v[idx] == round(on_wire * 100), name
    if phases == 1:
        assert not present & (1 << 4 | 1 << 5 | 1 << 1 | 1 << 2)  # L2, L3: null, not 0



def test_a_one_phase_meter_reads_on_its_own_site_phase(vm):
    values = [230000, 0, 0, 12000, 0, 0, 2760, 0, 0, 2760, 0, 0]
    assert vm.call("mb_site_currents", values=values, phases=1, phase=1)["ma"] == [0, 12000, 0]
    values3 = values[:3] + [12000, 5000, -3000] + values[6:]
    assert vm.call("mb_site_currents", values=values3, phases=3, phase=0)["ma"] == [12000, 5000, -3000]
