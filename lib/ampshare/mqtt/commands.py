# Commands in over MQTT (docs/mqtt.md): a group's limit or a charger's maximum, a charger's mode,
# the sharing switch, and the MQTT meters' readings. Three command topics whatever the site's
# size (the group or charger is named in the payload, as POST /api/limit names it), so the
# subscriptions and their RAM do not grow with 64 chargers. Exact topics only, looked up in one
# dict; each message is a bounded piece of work (one JSON parse of at most the client's IN_MAX
# bytes, one core call, one reply). Every command is answered on <prefix>/reply: "requested",
# then "completed" or "failed" with a reason; the answers wait in a short queue and go out one
# after the other. Nothing a publisher sends raises out of here.
import json
import time

from micropython import const

from ampshare.core.external import COMPLETED, FAILED, REQUESTED, WATCHDOG_MS

_K_SHARING = const(0)
_K_LIMIT = const(1)
_K_MODE = const(2)
_K_METER = const(3)
_K_HA = const(4)
_PENDING_MAX = const(8)  # answers owed at once: core/external.py keeps 8
# Answers waiting for the reply topic: a burst of 8 commands' "requested" and final answers.
# Past it the oldest is dropped and counted (replies_dropped on P/site).
_REPLIES_MAX = const(16)
_AMPS_MAX = const(1000)  # config/site.py's largest fuse
_METER_MS = const(5000)  # core/leader.py's METER_SILENT_MS: re-fed until timeout_s less this
MODES = ("fast", "pv", "min_pv", "off")


class Commands:
    def __init__(self, bridge):
        self.b = bridge
        site = bridge.app.site
        self.topics = {}
        pre = bridge.pre
        subs = [(pre + "/sharing/set", _K_SHARING, 0), (pre + "/limit/set", _K_LIMIT, 0),
                (pre + "/mode/set", _K_MODE, 0)]
        if bridge.discovery_on:
            subs.append(("homeassistant/status", _K_HA, 0))
        for m, topic in enumerate(site.meter_topic):
            if topic is not None:
                subs.append((topic, _K_METER, m))
        self.unsubscribed = 0
        for topic, kind, i in subs:
            try:
                bridge.client.subscribe(topic, 1 if kind != _K_METER and kind != _K_HA else 0)
            except ValueError:
                self.unsubscribed += 1
                continue
            self.topics[topic.encode()] = kind << 8 | i
        subs = None
        self.pending = []  # [core request id or None, topic, correlation (JSON text), state]
        self.replies = []  # answers (str) not yet handed to the client
        self.replies_dropped = 0
        self.commands = 0
        self.refused = 0
        self.meter_refused = 0

    def message(self, topic, payload):
        code = self.topics.get(topic)
        if code is None:
            return
        kind, i = code >> 8, code & 0xFF
        if kind == _K_METER:
            self._meter(i, payload)
            return
        if kind == _K_HA:
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
            if kind == _K_SHARING:
                rid, reason = self._sharing(obj)
            elif kind == _K_MODE:
                rid, reason = self._mode(obj)
            else:
                rid, reason = self._limit(obj)
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
        q = self.replies
        if len(q) >= _REPLIES_MAX:
            q.pop(0)
            self.replies_dropped += 1
        q.append('{"topic": "%s", "id": %s, "state": "%s", "reason": %s}' % (topic, corr, state, json.dumps(reason)))
        self.send_reply()

    def send_reply(self):
        """The next answer to the client, once the last has gone into its output (the reply
        topic's one slot would otherwise replace an answer not yet sent)."""
        c, t = self.b.client, self.b.reply_t
        if self.replies and not c.waiting(t):
            c.publish(t, self.replies.pop(0), False, 1)

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

    def _mode(self, obj):
        # {"charger": id, "mode": "fast" | "pv" | "min_pv" | "off"}
        c, reason = _target(obj, self.b.app.site, ("mode",), False)
        if reason is not None:
            return None, reason
        obj = obj.get("mode")
        if obj not in MODES:
            return None, "mode: one of fast pv min_pv off"
        app = self.b.app
        m = MODES.index(obj)
        if m in (1, 2) and app.core.surplus is None:
            return None, "no charger of this site is in a PV mode: the surplus is not followed (set it in the site)"
        app.site.cmode[c] = m
        app.events.add(time.ticks_ms(), "mode", "%s: mode %s (MQTT)" % (app.site.charger_ids[c], obj))
        return None, None

    def _limit(self, obj):
        # {"group" | "charger": id, "a": 16 | [16, 16, 16]} or "w": 3000, "watchdog_s" (30), or
        # "clear": true.
        app = self.b.app
        site = app.site
        i, reason = _target(obj, site, ("a", "w", "watchdog_s", "clear"), True)
        if reason is not None:
            return None, reason
        a, w, wd = obj.get("a"), obj.get("w"), obj.get("watchdog_s", WATCHDOG_MS // 1000)
        if isinstance(wd, bool) or not isinstance(wd, int) or not 0 <= wd <= 86400:
            return None, "watchdog_s: whole seconds 0..86400, 0 for none"
        name = "group" if "group" in obj else "charger"
        ident = (site.group_ids if name == "group" else site.charger_ids)[i]
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


def _target(obj, site, fields, group_too):
    # The group or charger a command names, by index, and the fields it may carry besides.
    if not isinstance(obj, dict):
        return None, 'must be a JSON object naming its "charger"' + (' or "group"' if group_too else "")
    for k in obj:
        if k not in fields and k != "charger" and not (group_too and k == "group"):
            return None, "unknown field '%s'" % k
    if group_too and "group" in obj:
        if "charger" in obj:
            return None, "name a group or a charger, not both"
        ids, what = site.group_ids, "group"
    else:
        ids, what = site.charger_ids, "charger"
    ident = obj.get(what)
    if ident not in ids:  # a non-string never matches
        return None, "%s: no %s %s on this site" % (what, what, json.dumps(ident))
    return ids.index(ident), None


def _ma(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= _AMPS_MAX:
        return None
    return int(x * 1000)
