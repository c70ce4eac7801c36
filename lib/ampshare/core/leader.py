# The leader core: tracks followers and meters, runs the allocator every second (and at once
# when something that matters changes), and turns its answer into COMMANDs without ever
# letting what the cars may still draw exceed a fuse. Sans-I/O: the followers' authentic
# reports (as values: wire/leader.py opens them), meter readings and now_ms in; the values of
# each COMMAND out (wire/leader.py seals them).
from array import array
from ampshare.core.clock import aged, ticks_add, ticks_diff

from micropython import const

from ampshare.core import link
from ampshare.core.pilot import EV_FOLLOW_MS, INCREASE_GAP_MS
from ampshare.core.allocator import Allocator
from ampshare.core.budget import Budget
from ampshare.core.external import WATCHDOG_MS, External
from ampshare.core.demand import Demand
from ampshare.core.turns import Turns

PERIOD_MS = const(1_000)  # DESIGN.md: the control period
_FOLLOWER_WATCHDOG_MS = const(10_000)  # the follower's own watchdog (follower.WATCHDOG_MS)
# This long after the last COMMAND sent to a silent follower, it must be at its fallback: its
# watchdog restarts on each COMMAND (10 s), then the EV's 5 s, and 1 s for a datagram held
# up in the network.
_LOST_MS = const(16_000)
_SILENT_MS = const(3_000)  # three missed reports: shown as silent, its share kept reserved
# When each unit was last heard is kept for a day before it is aged: the page's link age. Every
# decision on it ends at _SILENT_MS; a day stays far below half the ESP32's ticks period.
_HEARD_KEEP_MS = const(86_400_000)
# A report younger than this is the follower's latest (it reports every second, follower.py's
# REPORT_MS; 300 ms for the network and a tick): only such a draw is credited for an increase.
# The same holds for a meter's reading (read every second, meter/tasks.py's METER_MS; 300 ms for the read):
# an older one may miss a load that rose since, and an increase counts its group at reserve.
_FRESH_MS = const(1_300)
METER_SILENT_MS = const(5_000)  # DESIGN.md: then its group counts its reserve_a
# A fall of a meter's reading above this triggers an allocation at once (a rise always does).
_STEP_MA = const(2_000)
# A new leader first listens: every follower reports within a second, and one that has not
# after three is counted at its maximum. Allocating earlier would pin the unheard at their
# maximum besides what they draw, and pause the others for nothing.
_ADOPT_MS = const(3_000)
_RESEND_MS = const(200)  # an unconfirmed decrease is repeated this often until confirmed
_STATUS_MS = const(500)  # how often follower timers (silent, lost, freed) are looked at
IDENTIFY_MS = const(10_000)  # an installer's "find this unit": its LED blinks this long

UNKNOWN = const(0)  # not heard since this leader started
ONLINE = const(1)
SILENT = const(2)
LOST = const(3)


class Leader:
    def __init__(self, site, now_ms):
        self.site = site
        self.alloc = Allocator(site)
        self.external = External(self.alloc)
        self.turns = Turns(self.alloc, now_ms, site.turn_ms)
        self.demand = Demand(self.alloc)
        self.surplus = None  # only on a site with PV chargers: the others pay no RAM for it
        if site.has_pv():
            from ampshare.core.surplus import Surplus
            self.surplus = Surplus(self.alloc)
        nc = len(site.charger_ids)
        self.nc = nc
        self.boot_ms = now_ms
        self.paired = bytearray(nc)  # 1: a unit holds this charger's key (wire/leader.py)
        self.status = bytearray(nc)
        self.f_epoch = array("i", [-1] * nc)
        # Times are ticks, kept in lists: array("i") would cut the unix port's ticks, whose
        # period is 2**62 (a list slot holds any small int without allocating).
        self.heard = [0] * nc  # ticks of the last accepted STATE
        # What each car may still draw, the last values sent, and what the follower holds.
        self.permitted = array("i", [0] * nc)
        self.sent = array("i", [0] * nc)
        self.sent_fb = array("i", [0] * nc)
        self.fb_allowed = array("i", [0] * nc)  # the most any fallback it may hold allows
        self.applied = array("i", [0] * nc)
        self.flags = bytearray(nc)  # each follower's last STATE flags (link.py), for the page
        self.freed_at = [0] * nc  # when a decrease counts as followed
        self.pending = bytearray(nc)  # 1 while a decrease is not yet confirmed
        # 1 from a decrease of the current, the fallback or the phases counted until the next
        # COMMAND carries it (wire/leader.py notes which one a confirming STATE must echo).
        self.lowered = bytearray(nc)
        self.resent = [now_ms] * nc
        self.identify_until = [None] * nc  # ticks until which COMMANDs ask it to blink
        self.cmd_at = [now_ms] * nc  # the last COMMAND sent: when its watchdog started
        self.last_increase = [ticks_add(now_ms, -INCREASE_GAP_MS)] * nc
        self.phases = bytearray(site.cphases)
        self._dmask = bytearray(nc)  # the phases in use demand.py last saw (a switching charger's)
        # The phases each COMMAND says a charger is counted on (the others are flagged, and a
        # new car there waits at its fallback), and those the leader means to count it on
        # (its car's, demand.py). Fewer: the COMMANDs say so first, and the allocator counts it
        # on fewer only once a report shows the follower took such a COMMAND (until then a
        # new car there could draw on them all). More: the allocator counts them at once, and
        # the COMMANDs say so once what it is sent fits there beside what the others may still
        # draw (they take the EV's 5 s to follow the allocator's new plan).
        self.counted = bytearray(self.alloc.wired(c) for c in range(nc))
        self.goal = bytearray(self.counted)
        self.meter_at = [0] * len(site.meter_ids)
        self._due = now_ms
        self._adopting = True
        self._status_due = now_ms
        self.budget = Budget(self.alloc)
        self._send = None

    # ---- inputs ---------------------------------------------------------------------

    def paired_unit(self, c):
        """A unit holds charger c's key now (wire/leader.py): not heard since, it may hold
        anything up to the charger's maximum."""
        self.paired[c] = 1
        self.status[c] = UNKNOWN

    def meter(self, now_ms, m, l1, l2, l3):
        a, i = self.alloc, m * 3
        r1, r2, r3 = a.meter[i], a.meter[i + 1], a.meter[i + 2]
        # Any rise is answered at once: the cars have their 5 s to follow from the moment the
        # leader reacts, and the fuse only 1 s + 5 s from the rise. A fall can wait for the
        # period, unless it is a step (the others may have current back sooner).
        now = not a.meter_ok[m] or l1 > r1 or l2 > r2 or l3 > r3 or \
            max(r1 - l1, r2 - l2, r3 - l3) > _STEP_MA
        a.meter[i], a.meter[i + 1], a.meter[i + 2] = l1, l2, l3
        a.meter_ok[m] = 1
        self.meter_at[m] = now_ms
        if now:
            self._due = now_ms

    def state(self, now_ms, c, f_epoch, letter, applied, fb, meas, flags, wh, reflects=True):
        """Follower c's authentic, fresh STATE: its boot epoch, pilot letter, what it may offer
        and its fallback (mA), its measured currents (mA, three), its flags and energy (Wh).
        reflects: it was made after the follower took our latest decrease (wire/leader.py);
        only then can its figures confirm that decrease."""
        first = self.status[c] == UNKNOWN or self.f_epoch[c] != f_epoch
        self.f_epoch[c] = f_epoch
        self.turns.report(c, letter, wh)
        self.heard[c] = now_ms
        a = self.alloc
        if a.pilot[c] != letter:
            self._due = now_ms
        a.pilot[c] = letter
        for k in range(3):
            a.meas[c * 3 + k] = meas[k]
        self.applied[c] = applied
        self.flags[c] = flags
        switching = self.surplus is not None and self.site.cswitch[c]
        if switching and self.surplus.relay(c, flags, first, meas):  # type: ignore[union-attr]
            self.demand.active[c] = 0  # its car starts afresh: every phase until it settles
        mask = self.demand.report(now_ms, c, letter, self._drawn(c), self.sent[c], meas)
        if switching:
            self._dmask[c] = mask
            mask = self.surplus.mask(c, mask)  # type: ignore[union-attr]
        self._count_on(now_ms, c, a.phases_for(c, mask), reflects)
        if first:
            # Adopt what it does now (a restarted leader, a restarted follower): no pause.
            # What its car may still draw is not known here (an earlier leader's offer, or
            # one it left for its fallback moments ago): its maximum until the EV's 5 s
            # have passed.
            self.sent[c] = applied
            self.permitted[c] = max(applied, self._drawn(c), self.site.cmax[c])
            self.pending[c] = 1
            self.freed_at[c] = ticks_add(now_ms, EV_FOLLOW_MS) | 1
            self.sent_fb[c] = fb
            self.fb_allowed[c] = fb
            self._due = now_ms
        elif applied > self.permitted[c]:
            # It holds more than we counted (a report we had not seen, a replay adopted
            # first): count what it says it may offer, and resend the decrease.
            self.permitted[c] = applied
            self.pending[c] = 1
            self.freed_at[c] = 0
        elif self.pending[c] and applied <= self.sent[c] and self.freed_at[c] == 0 and reflects:
            # It took the decrease: its car may draw the old offer for the EV's 5 s more. A
            # low measurement proves nothing (an asleep or tapering car may rise again).
            self.freed_at[c] = ticks_add(now_ms, EV_FOLLOW_MS) | 1
        if fb <= self.sent_fb[c] and reflects:
            self.fb_allowed[c] = self.sent_fb[c]
        self.status[c] = ONLINE

    def _count_on(self, now_ms, c, goal, reflects):
        a = self.alloc
        cur = a.in_use(c)
        self.goal[c] = goal
        if goal & ~cur:
            a.use_phases(c, cur | goal)
            self._due = now_ms  # a phase came alive: counted on its fuses at once
        elif goal != cur:
            if self.counted[c] & ~goal:
                self.counted[c] &= goal  # told first
                self.lowered[c] = 1
            elif reflects:
                a.use_phases(c, goal)  # it holds a COMMAND that says so
                self._due = now_ms

    def _drawn(self, c):
        m = self.alloc.meas
        return max(m[c * 3], m[c * 3 + 1], m[c * 3 + 2])

    def _free(self, c):
        self.pending[c] = 0
        self.freed_at[c] = 0
        self.permitted[c] = self.sent[c]

    def identify(self, now_ms, c):
        """Ask follower c to blink its LED for IDENTIFY_MS (an installer finding a unit)."""
        self.identify_until[c] = ticks_add(now_ms, IDENTIFY_MS)
        self._due = now_ms

    # ---- every period ---------------------------------------------------------------

    def tick(self, now_ms, send):
        """Timers and, when due, an allocation. Each COMMAND goes to send(charger, current,
        fallback, phases, flags, lowered) as it is made (mA; wire/leader.py seals it; lowered:
        the first to carry a decrease)."""
        self._send = send
        self._timers(now_ms)
        if self._adopting:
            if ticks_diff(now_ms, self.boot_ms) < _ADOPT_MS and self._unheard():
                return
            self._adopting = False
        if ticks_diff(now_ms, self._due) < 0:
            self._resend(now_ms)
            return
        self._due = ticks_add(now_ms, PERIOD_MS)
        self._hold_silent(now_ms)
        self.external.before_run()
        if self.surplus is not None:
            self.surplus.update(now_ms)
            self._phase_switching(now_ms)
        self.alloc.run()
        self.budget.window(now_ms)
        self.external.after_run()
        self._apply(now_ms)

    def _phase_switching(self, now_ms):
        # What the surplus decided (1 or 3 phases) goes out in every COMMAND; the fuses count
        # the charger on one phase only once its follower reports the relay there, and on
        # fewer phases, as any charger, only once a report shows it was told (_count_on).
        s, site = self.surplus, self.site
        for c in range(self.nc):
            if site.cswitch[c]:
                self.phases[c] = 1 if s.want1[c] else 3  # type: ignore[union-attr]  # only with a Surplus
                self._count_on(now_ms, c, self.alloc.phases_for(c, s.mask(c, self._dmask[c])), False)  # type: ignore[union-attr]

    def limit(self, now_ms, kind, ident, ma=None, w=None, watchdog_ms=WATCHDOG_MS):
        """An external limit (external.py): set (ma or w) or clear. Allocated at once; returns
        the request's id, whose answer external.answer(id) gives."""
        ext = self.external
        rid = ext.request(now_ms, kind, ident, ma, w, watchdog_ms)
        if ext.changed:
            self._due = now_ms
        return rid

    def share(self, now_ms, on):
        """Sharing on or off (off: every charger is offered nothing, its fallback too).
        Allocated at once: turned off, the decreases go out as any other."""
        on = 1 if on else 0
        if self.alloc.sharing != on:
            self.alloc.sharing = on
            self._due = now_ms

    def stop(self, now_ms, c, on=True):
        """Offer charger c nothing, its fallback too (its unit is to be unpaired), or again
        what the site gives it."""
        self.alloc.off[c] = 1 if on else 0
        self._due = now_ms

    def stopped(self, c):
        """Charger c's follower has confirmed it holds nothing, fallback included, and its
        car has had the EV's 5 s to follow: it may be forgotten without a current it may
        still offer counted nowhere."""
        return self.status[c] == ONLINE and self.alloc.off[c] and self.permitted[c] == 0 and \
            self.fb_allowed[c] == 0

    def forget(self, c):
        """Charger c has no unit any more (wire/leader.py dropped its key): no car there
        asks for a share, and none draws."""
        a = self.alloc
        self.paired[c] = 0
        self.status[c] = UNKNOWN
        a.off[c] = 0
        a.pilot[c] = ord("A")
        for k in range(3):
            a.meas[c * 3 + k] = -1
        self._due = self.heard[c]

    def _unheard(self):
        for c in range(self.nc):
            if self.paired[c] and self.status[c] == UNKNOWN:
                return True
        return False

    def _resend(self, now_ms):
        # A decrease the follower has not yet confirmed goes out again: on a lossy link the
        # next period would be a whole second later.
        for c in range(self.nc):
            if self.status[c] == ONLINE and self.applied[c] > self.sent[c] and \
                    ticks_diff(now_ms, self.resent[c]) >= _RESEND_MS:
                self.resent[c] = now_ms
                self._command(c, now_ms)

    def _timers(self, now_ms):
        if self.external.lapse(now_ms) or self.turns.tick(now_ms):
            self._due = now_ms
        for m in range(len(self.meter_at)):
            if self.alloc.meter_ok[m] and ticks_diff(now_ms, self.meter_at[m]) >= METER_SILENT_MS:
                self.alloc.meter_ok[m] = 0
                self._due = now_ms
        if ticks_diff(now_ms, self._status_due) < 0:
            return
        # Follower timers at 2 Hz: each later step only keeps more reserved, the safe side.
        self._status_due = ticks_add(now_ms, _STATUS_MS)
        for m in range(len(self.meter_at)):
            self.meter_at[m] = aged(now_ms, self.meter_at[m], METER_SILENT_MS)
        # The tables once, not once a follower: each is a lookup in the leader's attributes.
        pending, freed_at, status, heard, cmd_at = self.pending, self.freed_at, self.status, self.heard, self.cmd_at
        increased, resent, identify = self.last_increase, self.resent, self.identify_until
        for c in range(self.nc):
            if pending[c] and freed_at[c] and ticks_diff(now_ms, freed_at[c]) >= 0:
                self._free(c)
            # Aged (clock.py): each only decides while younger than its bound.
            increased[c] = aged(now_ms, increased[c], INCREASE_GAP_MS)
            resent[c] = aged(now_ms, resent[c], _RESEND_MS)
            heard[c] = aged(now_ms, heard[c], _HEARD_KEEP_MS)
            cmd_at[c] = aged(now_ms, cmd_at[c], _LOST_MS)
            u = identify[c]
            if u is not None and ticks_diff(now_ms, u) >= 0:
                identify[c] = None
            s = status[c]
            if s == ONLINE or s == SILENT:
                if ticks_diff(now_ms, heard[c]) < _SILENT_MS:
                    new = ONLINE
                elif ticks_diff(now_ms, cmd_at[c]) >= _LOST_MS:
                    new = LOST
                else:
                    new = SILENT
                if new != s:
                    status[c] = new
                    self._due = now_ms

    def _hold_silent(self, now_ms):
        # Silent: its last permitted current is pinned. Lost: it must be at its fallback.
        # Never heard since we started: it may be at anything up to its maximum.
        a, site = self.alloc, self.site
        for m in range(len(self.meter_at)):
            a.meter_fresh[m] = ticks_diff(now_ms, self.meter_at[m]) < _FRESH_MS
        for c in range(self.nc):
            s = self.status[c]
            a.fresh[c] = s == ONLINE and ticks_diff(now_ms, self.heard[c]) < _FRESH_MS
            if s == ONLINE:
                a.held[c] = 0
                a.held_fb[c] = 0
            elif s == SILENT:
                a.held[c] = max(self.permitted[c], self.fb_allowed[c])
                a.held_fb[c] = self.fb_allowed[c]
            elif s == LOST:
                a.held[c] = self.fb_allowed[c]
                a.held_fb[c] = self.fb_allowed[c]
            else:
                # A paired unit not yet heard may hold anything up to its maximum (an earlier
                # leader's offer or fallback), whatever its mode is now.
                a.held[c] = site.cmax[c] if self.paired[c] else 0
                a.held_fb[c] = a.held[c]
            if a.held[c]:
                # Whatever it draws now is inside any meter above it; none of it is credited
                # back, since its car may have stopped and may start again up to what it
                # holds (pinned on its fuses besides).
                a.pilot[c] = ord("C")
                a.offered[c] = a.held[c]
                for k in range(3):
                    a.meas[c * 3 + k] = 0
            else:
                # A measured draw is credited up to what the car may still draw: while it
                # follows a decrease, the part not yet shed is its own, not new other load.
                a.offered[c] = self.permitted[c]

    def _apply(self, now_ms):
        # Decreases at once; increases only where what every car may still draw leaves room.
        a = self.alloc
        for c in range(self.nc):
            if self.status[c] != ONLINE:
                continue
            t = a.out[c]
            if t < self.sent[c]:
                self.sent[c] = t
                self.lowered[c] = 1
                self.pending[c] = 1
                self.freed_at[c] = 0
                self.resent[c] = now_ms
        self._usage()
        for i in range(self.nc):
            c = a.ranked(i)
            if self.status[c] != ONLINE:
                continue
            t = a.out[c]
            if t > self.sent[c] and ticks_diff(now_ms, self.last_increase[c]) >= INCREASE_GAP_MS:
                grant = self._room(c, t)
                if grant > self.sent[c]:
                    self._raise(c, grant)
                    self.last_increase[c] = now_ms
            self._send_fallback(c)
            self._command(c, now_ms)

    def _usage(self):
        self.budget.count(self.permitted, self.fb_allowed, self.alloc.held, self.alloc.held_fb)
        # Widened here only: _count_on narrows counted with goal, so counted is within goal.
        counted, goal = self.counted, self.goal
        for c in range(self.nc):
            if goal[c] & ~counted[c] and self.budget.fits(c):
                counted[c] = goal[c]

    def _room(self, c, target):
        # Up to what every phase it is counted on leaves beside what the others may still
        # draw; less than its own permitted where even that does not fit (an adopted car).
        p = self.permitted[c]
        grant = p + self.budget.room(c, target - p)
        grant -= grant % 100
        if grant > target:
            grant = target
        return grant if grant >= self.site.cmin[c] else self.sent[c]

    def _raise(self, c, grant):
        more = grant - self.permitted[c]
        if more > 0:
            self.budget.take(c, more)
            self.permitted[c] = grant
        self.sent[c] = grant
        # Back above a decrease not yet followed: what it may draw is still the higher value.
        self.pending[c] = 1 if self.permitted[c] > grant else 0

    def _send_fallback(self, c):
        # A lower fallback goes out at once; a higher one only once every fallback a
        # follower may still hold fits with it (the fallbacks' own make-before-break).
        fb = min(self.alloc.fallback[c], self.sent[c])
        if fb <= self.sent_fb[c]:
            if fb < self.sent_fb[c]:
                self.lowered[c] = 1
            self.sent_fb[c] = fb
            return
        more = fb - self.fb_allowed[c]
        if more > 0:
            if not self.budget.fallback_fits(c, more):
                return
            self.budget.take_fallback(c, more)
            self.fb_allowed[c] = fb
        self.sent_fb[c] = fb

    def _flags(self, c):
        # Identify, and the charger's own phases this leader does not count it on (its car
        # draws on fewer): a new car there must wait for a COMMAND that counts them.
        site = self.site
        used = self.counted[c]
        flags = link.IDENTIFY if self.identify_until[c] is not None else 0
        for k in range(site.cphases[c]):
            w = site.cwire[c * 3 + k]
            if w >= 0 and not used & (1 << w):
                flags |= 1 << (link.UNCOUNTED_SHIFT + k)
        return flags

    def _command(self, c, now_ms):
        self.cmd_at[c] = now_ms
        lowered = self.lowered[c]
        self.lowered[c] = 0
        self._send(c, self.sent[c], self.sent_fb[c], self.phases[c], self._flags(c), lowered)  # type: ignore[misc]  # attached
