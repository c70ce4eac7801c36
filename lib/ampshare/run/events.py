# The leader's event log for the page: pairing, refused configurations, followers and meters
# lost and back, fallbacks, external limits, sharing. Kept in RAM only, in a fixed ring: the
# log is what an installer reads while standing at the board, not a record (the history is on
# flash); a restart starts it again with the restart itself.
import json

from micropython import const

from ampshare.core.clock import ticks_diff

# A phone screen of lines; each keeps a short string, so the ring costs about 2 KB at most.
_EVENTS_MAX = const(24)
_TEXT_MAX = const(80)  # a reason longer than a line is cut: a refusal names its field first
KINDS = ("pair", "config", "link", "meter", "fallback", "limit", "sharing", "site", "mode", "mqtt")


class Events:
    def __init__(self):
        self.at = [0] * _EVENTS_MAX  # ticks
        self.kind = bytearray(_EVENTS_MAX)
        self.text = [None] * _EVENTS_MAX
        self.n = 0  # events ever logged: the newest is at (n - 1) % _EVENTS_MAX

    def add(self, now_ms, kind, text):
        i = self.n % _EVENTS_MAX
        self.at[i] = now_ms
        self.kind[i] = KINDS.index(kind)
        self.text[i] = text[:_TEXT_MAX]
        self.n += 1

    def chunks(self, now_ms):
        """{"events": [{"s_ago", "kind", "text"}, ...]}, newest first, a line at a time."""
        yield '{"events": ['
        kept = min(self.n, _EVENTS_MAX)
        for j in range(kept):
            i = (self.n - 1 - j) % _EVENTS_MAX
            yield '%s{"s_ago": %d, "kind": "%s", "text": %s}' % (
                ", " if j else "", ticks_diff(now_ms, self.at[i]) // 1000, KINDS[self.kind[i]],
                json.dumps(self.text[i]))
        yield "]}"


class Watch:
    """What the leader's core reports by its state alone (a follower silent, lost or back, a
    meter silent or back), turned into events by comparing it with the last look, once a
    second."""

    def __init__(self, core):
        self.status = bytearray(core.status)
        self.meter_ok = bytearray(b"\x02" * len(core.alloc.meter_ok))  # 2: never read yet

    def look(self, now_ms, app, log):
        from ampshare.core import leader as L
        core, site = app.core, app.site
        for c in range(core.nc):
            s = core.status[c]
            was = self.status[c]
            if s == was:
                continue
            self.status[c] = s
            cid = site.charger_ids[c]
            if s == L.SILENT:
                log.add(now_ms, "link", "%s silent: what it may draw is kept reserved" % cid)
            elif s == L.LOST:
                log.add(now_ms, "fallback", "%s lost: at its fallback" % cid)
            elif s == L.ONLINE:
                log.add(now_ms, "link", "%s %s" % (cid, "heard" if was == L.UNKNOWN else "back"))
        ok = core.alloc.meter_ok
        for m in range(len(ok)):
            was = self.meter_ok[m]
            if ok[m] != was:
                self.meter_ok[m] = ok[m]
                mid = site.meter_ids[m]
                log.add(now_ms, "meter", "meter %s %s" % (mid, ("read" if was == 2 else "back") if ok[m] else
                                                          "silent: its group counts its reserve"))
