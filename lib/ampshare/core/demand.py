# Demand detection: what each car wants, from what it draws. A car is first offered its
# maximum; after a start period it is limited to what it draws on its highest phase plus a
# margin, and what it leaves goes to the others. It gets its maximum back at once when it
# draws close to its offer (it may want more), and every probe period in any case, each time
# for a probe hold (shorter than the start: a settled car answers an offer in seconds). A car
# that stops drawing while it still asks (state C: waiting for a timer, warming its battery)
# keeps the minimum until the next probe: some cars fall asleep when the PWM goes away and
# do not ask again when it comes back, so a car that asks is never left without it.
#
# Parking: a car that does not ask (state B) under an offer of at least its minimum for
# _PARK_MS is full, or waits for its own timer: it is offered nothing and its share goes to
# the others. It is unparked at once when it asks (C; most cars ask with or without a PWM),
# and every _REPROBE_MS it is offered its minimum again until it asks or _PARK_MS pass: a car
# whose timer waits for the PWM has current within _REPROBE_MS + _PARK_MS of wanting it.
# Sans-I/O: reports with now_ms in; the allocator's `want` and `parked` arrays out.
from array import array

from micropython import const

from ampshare.core.allocator import NO_LIMIT
from ampshare.core.pilot import CHARGING, IN_USE_MA
from ampshare.core.clock import ticks_add, ticks_diff

START_MS = const(60_000)  # a car settles into its charge curve within its first minute
# A car limited to its draw plus this that wants more rises to its offer, and is seen near it
# (below): above a 1 A step with _NEAR_MA, above a meter's noise (0.2 A) and a car's own
# wobble (0.5 A) without it. A car that steps by 2 A cannot reach it: it has its maximum
# again at the next probe. What a limited car leaves of this is idle on its fuses.
_MARGIN_MA = const(1_500)
# Drawing within this of its offer, a car may be held back by it: it is offered its maximum.
# Below a 1 A step of a car held back (it draws within 0.5 A of _MARGIN_MA), above its wobble.
_NEAR_MA = const(800)
# Every 10 min a limited car is offered its maximum again: one that wants more (a battery
# warmed up, a timer that ended) gets it within 10 min and a probe hold at the latest.
_PROBE_MS = const(600_000)
# A settled car is offered its maximum for this long when it is probed or draws near its
# offer. Its offer rises within about 6 s (the others lowered first, make-before-break) and
# IEC 61851-1 gives it 5 s to follow: 20 s leaves it twice that. A car that ramps slower and
# still wants more draws near its next, higher limit and is offered its maximum again from
# there. What a probed car does not take is idle for this long, not a start period's 60 s.
_PROBE_HOLD_MS = const(20_000)
# The observation each charger is in (active): none, its start, or settled (limited, probed).
_START = const(1)
_SETTLED = const(2)
# A car offered current asks for it within seconds (some take half a minute to wake): two
# minutes in B under an offer is a car that does not want it now.
_PARK_MS = const(120_000)
# A parked car is offered its minimum again this often, for _PARK_MS: a car on its own
# timer that waits for the PWM before it asks. Each probe holds only the minimum.
_REPROBE_MS = const(900_000)
_B = const(66)  # ord("B"): plugged in, not asking


class Demand:
    def __init__(self, alloc):
        self.alloc = alloc
        self.site = alloc.site
        nc = len(alloc.site.charger_ids)
        self.active = bytearray(nc)  # 0, _START or _SETTLED
        self.since = [0] * nc  # ticks the current observation began (a start or a probe)
        self.started = [0] * nc  # ticks the car began charging
        # Ticks it has been in B under an offer since (None: not so), or parked since.
        self.idle_since = [None] * nc

    def report(self, now_ms, c, letter, drawn, offered, meas):
        """A follower's pilot state, its highest phase's draw, the offer in force and its
        measured currents (mA). Returns the site phases its car draws on (a bit each), or 0
        for all those it is wired to."""
        want = self.alloc.want
        self.alloc.narrow[c] = 0  # until _alive finds its car settled
        if letter not in CHARGING:
            self.active[c] = 0
            self._idle(now_ms, c, letter, offered)
            return 0
        self.alloc.parked[c] = 0  # it asks: its share again
        self.idle_since[c] = None
        if drawn < 0:
            # Unmeasured (a unit without its own current sensing): what the car takes is not
            # known, so nothing is reclaimed from it and it counts on every wired phase.
            self.active[c] = 0
            want[c] = NO_LIMIT
            return 0
        if not self.active[c] or drawn <= IN_USE_MA:
            self.started[c] = now_ms  # settles only after a start period of drawing
        # Its phases: settled a start period after it began charging.
        settled = self.active[c] and ticks_diff(now_ms, self.started[c]) >= START_MS
        if settled:
            self.started[c] = ticks_add(now_ms, -START_MS)  # aged: no difference grows old
        held = ticks_diff(now_ms, self.since[c])
        if not self.active[c]:
            self.active[c] = _START
            self.since[c] = now_ms
            want[c] = NO_LIMIT
        elif held >= _PROBE_MS or (offered > 0 and drawn >= offered - _NEAR_MA):
            self.since[c] = now_ms  # probed (in its start: the start goes on from now)
            want[c] = NO_LIMIT
        elif held >= (START_MS if self.active[c] == _START else _PROBE_HOLD_MS):
            self.active[c] = _SETTLED
            want[c] = drawn + _MARGIN_MA  # the allocator keeps the minimum under it
        return self._alive(c, meas, settled)

    def _idle(self, now_ms, c, letter, offered):
        a = self.alloc
        since = self.idle_since[c]
        if letter != _B:
            a.parked[c] = 0  # unplugged or a pilot fault: its next car starts afresh
            a.want[c] = NO_LIMIT
            self.idle_since[c] = None
        elif a.parked[c]:
            if ticks_diff(now_ms, since) >= _REPROBE_MS:
                a.parked[c] = 0
                a.want[c] = 0  # probed at its minimum (the allocator keeps that under it)
                self.idle_since[c] = None
        elif offered < self.site.cmin[c]:
            self.idle_since[c] = None  # nothing offered to ask for: nothing to judge
        elif since is None:
            self.idle_since[c] = now_ms
        elif ticks_diff(now_ms, since) >= _PARK_MS:
            a.parked[c] = 1
            self.idle_since[c] = now_ms

    def reprobe_in(self, c, now_ms):
        """ms until parked charger c is offered its minimum again (the page)."""
        return _REPROBE_MS - ticks_diff(now_ms, self.idle_since[c])

    def _alive(self, c, meas, settled):
        # The site phases drawing now. Before the car has settled, all its wired phases
        # count (some cars bring their phases up one by one); after, only those drawing, and a
        # phase that comes alive again counts at once (the next report).
        # Where its wiring is unknown, the charger phases drawing go to the allocator instead
        # (narrow), and it counts on every phase it may be on.
        if not settled:
            return 0
        wire, mask = self.site.cwire, 0
        if wire[c * 3] < 0:
            for k in range(3):
                if meas[k] > IN_USE_MA:
                    mask |= 1 << k
            self.alloc.narrow[c] = mask
            return 0
        for k in range(3):
            if meas[k] > IN_USE_MA:
                mask |= 1 << wire[c * 3 + k]
        return mask
