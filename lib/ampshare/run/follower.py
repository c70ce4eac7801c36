# The follower's shell: each control period (shell.py) samples the pilot and drives the PWM
# and the contactor; a task takes datagrams from the leader. The core decides; this file only
# moves values between it, the board and the network.
import time

from binascii import hexlify, unhexlify
from micropython import const

from ampshare.run import store
from ampshare.core.follower import Follower
from ampshare.wire.follower import FollowerPort
from ampshare.run.shell import Shell
from ampshare.run.udp import Link, address
from ampshare.wire.frame import HELLO

CONTROL_MS = const(100)  # the pilot is sampled at 10 Hz: a contactor opens within 100 ms
# The hardware watchdog resets a board whose control loop stalls this long: well above one
# period, well below the leader's 3 s before it calls a follower silent.
BOARD_WATCHDOG_MS = const(2000)
_BLINK_STEPS = const(3)  # the identify LED changes every third period: 300 ms on, 300 ms off
STATE_FILE = "follower.json"  # key, charger and boot counter, in the settings' state_dir


class FollowerApp(Shell):
    period_ms = CONTROL_MS
    watchdog_ms = BOARD_WATCHDOG_MS

    def __init__(self, settings, board, now_ms):
        super().__init__(settings, board, now_ms)
        self.path = settings["state_dir"] + "/" + STATE_FILE
        saved = store.read_json(self.path, {})
        # A boot counter, saved before anything is sent: the leader tells this boot's
        # packets from an earlier one's.
        saved["f_epoch"] = saved.get("f_epoch", 0) + 1
        saved_ok = self.persist(store.save_json, self.path, saved)
        self.saved = saved
        key = unhexlify(saved["key"]) if "key" in saved else None
        f = Follower(settings["nameplate_a"] * 1000, settings["phases"], settings["phase_switching"], now_ms)
        f.flash_failed = not saved_ok
        self.core = f
        self.port = FollowerPort(f, unhexlify(settings["uid"]), settings["code"].encode(), saved["f_epoch"], key=key,
                                 charger=saved.get("charger", -1))
        self.port.charger_id = saved.get("charger_id", "")
        self._pressed = False
        self._steps = 0
        self.link = Link(settings["bind"], settings["port_follower"], broadcast=True)
        # Until a COMMAND or PAIR shows where the leader is, its port at the broadcast address.
        self.everyone = address(settings["broadcast"], settings["port_leader"])
        self.leader = self.everyone

    def _outputs(self):
        b, f = self.board, self.core
        b.set_duty(f.duty)
        b.set_contactor(f.contactor)  # opened before the relay moves (the core's order)
        b.set_phase_relay(f.one_phase)

    def _panel(self, now_ms):
        # The pair button (a press opens the pairing window) and the identify LED.
        b, f = self.board, self.core
        pressed = b.pair_button()
        if pressed and not self._pressed:
            f.press_pair(now_ms)
        self._pressed = pressed
        self._steps = (self._steps + 1) % (2 * _BLINK_STEPS)
        b.set_led(f.identifying() and self._steps < _BLINK_STEPS)

    def _save(self):
        # Flash is written here, from the receiving task, never in the control loop.
        p = self.port
        p.paired_event = p.epoch_event = False
        if p.key is not None:
            self.saved.update(key=hexlify(p.key.raw()).decode(), charger=p.charger, charger_id=p.charger_id)
        self.saved["f_epoch"] = p.f_epoch
        self.core.flash_failed = not self.persist(store.save_json, self.path, self.saved)

    def step(self, now_ms):
        """One control period: pilot in, core timers, outputs and a report out."""
        b, f = self.board, self.core
        high, low = b.sample_pilot()
        f.sample(now_ms, high, low)
        m = b.measure()
        if m is not None:
            f.measure(m[0], m[1], m[2], m[3])
        out = self.port.tick(now_ms)
        self._outputs()
        self._panel(now_ms)
        if out is not None:
            # A HELLO to everyone: a leader that forgot this unit may be at another address.
            self.link.send(out, self.everyone if out[3] == HELLO else self.leader)

    async def receive(self):
        while True:
            data, addr = await self.link.recv()
            if self.port.receive(time.ticks_ms(), data):
                self.leader = addr  # authentic: the leader is where it came from
                self._outputs()  # a decrease reaches the pilot now, not next period
            if self.port.paired_event or self.port.epoch_event:
                self._save()

    def tasks(self):
        return (self.receive(),)
