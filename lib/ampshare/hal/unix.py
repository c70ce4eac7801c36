# The unix board: the same interface as the ESP32's, played by the host plant simulator over
# loopback UDP. The pilot duty, contactor and relay go out; the pilot's levels, the measured
# currents and (for a leader) the meters' readings come back.
import json
import os
import time

import _thread
from micropython import const

from ampshare.run.udp import Link, address

_KEEPALIVE_MS = const(1000)  # outputs are sent on every change and at least this often
_WATCH_MS = const(100)


class Board:
    def __init__(self, plant=("127.0.0.1", 45460), plant_id=None, stall_at_ms=None):
        self.link = Link("127.0.0.1", 0)
        self.plant = address(plant[0], plant[1])
        self.id = plant_id
        self.duty = 10000
        self.closed = False
        self.one_phase = False
        self.led = False
        self.button = False  # the plant presses it ({"press": 1}) and lets go ({"press": 0})
        self.high = 12000  # no car until the plant says otherwise
        self.low = -12000
        self.meas = (0, 0, 0)
        self.energy_wh = 0
        self.on_meter = None  # (meter id, l1, l2, l3) in mA, set by a leader
        self._sent_at = time.ticks_add(time.ticks_ms(), -_KEEPALIVE_MS)
        self._fed = 0
        self._timeout = 0
        # A test's board: its control loop hangs for good this long after start (in keepalive,
        # which the loop calls every period), and the watchdog must reset it.
        self._stall_at = None if stall_at_ms is None else time.ticks_add(time.ticks_ms(), stall_at_ms)

    # ---- outputs ----------------------------------------------------------------------

    def set_duty(self, duty):
        self._set("duty", duty)

    def set_contactor(self, closed):
        self._set("closed", closed)

    def set_phase_relay(self, one_phase):
        self._set("one_phase", one_phase)

    def set_led(self, on):
        self._set("led", on)

    def _set(self, name, value):
        # Each output goes to the plant when it changes (and again with keepalive()).
        if getattr(self, name) != value:
            setattr(self, name, value)
            self._send()

    def pair_button(self):
        return self.button

    def _send(self):
        self._sent_at = time.ticks_ms()
        self.link.send(json.dumps({"id": self.id, "duty": self.duty, "contactor": int(self.closed),
                                   "relay": int(self.one_phase), "led": int(self.led)}), self.plant)

    def keepalive(self):
        if self._stall_at is not None and time.ticks_diff(time.ticks_ms(), self._stall_at) >= 0:
            while True:
                time.sleep_ms(1000)
        if self.id is not None and time.ticks_diff(time.ticks_ms(), self._sent_at) >= _KEEPALIVE_MS:
            self._send()

    def ask_meters(self):
        self.link.send(b'{"meters": 1}', self.plant)

    def ct_sampler(self, pins, rate_hz):
        from ampshare.config.units import ConfigError
        raise ConfigError("settings.ct", "CT clamps need the ESP32's ADC; here the plant plays every meter")

    def serial(self, settings):
        """The RS485 line: a tty ("device"), such as one end of a socat pty pair."""
        from ampshare.hal.serial_unix import Serial
        return Serial(settings["device"], settings.get("baud", 9600))

    # ---- inputs -----------------------------------------------------------------------

    def sample_pilot(self):
        return self.high, self.low

    def measure(self):
        return self.meas[0], self.meas[1], self.meas[2], self.energy_wh

    async def run(self):
        """Takes in what the plant sends; started as a task by the application."""
        while True:
            data, _ = await self.link.recv()
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if "press" in msg:
                self.button = bool(msg["press"])
            if "hi" in msg:
                self.high, self.low = msg["hi"], msg["lo"]
                self.meas = tuple(msg["ma"])
                self.energy_wh = msg.get("wh", 0)
            elif "meters" in msg and self.on_meter is not None:
                for mid, ma in msg["meters"].items():
                    self.on_meter(mid, ma[0], ma[1], ma[2])

    # ---- the watchdog: a board that stops feeding it is reset ---------------------------

    def start_watchdog(self, timeout_ms):
        self._timeout = timeout_ms
        self._fed = time.ticks_ms()
        _thread.start_new_thread(self._watch, ())

    def feed(self):
        self._fed = time.ticks_ms()

    def _watch(self):
        # A second thread plays the hardware timer: it reads one integer and sleeps, so it
        # shares nothing with the loop it watches. Expired, it kills the process as a reset
        # would stop the board; the simulator starts it again.
        while time.ticks_diff(time.ticks_ms(), self._fed) < self._timeout:
            time.sleep_ms(_WATCH_MS)
        print("watchdog: the control loop stalled; resetting")
        os.system("kill -9 $PPID")
