# The leader's shell: the control loop that ticks the core and sends its COMMANDs, a task that
# takes datagrams from followers, meter polling, pairing of listed units, and (in the
# simulator) a status datagram for the live view. The core decides; this file moves values.
import gc
import json
import os
import time

import asyncio
from array import array
from binascii import hexlify, unhexlify
from micropython import const

from ampshare.wire import frame as P
from ampshare.run import store
from ampshare.core.leader import ONLINE, Leader
from ampshare.core.link import CAN_SWITCH
from ampshare.meter.tasks import METER_MS
from ampshare.wire.leader import LeaderPort
from ampshare.run.shell import Shell
from ampshare.run.udp import Link, address

CONTROL_MS = const(100)  # the core's own timers (resends every 200 ms) need 10 Hz
BOARD_WATCHDOG_MS = const(5000)  # a stalled leader resets; followers ride it out on their fallback
_HISTORY_FILE = const("history")  # the 48-hour history's files (run/history.py), in state_dir
STATE_FILE = "leader.json"  # boot counter, the followers' keys and the sharing switch, in state_dir
_NONCE_LEN = const(8)
# PAIRs waiting for their save: bounds the heap against a flood of listed uids (a unit not
# taken this second is taken on its next HELLO, two seconds later).
_PAIR_QUEUE_MAX = const(16)
_NO_RELAY = const("the site switches its phases (phase_switching) and this unit has no phase relay: "
                  "turn phase_switching off for the charger, or fit a unit that can switch")


def _needs(settings, site):
    from ampshare.config.settings import unwired
    bad = unwired(settings, site)
    if bad is not None:
        from ampshare.config.units import ConfigError
        raise ConfigError("settings." + bad[2], "the site has a %s meter; say where it is wired" % bad[1])


class LeaderApp(Shell):
    period_ms = CONTROL_MS
    watchdog_ms = BOARD_WATCHDOG_MS

    def __init__(self, settings, site, board, now_ms):
        _needs(settings, site)
        super().__init__(settings, board, now_ms)
        self.site = site
        self.path = settings["state_dir"] + "/" + STATE_FILE
        nc = len(site.charger_ids)
        # The units the installer listed, by charger: uids side by side (no object each), and
        # label codes. The settings' dict of tuples is let go.
        self.listed_uid = bytearray(nc * P.UID_LEN)
        self.listed_code = [None] * nc
        for cid, (uid, code) in settings["pair"].items():
            if cid in site.charger_ids:
                c = site.charger_ids.index(cid)
                self.listed_uid[c * P.UID_LEN:(c + 1) * P.UID_LEN] = uid
                self.listed_code[c] = code
        settings["pair"] = None
        saved = store.read_json(self.path, {})
        epoch = saved.get("l_epoch", 0) + 1
        sharing = saved.get("sharing", settings["sharing"]) is True
        keys = [(site.charger_ids.index(cid), unhexlify(rec["uid"]), unhexlify(rec["key"]))
                for cid, rec in saved.get("keys", {}).items() if cid in site.charger_ids]
        # A charger no longer configured is forgotten. The file's dicts go before the core's
        # buffers are made: on a full heap they are the start-up's largest garbage.
        saved = None
        gc.collect()
        self.core = core = Leader(site, now_ms)
        core.share(now_ms, sharing)
        self.port = port = LeaderPort(core, epoch)
        self.saved_epoch = None
        for c, uid, key in keys:
            port.add_follower(c, uid, key)
        keys = None
        self._save()  # the new epoch, before the first COMMAND (kept in RAM if flash fails)
        # The history's buffers are made now, while the heap is still in one piece.
        from ampshare.run import history
        n = history.count(site)
        self.history = history.History(settings["state_dir"] + "/" + _HISTORY_FILE, n, history.tag(site),
                                       bucket_ms=settings["history_bucket_ms"] or history.BUCKET_MS)
        self._figures = array("i", bytes(4 * n))
        self.addr = [None] * core.nc
        self._sender = self._send_to  # bound once: step() runs ten times a second
        self._to_pair = []  # (PAIR datagram, address, charger) waiting for the keys to be saved
        self._queued = bytearray(core.nc)
        self.unpairing = bytearray(core.nc)  # 1: offered nothing until it confirms, then forgotten
        self._no_relay = bytearray(core.nc)  # 1: its listed unit was refused for want of a phase relay (said once)
        from ampshare.run.events import Events, Watch
        self.events = Events()
        self.watch = Watch(core)
        self.events.add(now_ms, "site", "leader started: %d chargers, sharing %s" % (core.nc, "on" if sharing else "off"))
        self.link = Link(settings["bind"], settings["port_leader"], broadcast=True)
        mon = settings["monitor"]
        self.monitor = address(mon[0], mon[1]) if mon else None
        board.on_meter = self._meter
        self._own_meters(settings, site, board)
        self.web = None
        if settings["http"] is not None:
            from ampshare.web.server import Web
            self.web = Web(self, settings)
        self.dns = None
        d = settings["dns"]
        if d is not None:
            from ampshare.web.dns import Portal
            self.dns = Portal(d["ip"], d.get("bind", "0.0.0.0"), d.get("port", 53))
        # MQTT (docs/mqtt.md): loaded only when configured; an MQTT meter needs it.
        self.mqtt = None
        if settings["mqtt"] is not None:
            from ampshare.mqtt.bridge import Bridge
            self.mqtt = Bridge(self, settings)

    def _own_meters(self, settings, site, board):
        # The Modbus meters on the board's RS485 line, and its CT clamps; without them (the
        # unix port's simulator) the board's on_meter brings every meter's readings.
        self.line = self.clamps = None
        rs, ct = settings["rs485"], settings["ct"]
        if rs is None or "modbus" not in site.meter_source:
            rs = None
        if ct is None or "ct" not in site.meter_source:
            ct = None
        if rs is None and ct is None:
            return
        from ampshare.meter import tasks
        if rs is not None:
            self.line = tasks.modbus_line(rs, site, board, self._meter_at)
        if ct is not None:
            self.clamps = tasks.Clamps(ct, site, board, self._meter_at)

    def _save(self):
        """leader.json: {"l_epoch": n, "sharing": bool, "keys": {charger id: {"uid": hex, "key": hex}}}, written
        a line at a time from the core's buffers rather than from a dict of 64 dicts. True when
        it took (shell.persist)."""
        core, ids = self.core, self.site.charger_ids
        port = self.port
        epoch = port.l_epoch

        def lines():
            yield '{"l_epoch": %d, "sharing": %s, "keys": {' % (epoch, "true" if core.alloc.sharing else "false")
            sep = ""
            for c in range(core.nc):
                if port.uid[c] is not None:
                    yield '%s%s: {"uid": "%s", "key": "%s"}' % (
                        sep, json.dumps(ids[c]), hexlify(port.uid[c]).decode(), hexlify(port.keys.raw(c)).decode())
                    sep = ",\n"
            yield "}}\n"

        if not self.persist(store.save_lines, self.path, lines()):
            return False
        self.saved_epoch = epoch
        return True

    # ---- inputs -------------------------------------------------------------------------

    def _meter(self, mid, l1, l2, l3):
        # The board's readings (the unix port's plant): a meter on the RS485 line is read there.
        if mid in self.site.meter_ids:
            m = self.site.meter_ids.index(mid)
            src = self.site.meter_source[m]
            if (self.line is None or src != "modbus") and src != "mqtt":  # an MQTT meter: its topic only
                self._meter_at(m, l1, l2, l3)

    def _meter_at(self, m, l1, l2, l3):
        self.core.meter(time.ticks_ms(), m, l1, l2, l3)

    def on_datagram(self, now_ms, data, addr):
        core = self.core
        if self.port.receive(now_ms, data):
            # Authentic: that follower is there. Its address is kept only when it moved: 64
            # new ones a second, each kept for a second wherever the heap had room, left the
            # heap in holes too small for a page's request (make bench-mem).
            c = self.port.last_from
            if self.addr[c] != addr:
                self.addr[c] = addr
            return
        if self.port.hello_flags is not None:  # a HELLO, read whole
            self._maybe_pair(P.uid_of(data), addr, self.port.hello_flags)

    def _maybe_pair(self, uid, addr, flags):
        # A unit the installer listed (by its uid and label code) is paired when it is heard.
        core = self.core
        c = self._listed(uid)
        if c < 0:
            return
        if self._queued[c]:
            return  # its PAIR waits for the save already
        if self._cannot_switch(c, flags):
            # Paired, it would be asked to switch for ever: refused by name instead, once.
            if not self._no_relay[c]:
                self._no_relay[c] = 1
                self.events.add(time.ticks_ms(), "config", "%s: unit %s has no phase relay: not paired" % (
                    self.site.charger_ids[c], hexlify(uid).decode()))  # the page's pairing says why
            return
        known = self.port.uid[c] == uid  # the same unit again: it keeps its key
        if known and core.status[c] == ONLINE:
            return  # its authentic reports say it holds its key: this HELLO is not its own
        if not known and len(self._to_pair) >= _PAIR_QUEUE_MAX:
            return
        key = self.port.keys.raw(c) if known else os.urandom(P.KEY_LEN)
        data = self.port.pair(c, uid, self.listed_code[c], os.urandom(_NONCE_LEN), key)
        self.addr[c] = addr
        if known:
            self.link.send(data, addr)
        else:
            # A new key is saved before it is handed out, and 64 units heard at once are
            # saved once: the PAIR waits for the next save (meters(), within a second).
            self._to_pair.append((data, addr, c))
            self._queued[c] = 1

    def list_unit(self, cid, uid, code):
        """The page's "pair as charger": the unit is paired when next heard (its HELLO comes
        every two seconds). Returns a refusal, (field, reason), or None."""
        c = self.site.charger_ids.index(cid)
        held = self.port.uid[c]
        if held is not None and held != uid:
            # Its unit keeps its key and may hold a current: a second one would leave it
            # counted nowhere. Unpair it first.
            return "charger", "has another unit paired (unpair it first)"
        other = self._listed(uid)
        if other >= 0 and other != c:
            return "uid", "listed for %s already" % self.site.charger_ids[other]
        for d in range(self.core.nc):
            if d != c and self.port.uid[d] == uid:
                return "uid", "paired as %s already" % self.site.charger_ids[d]
        if self._cannot_switch(c, self.port.flags_of(uid)):  # not in the list now: told when heard
            return "chargers[%d].phase_switching" % c, _NO_RELAY
        self._no_relay[c] = 0
        self.listed_uid[c * P.UID_LEN:(c + 1) * P.UID_LEN] = uid
        self.listed_code[c] = code
        self.events.add(time.ticks_ms(), "pair", "%s: unit %s listed, paired when heard" % (cid, hexlify(uid).decode()))
        return None

    def _cannot_switch(self, c, flags):
        # The site switches the charger's phases, and the unit says (HELLO flags) it has no relay.
        return self.site.cswitch[c] and flags is not None and not flags & CAN_SWITCH

    def unpair(self, cid):
        """The page's "unpair": the charger is offered nothing, its fallback too; once its
        follower confirms that (and its car had the EV's 5 s), its key is dropped (meters()).
        A unit not heard now may hold its fallback: it is not forgotten (None, or a
        refusal (field, reason, status))."""
        c = self.site.charger_ids.index(cid)
        now = time.ticks_ms()
        if self.port.uid[c] is None:
            if self.listed_code[c] is None:
                return "charger", "has no unit", 400
            self.listed_code[c] = None  # listed, never heard: nothing to stop
            self.events.add(now, "pair", "%s: listing withdrawn" % cid)
            return None
        if self.core.status[c] != ONLINE:
            return "charger", "its unit is not heard: it may hold its fallback. Unpair it once it is heard, " \
                "or take the charger out of the site", 409
        self.unpairing[c] = 1
        self.listed_code[c] = None
        self.core.stop(now, c)
        self.events.add(now, "pair", "%s: unpairing, offered nothing until its unit confirms" % cid)
        return None

    def share(self, on):
        """The sharing switch, kept in leader.json. False when it could not be saved (it is
        in force until a restart all the same)."""
        now = time.ticks_ms()
        self.core.share(now, on)
        self.events.add(now, "sharing", "sharing %s" % ("on" if on else "off"))
        return self._save()

    def restart_after(self, ms):
        """Stop the control loop in ms (a saved site is applied by a restart, main.py)."""
        async def later():
            await asyncio.sleep_ms(ms)
            self.failed = Restart("a new site was saved")
        asyncio.create_task(later())

    def _listed(self, uid):
        ids = memoryview(self.listed_uid)
        for c in range(self.core.nc):
            if self.listed_code[c] is not None and ids[c * P.UID_LEN:(c + 1) * P.UID_LEN] == uid:
                return c
        return -1

    # ---- the loops ------------------------------------------------------------------------

    def step(self, now_ms):
        self.port.tick(now_ms, self._sender)

    def _send_to(self, c, data):
        if self.addr[c] is not None:
            self.link.send(data, self.addr[c])

    def _unpaired(self):
        # Units whose charger is stopped and confirmed: their keys go (saved at once).
        done = False
        for c in range(self.core.nc):
            if self.unpairing[c] and self.core.stopped(c):
                self.unpairing[c] = 0
                uid = self.port.uid[c]
                self.port.remove_follower(c)
                self.addr[c] = None
                done = True
                self.events.add(time.ticks_ms(), "pair", "%s: unit %s unpaired" % (
                    self.site.charger_ids[c], hexlify(uid).decode()))
        if done:
            self._save()

    async def meters(self):
        while True:
            now = time.ticks_ms()
            self.watch.look(now, self, self.events)
            self._unpaired()
            from ampshare.run import history
            history.figures(self, self._figures)
            self.history.sample(now, self._figures)
            if self.port.l_epoch != self.saved_epoch:
                # The sequence ran out and the core began a new epoch: a restart must start
                # above it, or its followers would take every COMMAND for a replay. Saved
                # here, once a second, never in the control loop.
                self._save()
            if self._to_pair and self._save():
                # A key is handed out only once it is saved; a failed save tries again.
                for data, addr, c in self._to_pair:
                    self.link.send(data, addr)
                    self.events.add(now, "pair", "%s: unit %s paired" % (
                        self.site.charger_ids[c], hexlify(self.port.uid[c]).decode()))
                self._to_pair = []
                self._queued[:] = bytes(self.core.nc)
            self.board.ask_meters()
            if self.monitor is not None:
                from ampshare.run import live
                self.link.send(live.status(self), self.monitor)
            await asyncio.sleep_ms(METER_MS)

    async def receive(self):
        while True:
            data, addr = await self.link.recv()
            self.on_datagram(time.ticks_ms(), data, addr)

    def tasks(self):
        out = [self.receive(), self.meters()]
        if self.line is not None:
            out.append(self.line.run())
        if self.clamps is not None:
            out.append(self.clamps.run())
        if self.web is not None:
            out.append(self.web.run())
        if self.dns is not None:
            out.append(self.dns.run())
        if self.mqtt is not None:
            out.extend(self.mqtt.tasks())
        return out


class Restart(Exception):
    """Not a fault: the shell stops so that the board starts again on what was saved."""
