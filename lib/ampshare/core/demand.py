# Demand detection: what each car wants, from what it draws. A car is first offered its
# maximum; after a start period it is limited to what it draws on its highest phase plus a
# margin, and what it leaves goes to the others. It gets its maximum back at once when it
# draws close to its offer (it may want more), and every probe period in any case. A car
# that stops drawing (full, or waiting for a timer) keeps the minimum until the next probe.
# Sans-I/O: reports with now_ms in; the allocator's `want` array out.
from array import array

from micropython import const

from ampshare.core.allocator import NO_LIMIT
from ampshare.core.pilot import CHARGING, IN_USE_MA
from ampshare.core.clock import ticks_add, ticks_diff

START_MS = const(60_000)  # a car settles into its charge curve within its first minute
# Above a car's own current steps (1 A for most, 2 A for some) and a meter's noise: a car
# limited to its draw plus this is never the one that holds itself back.
_MARGIN_MA = const(3_000)
# Drawing within this of its offer, a car may be held back by it: it is offered its maximum.
_NEAR_MA = const(1_000)
# Every 10 min a limited car is offered its maximum again for a start period: one that wants
# more (a battery warmed up, a timer that ended) gets it within 11 min at the latest.
_PROBE_MS = const(600_000)


class Demand:
    def __init__(self, alloc):
        self.alloc = alloc
        self.site = alloc.site
        nc = len(alloc.site.charger_ids)
        self.active = bytearray(nc)
        self.since = [0] * nc  # ticks the current observation began (a start or a probe)
        self.started = [0] * nc  # ticks the car began charging

    def report(self, now_ms, c, letter, drawn, offered, meas):
        """A follower's pilot state, its highest phase's draw, the offer in force and its
        measured currents (mA). Returns the site phases its car draws on (a bit each), or 0
        for all those it is wired to."""
        want = self.alloc.want
        if letter not in CHARGING:
            self.active[c] = 0
            want[c] = NO_LIMIT
            return 0
        if not self.active[c] or drawn <= IN_USE_MA:
            self.started[c] = now_ms  # settles only after a start period of drawing
        # Its phases: settled a start period after it began charging.
        settled = self.active[c] and ticks_diff(now_ms, self.started[c]) >= START_MS
        if settled:
            self.started[c] = ticks_add(now_ms, -START_MS)  # aged: no difference grows old
        if not self.active[c] or ticks_diff(now_ms, self.since[c]) >= _PROBE_MS or \
                (offered > 0 and drawn >= offered - _NEAR_MA):
            self.active[c] = 1
            self.since[c] = now_ms
            want[c] = NO_LIMIT
        elif ticks_diff(now_ms, self.since[c]) >= START_MS:
            want[c] = drawn + _MARGIN_MA  # the allocator keeps the minimum under it
        return self._alive(c, meas, settled)

    def _alive(self, c, meas, settled):
        # The site phases drawing now. Before the car has settled, all its wired phases
        # count (some cars bring their phases up one by one); after, only those drawing, and a
        # phase that comes alive again counts at once (the next report).
        if not settled:
            return 0
        mask = 0
        for k in range(3):
            if meas[k] > IN_USE_MA:
                w = self.site.cwire[c * 3 + k]
                if w < 0:
                    return 0  # wiring unknown: every phase it may be on
                mask |= 1 << w
        return mask
