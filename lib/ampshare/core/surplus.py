# Solar surplus: what the chargers in pv and min_pv mode may take so that their metered group
# imports no more than its target. Sans-I/O: each period the leader calls update(now_ms)
# before the allocator runs; it reads the allocator's meter and charger inputs and writes its
# `pv_max` ceilings (NO_LIMIT for every other charger). The fuses stay the allocator's.
#
# The surplus of a metered group, summed over its phases, is its target less its import,
# plus what its PV chargers draw now (they are in the meter). It is smoothed, then shared
# between the group's started PV chargers by water-filling over the phases each one uses:
# with 20 A exported per phase, two 3-phase cars get 10 A each and the import stays at zero.
# A pv car starts once the surplus has covered every started car's minimum and its own for
# the start delay; when it no longer covers the started cars' minimums, they keep their
# minimum (from the grid) for the stop delay, then the last started one stops. A min_pv car
# always has its minimum and takes its share of the surplus above it.
from array import array

from micropython import const

from ampshare.core import link
from ampshare.core.allocator import NO_LIMIT
from ampshare.core.pilot import CHARGING, IN_USE_MA, PLUGGED
from ampshare.core.clock import ticks_diff
from ampshare.core.site import MODE_MIN_PV, MODE_PV

# Smoothing, as time constants of an exponential average (integer, per period). A rising
# surplus is followed over 20 s (OpenEVSE's attack): a short gap in the clouds does not raise
# the cars. A falling one within 5 s, about as fast as a car follows its pilot anyway: the
# import that a cloud causes is short.
RISE_MS = const(20_000)
_FALL_MS = const(5_000)
# Bounds every sum here below 2**30: 1000 A on each of three phases is more than a fuse we
# serve (config/site.py's limit), and the average's step times 128 stays a small int.
_CLAMP_MA = const(3_000_000)
_FRAC = const(128)
_SNAP_MA = const(300)  # the allocator's quantum (0.1 A) on each of three phases

# 3<->1 switching of a PV charger with the second contactor (phase_switching). To one phase
# after a minute in which the surplus cannot hold three at the minimum: sooner than the stop
# delay, so the car goes on with one phase rather than stopping. Back to three once the
# surplus holds three at the minimum plus 1 A on each for 5 min: each switch costs the car a
# minute's pause (follower.SWITCH_PAUSE_MS), worth it only for a lasting change.
_SWITCH_DOWN_MS = const(60_000)
_SWITCH_UP_MS = const(300_000)
_SWITCH_HYST_MA = const(3_000)
_SWITCH_GAP_MS = const(600_000)  # at most one switch in 10 min, whatever the clouds do
# Switches per session before the charger stays as it is until the car leaves (Zaptec's
# "switches allowed before locking"): a morning and an evening change, and a few for clouds.
_SWITCH_BUDGET = const(6)


class Surplus:
    def __init__(self, alloc):
        self.alloc = alloc
        self.site = site = alloc.site
        ng, nc = len(site.group_ids), len(site.charger_ids)
        self.pvg = array("h", [-1] * nc)  # a PV charger's metered group
        for c in range(nc):
            if site.cmode[c] == MODE_PV or site.cmode[c] == MODE_MIN_PV:
                self.pvg[c] = site.metered_above(c)
        self.metered = bytearray(ng)  # 1: a group whose meter measures PV chargers' surplus
        for c in range(nc):
            if self.pvg[c] >= 0:
                self.metered[self.pvg[c]] = 1
        self.avg = array("i", [0] * ng)  # the smoothed surplus, mA summed over phases
        self.fresh = bytearray(ng)  # 1 once avg holds a reading
        self._read = bytearray(ng)
        self.on = bytearray(nc)  # a started PV car
        self._x = array("i", [0] * ng)
        self._free = bytearray(nc)
        self.share = array("i", [0] * nc)  # each started car's part of the surplus, mA per phase
        self._start = [None] * ng  # ticks since the surplus covers the next car, or None
        self._stop = [None] * ng  # ticks since it no longer covers the started ones, or None
        self._last = None
        self._steady = False
        # Phase switching: what the leader wants (1: one phase) and what the follower reports
        # its relay does, switches this session, and their timers.
        self.want1 = bytearray(nc)
        self.one = bytearray(nc)  # the relay reports one phase, and is not moving
        self.moving = bytearray(nc)  # the follower reports a switch under way
        self.began = bytearray(nc)  # started in this session: its relay no longer moves for free
        self.switches = bytearray(nc)
        self._sw_since = [None] * nc
        self._sw_last = [None] * nc

    def update(self, now_ms, steady=False):
        """One period. steady: every delay and smoothing has run out (the snapshot)."""
        dt = 0 if self._last is None else ticks_diff(now_ms, self._last)
        self._last = now_ms
        self._steady = steady  # a snapshot: every relay is where it was asked to be
        self._measure(dt, steady)
        for g in range(len(self.avg)):
            if self.fresh[g]:
                self._decide(g, now_ms, steady)
        self._publish()

    # ---- a switching charger's relay --------------------------------------------------

    def relay(self, c, flags, first, meas):
        """A switching charger's STATE: where its relay is (flags), whether this is the first
        report this leader has from it, and its measured currents. True while it switches."""
        self.moving[c] = 1 if flags & link.SWITCHING else 0
        self.one[c] = 1 if flags & link.ONE_PHASE and not self.moving[c] else 0
        if first and not self.moving[c]:
            # Adopted (a restarted leader): the relay stays where it is; a car already
            # charging has had its start.
            self.want1[c] = self.one[c]
            if self.alloc.pilot[c] in CHARGING and max(meas[0], meas[1], meas[2]) > IN_USE_MA:
                self.began[c] = 1
        return self.moving[c]

    def mask(self, c, mask):
        """The site phases (allocator.use_phases) a switching charger counts on, given those
        its car was seen on: every wired one while its relay is to move or moving, its L1's
        alone once the relay is on one phase."""
        one = self._relay_one(c)
        if self.want1[c] != one or self.moving[c]:
            return 0
        if one:
            w = self.site.cwire[c * 3]
            return 1 << w if w >= 0 else 0
        return mask

    def _relay_one(self, c):
        # A snapshot: every relay is where it was asked to be.
        return self.one[c] or (self._steady and self.want1[c])

    # ---- the surplus ------------------------------------------------------------------

    def _measure(self, dt, steady):
        a, site, x = self.alloc, self.site, self._x
        for g in range(len(x)):
            x[g] = 0
        for c in range(len(self.pvg)):
            g = self.pvg[c]
            if g >= 0:
                x[g] += self._drawn(c)
        for g in range(len(x)):
            m = site.gmeter[g]
            if not self.metered[g]:
                continue
            if a.meter_ok[m]:
                imp = _clamp(a.meter[m * 3]) + _clamp(a.meter[m * 3 + 1]) + _clamp(a.meter[m * 3 + 2])
                v = _clamp(site.pv_target[g] * 1000 // site.voltage - imp + x[g])
                self._smooth(g, v, dt, steady or not self._read[g])  # the first reading: at once
                self._read[g] = 1
            else:
                self._smooth(g, 0, dt, steady)  # no reading: no surplus to give (min_pv keeps its minimum)

    def _drawn(self, c):
        # What a PV car draws now, over its phases: measured, else its offer while charging.
        a = self.alloc
        total = 0
        for k in range(3):
            m = a.meas[c * 3 + k]
            if m > 0:
                total += m
        if a.meas[c * 3] < 0 and a.pilot[c] in CHARGING:  # unmeasured
            total = a.offered[c] * self._phases(c)
        return total

    def _smooth(self, g, v, dt, steady):
        avg = self.avg
        if steady or not self.fresh[g]:
            avg[g] = v
            self.fresh[g] = 1
            return
        if -_SNAP_MA < v - avg[g] < _SNAP_MA:
            avg[g] = v  # an average only approaches: within a quantum on each phase it is there
            return
        tau = RISE_MS if v > avg[g] else _FALL_MS
        frac = _FRAC if dt >= tau else dt * _FRAC // tau
        avg[g] += (v - avg[g]) * frac // _FRAC

    # ---- who charges ------------------------------------------------------------------

    def _decide(self, g, now_ms, steady):
        site, on = self.site, self.on
        for c in range(len(self.pvg)):
            if self.pvg[c] == g:
                wanting = self.alloc.pilot[c] in PLUGGED
                if not wanting:
                    on[c] = 0
                    self._session_ends(c)
                elif not on[c] and (site.cmode[c] == MODE_MIN_PV or (steady and site.cmode[c] == MODE_PV)):
                    # min_pv always charges; a snapshot starts every pv car, then stops those
                    # that do not fit.
                    self._choose_phases(c, g, self._needed(g), now_ms)
                    on[c] = 1
                    self.began[c] = 1
        while self._stop_one(g, now_ms, steady):
            pass
        while self._start_one(g, now_ms, steady):
            pass
        for c in range(len(self.pvg)):
            if self.pvg[c] == g and site.cswitch[c]:
                self._switch(c, g, now_ms, steady)
        self._fill(g)

    def _session_ends(self, c):
        if self.alloc.pilot[c] == 65:  # "A": the car left; the next one starts afresh
            self.switches[c] = 0
            self.began[c] = 0
            self.want1[c] = 0  # the relay back to three while nothing draws
            self._sw_since[c] = None

    def _choose_phases(self, c, g, need, now_ms):
        # Before a car's first start in its session the relay moves for free (the contactor
        # has not closed): one phase when three at the minimum do not fit in the surplus.
        # A car stopped later in its session: the same, as a counted switch.
        if not self.site.cswitch[c] or self.switches[c] >= _SWITCH_BUDGET or not self.alloc.meter_ok[self.site.gmeter[g]]:
            return
        three = 3 * self.site.cmin[c] + (_SWITCH_HYST_MA if self.want1[c] else 0)
        w = 0 if self.avg[g] - need >= three else 1
        if w == self.want1[c]:
            return
        if not self.began[c]:
            self.want1[c] = w
        elif self._may_switch(c, now_ms):
            self._flip(c, now_ms)

    def _may_switch(self, c, now_ms):
        last = self._sw_last[c]
        return self.switches[c] < _SWITCH_BUDGET and (last is None or ticks_diff(now_ms, last) >= _SWITCH_GAP_MS)

    def _flip(self, c, now_ms):
        # A counted switch: against the session's budget and the gap between two.
        self.want1[c] ^= 1
        self.switches[c] += 1
        self._sw_last[c] = now_ms
        self._sw_since[c] = None

    def _switch(self, c, g, now_ms, steady):
        site = self.site
        last = self._sw_last[c]
        if last is not None and ticks_diff(now_ms, last) >= _SWITCH_GAP_MS:
            self._sw_last[c] = None  # aged out: no difference grows old (see clock.py)
        if not self.on[c]:
            self._sw_since[c] = None
            return
        if not self.want1[c] and not self.one[c] and not self.moving[c] and self._phases(c) == 1:
            # A 1-phase car on three phases: one phase would give it nothing. Switching stops
            # for this session.
            self.switches[c] = _SWITCH_BUDGET
        lo = site.cmin[c]
        avail = self.avg[g] - self._needed(g) + lo * self._phases(c)  # if the others keep their minimum
        one = self.want1[c]
        if (avail < 3 * lo) if not one else (avail >= 3 * lo + _SWITCH_HYST_MA):
            if steady:
                self.want1[c] = 0 if one else 1
                return
            if self._sw_since[c] is None:
                self._sw_since[c] = now_ms
            if ticks_diff(now_ms, self._sw_since[c]) >= (_SWITCH_UP_MS if one else _SWITCH_DOWN_MS) and \
                    self._may_switch(c, now_ms):
                self._flip(c, now_ms)
        else:
            self._sw_since[c] = None

    def _needed(self, g):
        need = 0
        for c in range(len(self.pvg)):
            if self.pvg[c] == g and self.on[c]:
                need += self.site.cmin[c] * (1 if self.moving[c] and self.want1[c] else self._phases(c))
        return need

    def _stop_one(self, g, now_ms, steady):
        if self.avg[g] >= self._needed(g):
            self._stop[g] = None
            return False
        last = -1
        for c in range(len(self.pvg)):
            if self.pvg[c] == g and self.on[c] and self.site.cmode[c] == MODE_PV:
                last = c  # the last in charger order stops first
        if last < 0:
            return False
        if not steady:
            if self._stop[g] is None:
                self._stop[g] = now_ms
            if ticks_diff(now_ms, self._stop[g]) < self.site.pv_stop_ms:
                return False
            self._stop[g] = now_ms  # the next car stops after another whole delay
        self.on[last] = 0
        return True

    def _start_one(self, g, now_ms, steady):
        site, nxt = self.site, -1
        for c in range(len(self.pvg)):
            if self.pvg[c] == g and not self.on[c] and site.cmode[c] == MODE_PV and \
                    self.alloc.pilot[c] in PLUGGED:
                nxt = c
                break
        need = self._needed(g)
        if nxt >= 0:
            self._choose_phases(nxt, g, need, now_ms)
        if nxt < 0 or self.avg[g] < need + site.cmin[nxt] * self._phases(nxt):
            self._start[g] = None
            return False
        if not steady:
            if self._start[g] is None:
                self._start[g] = now_ms
            if ticks_diff(now_ms, self._start[g]) < site.pv_start_ms:
                return False
            self._start[g] = None
        self.on[nxt] = 1
        self.began[nxt] = 1
        return True

    def _fill(self, g):
        # Water-filling of the surplus over the started cars, each weighted by its phases and
        # stopped at its own ceiling: fair per phase-ampere.
        left, share, free = self.avg[g], self.share, self._free
        n = len(self.pvg)
        for c in range(n):
            free[c] = 1 if self.pvg[c] == g and self.on[c] else 0
            if free[c]:
                share[c] = 0
        while True:
            weight = 0
            for c in range(n):
                if free[c]:
                    weight += self._phases(c)
            if not weight:
                return
            level = left // weight if left > 0 else 0
            capped = False
            for c in range(n):
                if free[c] and self._top(c) <= level:
                    share[c] = self._top(c)
                    left -= share[c] * self._phases(c)
                    free[c] = 0
                    capped = True
            if not capped:
                for c in range(n):
                    if free[c]:
                        share[c] = level
                return

    def _top(self, c):
        a = self.alloc
        top = self.site.cmax[c]
        x = a.want[c]
        if 0 <= x < top:
            top = x
        x = a.ext_max[c]
        if 0 <= x < top:
            top = x
        return top

    def _phases(self, c):
        # The phases its car draws on (the allocator's phases in use), at most the charger's;
        # one where the relay reports one (asking is not enough: a board may not switch).
        if self._relay_one(c):
            return 1
        m = self.alloc.in_use(c)
        n = (m & 1) + (m >> 1 & 1) + (m >> 2 & 1)
        return n if n < self.site.cphases[c] else self.site.cphases[c]

    def _publish(self):
        pv_max, site = self.alloc.pv_max, self.site
        for c in range(len(self.pvg)):
            if site.cmode[c] != MODE_PV and site.cmode[c] != MODE_MIN_PV:
                pv_max[c] = NO_LIMIT
            elif self.pvg[c] < 0:
                pv_max[c] = site.cmin[c] if site.cmode[c] == MODE_MIN_PV else 0  # nothing measures it
            elif not self.on[c]:
                pv_max[c] = 0
            else:
                s = self.share[c]
                pv_max[c] = s if s > site.cmin[c] else site.cmin[c]


def _clamp(v):
    return -_CLAMP_MA if v < -_CLAMP_MA else _CLAMP_MA if v > _CLAMP_MA else v
