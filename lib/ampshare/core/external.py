# Limits set from outside: an energy manager or the utility lowers a group's limit or one
# charger's maximum (in A, or in W). Each request is answered: `requested`, then `completed`
# once an allocation has applied it, or `failed` with a reason. A limit set with a watchdog
# lapses back to the configured default (no external limit) unless refreshed in time. A limit
# only ever lowers (allocator.py takes the smaller of it and the fuse). Sans-I/O: requests
# with now_ms in; the allocator's ext_limit and ext_max arrays, and the answers, out.
from micropython import const

from ampshare.core.allocator import NO_LIMIT
from ampshare.core.ints import SMALL_MAX
from ampshare.core.pilot import IN_USE_MA
from ampshare.core.clock import ticks_add, ticks_diff

WATCHDOG_MS = const(30_000)  # a controller that stops refreshing is forgotten after 30 s
REQUESTED = "requested"
COMPLETED = "completed"
FAILED = "failed"
_KEEP = const(8)  # answers kept for asking: a controller asks about its last few requests
_LIMIT_MAX_MA = const(1_000_000)  # config/site.py's largest fuse: anything above is a typo
_WATTS_MAX = const(1_000_000)  # far above any charger (80 A x 3 x 480 V is 115 kW)
# A day at most: longer is a typo, and a ticks difference must stay far below half the ESP32's
# ticks period (about 6 days).
_WATCHDOG_MAX_MS = const(86_400_000)


def watts_to_ma(w, voltage, phases):
    """A power limit as a current per phase: W / (V x phases in use), rounded down."""
    return w * 1000 // (voltage * phases)


class External:
    def __init__(self, alloc):
        self.alloc = alloc
        site = alloc.site
        self.site = site
        self.g_until = [None] * len(site.group_ids)  # ticks a watched limit lapses at
        self.c_until = [None] * len(site.charger_ids)
        self.c_watts = [None] * len(site.charger_ids)  # a limit given in W, converted each run
        self.answers = []  # [request id, state, reason], newest last
        self._next = 1
        self.changed = False  # a limit came or went: the leader allocates at once

    def request(self, now_ms, kind, ident, ma=None, w=None, watchdog_ms=WATCHDOG_MS):
        """Set (ma or w) or clear (neither) a limit on a "group" (ma: one value or one per
        phase) or a "charger"; returns the request's id. watchdog_ms 0: kept until cleared."""
        rid = self._next
        self._next = rid + 1 if rid < SMALL_MAX else 1
        reason = self._apply(now_ms, kind, ident, ma, w, watchdog_ms)
        self._answer(rid, FAILED if reason else REQUESTED, reason)
        if not reason:
            self.changed = True
        return rid

    def answer(self, rid):
        """(state, reason) of a recent request, or None once forgotten."""
        for a in self.answers:
            if a[0] == rid:
                return a[1], a[2]
        return None

    def _answer(self, rid, state, reason):
        if len(self.answers) >= _KEEP:
            self.answers.pop(0)
        self.answers.append([rid, state, reason])

    def _apply(self, now_ms, kind, ident, ma, w, watchdog_ms):
        if not 0 <= watchdog_ms <= _WATCHDOG_MAX_MS:
            return "watchdog out of range (0..%d ms)" % _WATCHDOG_MAX_MS
        until = ticks_add(now_ms, watchdog_ms) if watchdog_ms else None
        if ma is not None:
            per_phase = ma if isinstance(ma, (tuple, list)) else (ma, ma, ma)
            if len(per_phase) != 3 or not all(0 <= x <= _LIMIT_MAX_MA for x in per_phase):
                return "limit_a out of range"
        if w is not None and not 0 <= w <= _WATTS_MAX:
            return "limit_w out of range"
        if kind == "group":
            if ident not in self.site.group_ids:
                return "unknown group '%s'" % ident
            if w is not None:
                return "a group's limit is in A"
            g = self.site.group_ids.index(ident)
            for p in range(3):
                self.alloc.ext_limit[g * 3 + p] = NO_LIMIT if ma is None else per_phase[p]
            self.g_until[g] = until if ma is not None else None
            return None
        if kind == "charger":
            if ident not in self.site.charger_ids:
                return "unknown charger '%s'" % ident
            if isinstance(ma, (tuple, list)):
                return "a charger's limit is one number"
            c = self.site.charger_ids.index(ident)
            self.c_watts[c] = w
            self.alloc.ext_max[c] = NO_LIMIT if ma is None and w is None else (ma if ma is not None else 0)
            self.c_until[c] = until if ma is not None or w is not None else None
            if w is not None:
                self._to_ma(c)
            return None
        return "unknown kind '%s'" % kind

    def lapse(self, now_ms):
        """Lapses watched limits not refreshed in time; True when one did (allocate now)."""
        a = self.alloc
        for g in range(len(self.g_until)):  # every tick: no iterator objects
            until = self.g_until[g]
            if until is not None and ticks_diff(now_ms, until) >= 0:
                self.g_until[g] = None
                for p in range(3):
                    a.ext_limit[g * 3 + p] = NO_LIMIT
                self.changed = True
        for c in range(len(self.c_until)):
            until = self.c_until[c]
            if until is not None and ticks_diff(now_ms, until) >= 0:
                self.c_until[c] = None
                self.c_watts[c] = None
                a.ext_max[c] = NO_LIMIT
                self.changed = True
        return self.changed

    def before_run(self):
        """W limits become currents with the phases in use now."""
        for c in range(len(self.c_watts)):
            if self.c_watts[c] is not None:
                self._to_ma(c)

    def _to_ma(self, c):
        a, n = self.alloc, 0
        for k in range(3):
            if a.meas[c * 3 + k] > IN_USE_MA:
                n += 1
        a.ext_max[c] = watts_to_ma(self.c_watts[c], self.site.voltage, n or self.site.cphases[c])

    def after_run(self):
        """An allocation has run with every limit in force: requested ones are completed."""
        for a in self.answers:
            if a[1] == REQUESTED:
                a[1] = COMPLETED
        self.changed = False
