# Modbus RTU frames for a master reading registers (function codes 03 and 04): the request,
# the answer's length, and its checks. Sans-I/O: bytes in, register words out. The serial
# timing (silences, the RS485 driver) is the shell's (rtu.py).
from micropython import const

READ_HOLDING = const(3)
READ_INPUT = const(4)
_EXCEPTION_BIT = const(0x80)
_EXCEPTION_LEN = const(5)  # address, function | 0x80, exception code, CRC
REGS_MAX = const(125)  # the most one read may ask for (Modbus application protocol 6.3)

# Why a read failed; each has a counter in the shell.
E_TIMEOUT = const(0)  # no (whole) answer in time: the meter is off, unwired or another id
_E_CRC = const(1)  # the frame was corrupted on the line
_E_EXCEPTION = const(2)  # the meter refused the request (see EXCEPTIONS)
_E_FRAME = const(3)  # a whole frame, but not the answer asked for (id, function, length)
E_IMPLAUSIBLE = const(4)  # decoded, but not a value a healthy meter reports
ERRORS = ("timeout", "crc", "exception", "frame", "implausible")
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "server device failure", 5: "acknowledge", 6: "server device busy",
              10: "gateway path unavailable", 11: "gateway target failed to respond"}


class ModbusError(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(ERRORS[kind] + (": " + detail if detail else ""))
        self.kind = kind


def crc16(data, n=None):
    """CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF) of data[:n]."""
    crc = 0xFFFF
    for i in range(len(data) if n is None else n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def read_request(buf, unit, fc, start, count):
    """Fills buf (8 bytes) with a read of count registers from start; returns 8."""
    if not 1 <= count <= REGS_MAX:
        raise ValueError("1..%d registers per read" % REGS_MAX)
    buf[0], buf[1] = unit, fc
    buf[2], buf[3] = start >> 8, start & 0xFF
    buf[4], buf[5] = count >> 8, count & 0xFF
    crc = crc16(buf, 6)
    buf[6], buf[7] = crc & 0xFF, crc >> 8  # the CRC goes low byte first
    return 8


def answer_len(count):
    """The length of a normal answer to a read of count registers."""
    return 5 + 2 * count


def expected(frame, count):
    """How many bytes the answer will have, once its first two are in."""
    return _EXCEPTION_LEN if frame[1] & _EXCEPTION_BIT else answer_len(count)


def check_answer(frame, n, unit, fc, count):
    """Raises ModbusError unless frame[:n] is the answer to (unit, fc, count); the words
    are then frame[3:3 + 2 * count], big-endian."""
    if n < _EXCEPTION_LEN:
        raise ModbusError(E_TIMEOUT, "%d bytes" % n)
    if crc16(frame, n - 2) != frame[n - 2] | frame[n - 1] << 8:
        raise ModbusError(_E_CRC)
    if frame[0] != unit:
        raise ModbusError(_E_FRAME, "from unit %d" % frame[0])
    if frame[1] == fc | _EXCEPTION_BIT:
        code = frame[2]
        raise ModbusError(_E_EXCEPTION, "%02d %s" % (code, EXCEPTIONS.get(code, "unknown")))
    if frame[1] != fc or frame[2] != 2 * count or n != answer_len(count):
        raise ModbusError(_E_FRAME, "function %d, %d bytes" % (frame[1], n))


def word(frame, i):
    """Register i of a checked answer."""
    return frame[3 + 2 * i] << 8 | frame[4 + 2 * i]
