# A stand-in for the ESP32's machine module: every call is logged for the test to check.
CALLS = []
ADC_UV = []  # what the next ADC reads return, in turn
ADC_U16 = []


def _log(*call):
    CALLS.append(list(call))


LEVELS = {}  # what an input pin reads, by GPIO (1 when not set)


class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 2

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n
        _log("Pin", n, mode, pull if value is None else value)

    def value(self, v=None):
        if v is None:
            return LEVELS.get(self.n, 1)
        _log("Pin.value", self.n, v)


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        self.pin = pin.n
        _log("PWM", pin.n, freq, duty_u16)

    def duty_u16(self, v):
        _log("PWM.duty_u16", self.pin, v)


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        _log("ADC", pin.n, atten)

    def read_uv(self):
        return ADC_UV.pop(0) if ADC_UV else 0

    def read_u16(self):
        return ADC_U16.pop(0) if ADC_U16 else 32768


class UART:
    RX = []  # what the next reads return, in turn

    def __init__(self, n, baudrate=None, tx=None, rx=None, timeout=None):
        self.n = n
        _log("UART", n, baudrate, tx, rx, timeout)

    def write(self, buf):
        _log("UART.write", self.n, bytes(buf).hex())
        return len(buf)

    def flush(self):
        _log("UART.flush", self.n)

    def readinto(self, mv):
        if not UART.RX:
            return None  # what a UART with nothing to read returns
        data = UART.RX.pop(0)
        mv[:len(data)] = data
        return len(data)


class WDT:
    def __init__(self, timeout):
        _log("WDT", timeout)

    def feed(self):
        _log("WDT.feed")


def reset():
    _log("reset")
    raise SystemExit("reset")
