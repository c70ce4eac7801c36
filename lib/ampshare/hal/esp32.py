# The ESP32 board: machine.PWM for the pilot, ADC1 for its levels, pins for the contactor and
# the phase relay, machine.WDT, network.WLAN for the access point and the station.
import time

import asyncio
import machine
import network
from micropython import const

from ampshare.config.units import ConfigError

_PILOT_HZ = const(1000)  # IEC 61851-1: the pilot oscillates at 1 kHz
_U16 = const(65535)
# ADC2 cannot be read while Wi-Fi runs; ADC1 is GPIO 32-39.
ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)
# Default wiring of the reference board; any output-capable GPIO serves for the outputs.
# GPIO 36 (VP) is input-only, on ADC1, with no pull resistor to load the pilot divider.
# The pair button is the module's BOOT button (GPIO 0, to ground, pulled up); the LED is the
# DevKit's blue one on GPIO 2.
PINS = {"pilot": 25, "pilot_adc": 36, "contactor": 26, "phase_relay": 27, "button": 0, "led": 2}
# The pilot front-end maps -12..+12 V onto the ADC's 0.15..3.15 V: 0 V pilot reads 1650 mV and
# each ADC millivolt is 8 pilot millivolts. A board with another divider passes its own.
_ADC_ZERO_MV = const(1650)
_PILOT_PER_ADC_MV = const(8)
# Reads per pilot sample: at about 25 us each, 48 reads span more than one 1 ms period, so
# both the high and the low half are seen whatever the duty (down to 10 %, 100 us low).
_SAMPLE_READS = const(48)


class Board:
    def __init__(self, pins=None, adc_zero_mv=_ADC_ZERO_MV, pilot_per_adc_mv=_PILOT_PER_ADC_MV, pilot=True):
        self.wdt = None
        self.duty = -1
        if not pilot:
            return  # a leader: the watchdog only
        pins = dict(PINS, **(pins or {}))
        if pins["pilot_adc"] not in ADC1_PINS:
            raise ConfigError("pins.pilot_adc", "GPIO %d is not on ADC1 (32-39); ADC2 stops working "
                              "while Wi-Fi runs" % pins["pilot_adc"])
        # Start paused: a steady +12 V offers nothing, whatever the car.
        self.pwm = machine.PWM(machine.Pin(pins["pilot"]), freq=_PILOT_HZ, duty_u16=_U16)
        self.adc = machine.ADC(machine.Pin(pins["pilot_adc"]), atten=machine.ADC.ATTN_11DB)
        self.contactor = machine.Pin(pins["contactor"], machine.Pin.OUT, value=0)
        self.phase_relay = machine.Pin(pins["phase_relay"], machine.Pin.OUT, value=0)
        self.button = machine.Pin(pins["button"], machine.Pin.IN, machine.Pin.PULL_UP)
        self.led = machine.Pin(pins["led"], machine.Pin.OUT, value=0)
        self.lit = False
        self.zero = adc_zero_mv
        self.gain = pilot_per_adc_mv

    def set_duty(self, duty):
        if duty != self.duty:
            self.duty = duty
            # Rounded down: a little less duty offers a little less current, the safe side.
            self.pwm.duty_u16(duty * _U16 // 10000)

    def set_contactor(self, closed):
        self.contactor.value(1 if closed else 0)

    def set_phase_relay(self, one_phase):
        self.phase_relay.value(1 if one_phase else 0)

    def set_led(self, on):
        if on != self.lit:
            self.lit = on
            self.led.value(1 if on else 0)

    def pair_button(self):
        return self.button.value() == 0  # pressed: pulled to ground

    def sample_pilot(self):
        hi = -1
        lo = 1 << 29
        read = self.adc.read_uv
        for _ in range(_SAMPLE_READS):
            v = read()
            if v > hi:
                hi = v
            if v < lo:
                lo = v
        return self._pilot_mv(hi), self._pilot_mv(lo)

    def _pilot_mv(self, uv):
        return (uv // 1000 - self.zero) * self.gain

    def measure(self):
        return None  # the charger's own CT clamps come with the metering shell

    def keepalive(self):
        pass  # the pins hold their levels; only the simulated board repeats them

    async def run(self):
        pass  # nothing arrives from outside: the ADC is read in sample_pilot

    def ask_meters(self):
        pass  # the meters' own shells (Modbus, CT) read them

    def ct_sampler(self, pins, rate_hz):
        return CtSampler(pins, rate_hz)

    def serial(self, settings):
        """The RS485 line the settings' "rs485" describes (pins over RS485's)."""
        return Rs485(settings)

    def start_watchdog(self, timeout_ms):
        self.wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self.wdt.feed()  # type: ignore[union-attr]  # start_watchdog() comes first


# The reference board's RS485 transceiver (a MAX3485-style driver): UART2 on its usual pins,
# and one pin that enables the driver (DE) and disables the receiver (/RE) together.
RS485 = {"uart": 2, "tx": 17, "rx": 16, "de": 4}


class Rs485:
    """A half-duplex RS485 line on a UART: the same interface as hal/serial_unix.Serial."""

    def __init__(self, settings):
        rs = dict(RS485, **settings)
        self.baud = rs.get("baud", 9600)
        # timeout=0: a read returns what the UART's buffer holds, at once.
        self.uart = machine.UART(rs["uart"], baudrate=self.baud, tx=rs["tx"], rx=rs["rx"], timeout=0)
        self.pin = machine.Pin(rs["de"], machine.Pin.OUT, value=0)  # listening

    def send(self, buf):
        # The driver is on only while the request leaves, and off before the meter may answer
        # (3.5 characters later): flush() returns once the last stop bit is out. It holds the
        # event loop for the request's own time, 9 ms at 9600 baud; releasing the driver by
        # the loop's timing instead could clip the answer.
        self.pin.value(1)
        try:
            self.uart.write(buf)
            self.uart.flush()
        finally:
            self.pin.value(0)

    def readinto(self, mv):
        return self.uart.readinto(mv) or 0


class CtSampler:
    """Fills a window of CT samples, one mains cycle per turn of the event loop: a window of
    ten cycles never holds the loop for more than one (20 ms at 50 Hz)."""

    def __init__(self, pins, rate_hz):
        for p in pins:
            if p not in ADC1_PINS:
                raise ConfigError("ct.pins", "GPIO %d is not on ADC1 (32-39)" % p)
        self.adcs = tuple(machine.ADC(machine.Pin(p), atten=machine.ADC.ATTN_11DB) for p in pins)
        self.period_us = 1_000_000 // rate_hz

    async def window(self, buf, n, per_turn):
        adcs, width = self.adcs, len(self.adcs)
        i = f = 0
        while f < n:
            end = min(n, f + per_turn)
            due = time.ticks_us()
            while f < end:
                for k in range(width):
                    buf[i] = adcs[k].read_u16()
                    i += 1
                f += 1
                due = time.ticks_add(due, self.period_us)
                while time.ticks_diff(due, time.ticks_us()) > 0:
                    pass  # the next frame's moment: a few tens of us, too short to yield
            await asyncio.sleep_ms(0)


# ESP-IDF's soft-AP admits 4 stations unless told more; each costs the Wi-Fi driver about 1.5 KB
# of the RAM MicroPython's heap grows into. 10: the installer's phone and a few wallboxes (a
# larger site puts its wallboxes on the site's Wi-Fi: docs/api.md).
AP_STATIONS = const(10)


def access_point(essid, password, channel=6):
    """The commissioning network: WPA2 with the installer's password (DESIGN.md), never open.
    With the station joined to the site's Wi-Fi, the radio keeps to that network's channel."""
    if len(password) < 8:
        raise ConfigError("ap.password", "WPA2 needs at least 8 characters")
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    ap.config(essid=essid, password=password, authmode=network.AUTH_WPA2_PSK, channel=channel,
              max_clients=AP_STATIONS)
    return ap


def station(ssid, password):
    """Join the site's network; returns at once (poll isconnected() from a task)."""
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    sta.connect(ssid, password)
    return sta


def scan():
    """The networks in reach, as network.WLAN.scan() gives them. It blocks for about two
    seconds: only the setup page calls it, before the unit has a role to control."""
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    return sta.scan()


def restart():
    """A hard reset: the board starts again from boot.py on what was saved."""
    machine.reset()


def uid():
    """The unit's id: its Wi-Fi MAC, unique and printed on the module."""
    return network.WLAN(network.STA_IF).config("mac")
