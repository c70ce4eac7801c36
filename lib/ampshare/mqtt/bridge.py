# The leader's MQTT bridge (docs/mqtt.md), loaded only when settings.mqtt is set: the live
# figures out (one JSON document per group, per charger and for the site, each at most once a
# second when changed and at least once a minute), commands in (commands.py), an MQTT meter in,
# and Home Assistant discovery (discovery.py). It only moves values: the core decides.
# Nothing here runs in the control loop; a broker that stalls only makes values wait in the
# client's slots (client.py). The group and charger documents are lazy slots: the bridge keeps
# the integers it compares for a change anyway, and the document and its topic are made from
# them when the client sends it, so 64 chargers hold no JSON and no topic in RAM.
import time

import asyncio
from array import array
from micropython import const

from ampshare.mqtt.client import Client
from ampshare.run import store

PERIOD_MS = const(1000)  # figures at most once a second per topic
REFRESH_MS = const(60_000)  # and every one at least once a minute
_SAVE_MS = const(60_000)  # the energy file: written at most once a minute
ENERGY_FILE = "mqtt.json"  # per charger [lifetime Wh published, follower counter then], in state_dir
_G = const(19)  # ints compared per group: meter ok, meter x3, available, requested, allocated, usage, ext (x3)
_C = const(14)  # per charger
_REPLY_MS = const(50)  # a queued answer waits this long at most for the reply slot to free
MODES = ("fast", "pv", "min_pv", "off")  # core/site.py's order
LINK = ("unknown", "online", "silent", "lost")


class Bridge:
    def __init__(self, app, settings):
        m = settings["mqtt"]
        self.app = app
        site = app.site
        self.pre = pre = m["prefix"]
        self.uid = settings["uid"] or "leader"
        self.discovery_on = m["discovery"]
        self.status_t = pre + "/status"
        self.site_t = pre + "/site"
        self.reply_t = pre + "/reply"
        self.client = c = Client(m["host"], m["port"], "ampshare-" + self.uid, m["user"], m["password"],
                                 will=(self.status_t, b"offline", True, 1), tls=True if m["tls"] else None,
                                 on_message=self._on_message, source=self)
        ng, nc, nm = len(site.group_ids), len(site.charger_ids), len(site.meter_ids)
        self.ng = ng
        # The lazy slots: groups' documents from slot _slot0, the chargers' after them.
        self._slot0 = c.lazy(0)
        for k in range(1, ng + nc):
            c.lazy(k)
        a = app.core.alloc
        # Scratch for the group figures (no list per second), and what was last published.
        self._alloc = array("i", bytes(4 * a.nk))
        self._use = array("i", bytes(4 * a.nk))
        self._req = array("i", bytes(4 * a.nk))
        self._row = array("i", bytes(4 * max(_G, _C)))
        self._g_last = array("i", bytes(4 * _G * ng))
        self._c_last = array("i", bytes(4 * _C * nc))
        self._site_last = None
        self._refresh_at = time.ticks_ms()
        self._force = True
        # Lifetime energy, monotonic across restarts (docs/mqtt.md): the total published is the
        # total last saved; raw is the follower's counter the total was brought up to.
        self.e_total = array("i", [-1] * nc)
        self.e_raw = array("i", [-1] * nc)
        self.e_pub = array("i", [-1] * nc)
        self._e_seen = bytearray(nc)  # heard in this leader's run
        self._e_dirty = False
        self._e_path = settings["state_dir"] + "/" + ENERGY_FILE
        self._save_ms = settings["energy_save_ms"] or _SAVE_MS
        self._saved_at = time.ticks_add(time.ticks_ms(), -self._save_ms)
        try:
            saved = store.read_json(self._e_path, {})
        except Exception:  # a damaged file: the totals start again from the followers' counters
            saved = {}
        for cid, rec in saved.items():
            if cid in site.charger_ids and isinstance(rec, list) and len(rec) == 2:
                c = site.charger_ids.index(cid)
                self.e_total[c] = self.e_pub[c] = rec[0]
                self.e_raw[c] = rec[1]
        saved = None
        # The MQTT meters: their last values (mA), when they came (ticks), for the re-feed.
        self.m_val = array("i", bytes(12 * nm))
        self.m_at = [None] * nm
        # Commands in, and answers owed (commands.py).
        from ampshare.mqtt import commands
        self.cmd = commands.Commands(self)
        self.disc = None
        if self.discovery_on:
            from ampshare.mqtt.discovery import Discovery
            self.disc = Discovery(self)
        self.errors = 0

    def tasks(self):
        out = [self.client.run(), self.loop(), self.replies()]
        if self.disc is not None:
            out.append(self.disc.run())
        return out

    def _on_message(self, topic, payload):
        self.cmd.message(topic, payload)

    async def loop(self):
        self.client.publish(self.status_t, b"online", True, 1)
        while True:
            try:
                self.tick(time.ticks_ms())
            except Exception as e:  # a bug here must not stop the board: counted, shown
                self.errors += 1
                if self.errors < 4:
                    import sys
                    sys.print_exception(e)
            await asyncio.sleep_ms(PERIOD_MS)

    async def replies(self):
        # The answers queue (commands.py) drains as fast as the client takes them, not once a
        # second: a burst of commands is answered in a burst.
        while True:
            try:
                self.cmd.send_reply()
            except Exception:  # as loop(): counted, never stops the board
                self.errors += 1
            await asyncio.sleep_ms(_REPLY_MS)

    def tick(self, now):
        if time.ticks_diff(now, self._refresh_at) >= 0:
            self._refresh_at = time.ticks_add(now, REFRESH_MS)
            self._force = True
            self.client.publish(self.status_t, b"online", True, 1)
        self.cmd.meters(now)
        self.cmd.answers()
        self._energy(now)
        self._groups()
        self._chargers()
        self._site()
        self._force = False

    # ---- out --------------------------------------------------------------------------------

    def _changed(self, last, off, n):
        row, same = self._row, True
        for k in range(n):
            if last[off + k] != row[k]:
                last[off + k] = row[k]
                same = False
        return self._force or not same

    def _groups(self):
        core, site = self.app.core, self.app.site
        a = core.alloc
        al, use, req = self._alloc, self._use, self._req
        for k in range(a.nk):
            al[k] = use[k] = req[k] = 0
        a.spread(core.permitted, al)
        for c in range(a.nc):
            if a.pilot[c] in b"BCD":  # a car is there (core/pilot.py's PLUGGED)
                a.add_to(c, a.requested(c), req)
        a.measured(use)
        row = self._row
        for g in range(len(site.group_ids)):
            m = site.gmeter[g]
            ok = m >= 0 and a.meter_ok[m]
            row[0] = 1 if ok else 0
            for p in range(3):
                k = g * 3 + p
                row[1 + p] = a.meter[m * 3 + p] if ok else 0
                row[4 + p] = a.cap[k]
                row[7 + p] = req[k]
                row[10 + p] = al[k]
                row[13 + p] = use[k]
                row[16 + p] = a.ext_limit[k]
            if not self._changed(self._g_last, g * _G, _G):
                continue
            self.client.touch(self._slot0 + g)

    def _chargers(self):
        core, site = self.app.core, self.app.site
        a, t = core.alloc, core.turns
        row = self._row
        for c in range(len(site.charger_ids)):
            row[0] = a.pilot[c]
            row[1] = core.sent[c]
            row[2] = core.sent_fb[c]
            for k in range(3):
                row[3 + k] = max(0, a.meas[c * 3 + k])
            row[6] = core.phases[c]
            row[7] = core.status[c]
            row[8] = site.cmode[c]
            row[9] = a.ext_max[c]
            row[10] = t.wh[c] - t.base[c] if t.plugged[c] and core.status[c] else 0
            row[11] = self.e_pub[c]
            row[12] = site.cmax[c]
            row[13] = 1 if a.sharing else 0
            if self._changed(self._c_last, c * _C, _C):
                self.client.touch(self._slot0 + self.ng + c)

    # ---- the documents, made when the client sends them (client.lazy) -------------------------

    def group_topic(self, g):
        return "%s/group/%s" % (self.pre, self.app.site.group_ids[g])

    def charger_topic(self, c):
        return "%s/charger/%s" % (self.pre, self.app.site.charger_ids[c])

    def topic(self, key):
        ng = self.ng
        return (self.group_topic(key) if key < ng else self.charger_topic(key - ng)).encode()

    def payload(self, key):
        # From the integers last compared (_changed): the document says what was compared.
        ng = self.ng
        if key < ng:
            return self._group_doc(key)
        c = key - ng
        r, o = self._c_last, c * _C
        return b'{"state": "%s", "offered_ma": %d, "fallback_ma": %d, "draw_ma": [%d, %d, %d], "power_w": %d, ' \
               b'"phases": %d, "link": "%s", "mode": "%s", "max_ma": %d, "ext_ma": %s, "session_wh": %d, ' \
               b'"energy_wh": %s}' % (  # type: ignore[str-format]  # MicroPython takes a str for b"%s"
                   chr(r[o]) if r[o] else "A", r[o + 1], r[o + 2], r[o + 3], r[o + 4], r[o + 5],
                   (r[o + 3] + r[o + 4] + r[o + 5]) * self.app.site.voltage // 1000, r[o + 6], LINK[r[o + 7]],
                   MODES[r[o + 8]], r[o + 12], b"%d" % r[o + 9] if r[o + 9] >= 0 else b"null",
                   r[o + 10], b"%d" % r[o + 11] if r[o + 11] >= 0 else b"null")

    def _group_doc(self, g):
        r, o = self._g_last, g * _G
        lim, k = self.app.site.limit, g * 3
        meter = b"[%d, %d, %d]" % (r[o + 1], r[o + 2], r[o + 3]) if r[o] else b"null"
        ext = b"[%d, %d, %d]" % (r[o + 16], r[o + 17], r[o + 18]) if r[o + 16] >= 0 else b"null"
        return b'{"meter_ma": %s, "available_ma": [%d, %d, %d], "requested_ma": [%d, %d, %d], ' \
               b'"allocated_ma": [%d, %d, %d], "usage_ma": [%d, %d, %d], "limit_ma": [%d, %d, %d], "ext_ma": %s}' % (
                   meter, r[o + 4], r[o + 5], r[o + 6], r[o + 7], r[o + 8], r[o + 9], r[o + 10], r[o + 11], r[o + 12],
                   r[o + 13], r[o + 14], r[o + 15], lim[k], lim[k + 1], lim[k + 2], ext)

    def _site(self):
        app = self.app
        a, site = app.core.alloc, app.site
        cmd = self.cmd
        key = (a.sharing, bytes(a.meter_ok), cmd.commands, cmd.refused, cmd.meter_refused, app.flash_errors,
               self.errors, cmd.replies_dropped, self.client.stale)
        if key == self._site_last and not self._force:
            return
        self._site_last = key
        meters = ", ".join('"%s": {"source": "%s", "ok": %s}' % (mid, site.meter_source[m],
                                                                 "true" if a.meter_ok[m] else "false")
                           for m, mid in enumerate(site.meter_ids))
        self.client.publish(self.site_t, '{"sharing": "%s", "meters": {%s}, "commands": %d, "refused": %d, '
                            '"meter_refused": %d, "replies_dropped": %d, "stale": %d, "flash_errors": %d, "errors": %d}' % (
                                "on" if a.sharing else "off", meters, cmd.commands, cmd.refused,
                                cmd.meter_refused, cmd.replies_dropped, self.client.stale, app.flash_errors,
                                self.errors), True)

    # ---- lifetime energy ----------------------------------------------------------------------

    def _energy(self, now):
        core = self.app.core
        t = core.turns
        for c in range(core.nc):
            if not core.status[c]:
                continue  # not heard since this leader started: its counter is not known
            r = t.wh[c]
            if self.e_total[c] < 0:
                self.e_total[c] = r  # a charger seen first: its follower's own counter
            elif not self._e_seen[c] or r != self.e_raw[c]:
                # Up by what the counter rose; a counter that fell (a follower's restart) counts
                # again from zero. The total never falls.
                self.e_total[c] += r - self.e_raw[c] if r >= self.e_raw[c] else r
            else:
                continue
            self._e_seen[c] = 1
            self.e_raw[c] = r
            self._e_dirty = True
        if self._e_dirty and time.ticks_diff(now, self._saved_at) >= self._save_ms:
            self._saved_at = now
            ids = self.app.site.charger_ids
            total, raw = self.e_total, self.e_raw

            def lines():
                yield "{"
                sep = ""
                for c in range(len(ids)):
                    if total[c] >= 0:
                        yield '%s"%s": [%d, %d]' % (sep, ids[c], total[c], raw[c])
                        sep = ", "
                yield "}\n"

            if self.app.persist(store.save_lines, self._e_path, lines()):
                self._e_dirty = False
                # Published only once saved: a restart never shows a lower figure.
                for c in range(len(ids)):
                    self.e_pub[c] = total[c]
