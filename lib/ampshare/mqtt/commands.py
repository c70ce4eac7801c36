# Commands in over MQTT (docs/mqtt.md): a group's limit, a charger's maximum and mode, the
# sharing switch, and the MQTT meters' readings. Exact topics only, looked up in one dict; each
# message is a bounded piece of work (one JSON parse of at most the client's IN_MAX bytes, one
# core call, one reply). Every command is answered on <prefix>/reply: "requested", then
# "completed" or "failed" with a reason. Nothing a publisher sends raises out of here.
import json
import time

from micropython import const

from ampshare.core.external import COMPLETED, FAILED, REQUESTED, WATCHDOG_MS

K_SHARING = const(0)
K_LIMIT = const(1)
K_MAX = const(2)
K_MODE = const(3)
K_METER = const(4)
K_HA = const(5)
_PENDING_MAX = const(8)  # answers owed at once: core/external.py keeps 8
_AMPS_MAX = const(1000)  # config/site.py's largest fuse
_METER_MS = const(5000)  # core/leader.py's METER_SILENT_MS: re-fed until timeout_s less this
MODES = ("fast", "pv", "min_pv", "off")


class Commands:
    def __init__(self, bridge):
        self.b = bridge
        site = bridge.app.site
        self.topics = {}
        pre = bridge.pre
        # Subscriptions by importance: the client takes SUBS_MAX (72); a site with more
        # chargers than fit gets the first ones' mode topics only (docs/mqtt.md).
        subs = [(pre + "/sharing/set", K_SHARING, 0)]
        if bridge.discovery_on:
            subs.append(("homeassistant/status", K_HA, 0))
        for m, topic in enumerate(site.meter_topic):
            if topic is not None:
                subs.append((topic, K_METER, m))
        subs += [(pre + "/group/%s/limit/set" % g, K_LIMIT, i) for i, g in enumerate(site.group_ids)]
        subs += [(pre + "/charger/%s/max/set" % c, K_MAX, i) for i, c in enumerate(site.charger_ids)]
        subs += [(pre + "/charger/%s/mode/set" % c, K_MODE, i) for i, c in enumerate(site.charger_ids)]
        self.unsubscribed = 0
        for topic, kind, i in subs:
            try:
                bridge.client.subscribe(topic, 1 if kind != K_METER and kind != K_HA else 0)
            except ValueError:
                self.unsubscribed += 1
                continue
            self.topics[topic.encode()] = kind << 8 | i
        subs = None
        self.pending = []  # [core request id or None, topic, correlation (JSON text), state]
        self.commands = 0
        self.refused = 0
        self.meter_refused = 0

    def message(self, topic, payload):
        code = self.topics.get(topic)
        if code is None:
            return
        kind, i = code >> 8, code & 0xFF
        if kind == K_METER:
            self._meter(i, payload)
            return
        if kind == K_HA:
            if payload == b"online" and self.b.disc is not None:
                self.b.disc.again()
            return
        self.commands += 1
        corr = "null"
        try:
            obj = _parse(payload)
            if isinstance(obj, dict) and "id" in obj:
                cid = obj.pop("id")
                if isinstance(cid, (int, str)) and not isinstance(cid, bool):
                    corr = json.dumps(cid)
            if kind == K_SHARING:
                rid, reason = self._sharing(obj)
            elif kind == K_MODE:
                rid, reason = self._mode(i, obj)
            else:
                rid, reason = self._limit(kind, i, obj)
        except Exception as e:  # anything a payload could provoke: refused, never raised
            rid, reason = None, "malformed: %s" % type(e).__name__
        t = topic.decode()
        if reason is not None:
            self.refused += 1
            self._reply(t, corr, FAILED, reason)
            return
        self._reply(t, corr, REQUESTED, None)
        if len(self.pending) >= _PENDING_MAX:
            self.pending.pop(0)
        self.pending.append([rid, t, corr])

    def _reply(self, topic, corr, state, reason):
        self.b.client.publish(self.b.reply_t, '{"topic": "%s", "id": %s, "state": "%s", "reason": %s}' % (
            topic, corr, state, json.dumps(reason)), False, 1)

    def answers(self):
        """Once a second: requests the core has completed (or failed) are answered."""
        ext = self.b.app.core.external
        keep = []
        for p in self.pending:
            if p[0] is None:
                # A mode or the sharing switch: in force since the message, allocated since.
                self._reply(p[1], p[2], COMPLETED, None)
                continue
            got = ext.answer(p[0])
            if got is None:
                self._reply(p[1], p[2], FAILED, "forgotten (more than 8 requests at once)")
            elif got[0] != REQUESTED:
                self._reply(p[1], p[2], got[0], got[1])
            else:
                keep.append(p)
        self.pending = keep

    # ---- the commands -------------------------------------------------------------------------

    def _sharing(self, obj):
        if obj in ("on", True):
            on = True
        elif obj in ("off", False):
            on = False
        else:
            return None, "must be on or off (or true or false)"
        if not self.b.app.share(on):
            return None, "in force, but could not be saved to flash: a restart forgets it"
        return None, None

    def _mode(self, c, obj):
        if obj not in MODES:
            return None, "must be one of fast pv min_pv off"
        app = self.b.app
        m = MODES.index(obj)
        if m in (1, 2) and app.core.surplus is None:
            return None, "no charger of this site is in a PV mode: the surplus is not followed (set it in the site)"
        app.site.cmode[c] = m
        app.events.add(time.ticks_ms(), "mode", "%s: mode %s (MQTT)" % (app.site.charger_ids[c], obj))
        return None, None

    def _limit(self, kind, i, obj):
        # {"a": 16 | [16, 16, 16]} or {"w": 3000}, "watchdog_s" (30), or {"clear": true}.
        if not isinstance(obj, dict):
            return None, 'must be {"a": amps} or {"w": watts}, with "watchdog_s"'
        for k in obj:
            if k not in ("a", "w", "watchdog_s", "clear"):
                return None, "unknown field '%s'" % k
        a, w, wd = obj.get("a"), obj.get("w"), obj.get("watchdog_s", WATCHDOG_MS // 1000)
        if isinstance(wd, bool) or not isinstance(wd, int) or not 0 <= wd <= 86400:
            return None, "watchdog_s: whole seconds 0..86400, 0 for none"
        app = self.b.app
        site = app.site
        name = "group" if kind == K_LIMIT else "charger"
        ident = (site.group_ids if kind == K_LIMIT else site.charger_ids)[i]
        now = time.ticks_ms()
        if obj.get("clear") is True and a is None and w is None:
            return app.core.limit(now, name, ident), None
        if (a is None) == (w is None):
            return None, "give a or w (or clear)"
        if a is not None:
            if isinstance(a, list):
                if len(a) != 3:
                    return None, "a: one number or three"
                a = [_ma(x) for x in a]
                if None in a:
                    return None, "a: amps 0..1000"
            else:
                a = _ma(a)
                if a is None:
                    return None, "a: amps 0..1000"
        elif isinstance(w, bool) or not isinstance(w, int):
            return None, "w: whole watts"
        rid = app.core.limit(now, name, ident, a, w, wd * 1000)
        got = app.core.external.answer(rid)
        if got is not None and got[0] == FAILED:
            return None, got[1]
        app.events.add(now, "limit", "%s %s: limit from MQTT" % (name, ident))
        return rid, None

    # ---- the MQTT meters ----------------------------------------------------------------------

    def _meter(self, m, payload):
        # [L1, L2, L3] or {"a": [...]}: amps, import positive; {"w": W or [W1, W2, W3]}: watts at
        # the site's voltage (a total split evenly over the three phases).
        b = self.b
        try:
            obj = json.loads(payload)
            volts = b.app.site.voltage
            if isinstance(obj, dict) and len(obj) == 1 and ("a" in obj or "w" in obj):
                v = obj.get("a", obj.get("w"))
                if "w" in obj and not isinstance(v, list):
                    v = [v / 3, v / 3, v / 3]
                if "w" in obj:
                    v = [x / volts for x in v]
            else:
                v = obj
            if not isinstance(v, list) or len(v) != 3:
                raise ValueError
            got = [0, 0, 0]
            for p in range(3):
                x = v[p]
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not -_AMPS_MAX <= x <= _AMPS_MAX:
                    raise ValueError
                got[p] = int(x * 1000)
        except Exception:
            self.meter_refused += 1
            return
        for p in range(3):
            b.m_val[m * 3 + p] = got[p]
        b.m_at[m] = time.ticks_ms()
        b.app._meter_at(m, got[0], got[1], got[2])

    def meters(self, now):
        """Once a second: an MQTT meter's last value is fed again while younger than its
        timeout_s less the core's 5 s, so the core calls it silent at timeout_s (within 1 s)."""
        b = self.b
        site = b.app.site
        for m in range(len(b.m_at)):
            at = b.m_at[m]
            if at is None:
                continue
            if time.ticks_diff(now, at) <= site.meter_timeout[m] - _METER_MS:
                v = b.m_val
                b.app._meter_at(m, v[m * 3], v[m * 3 + 1], v[m * 3 + 2])
            else:
                b.m_at[m] = None  # silent now (the core says so 5 s after the last feed)


def _parse(payload):
    # JSON, or a bare word (on, off, fast, ...): what a switch or a select sends.
    try:
        return json.loads(payload)
    except ValueError:
        w = payload.decode().strip()
        if not w or len(w) > 16 or not all(ch.isalpha() or ch == "_" for ch in w):
            raise
        return w


def _ma(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= _AMPS_MAX:
        return None
    return int(x * 1000)
