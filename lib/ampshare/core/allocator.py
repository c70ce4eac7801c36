# The allocator: milliamps per charger such that no fuse, at any level and on any phase,
# carries more than its limit. Sans-I/O and integer-only: the caller fills the input arrays,
# calls run(), and reads the output arrays. Nothing is allocated on the heap inside run().
#
# Model. Every (group, site phase) pair is a constraint k = group * 3 + phase with a
# capacity: its limit minus its other load. A charger uses the constraints of its group and
# of every ancestor, on each site phase it may draw from (a 1-phase charger with unknown
# wiring may draw from any). A feasible allocation keeps, on every constraint, the sum of
# the allocations of its users within its capacity.
#
# Heap: MicroPython builds a tuple for a multiple assignment of more than three names, so
# the array shortcuts below come in threes.
#
# Sharing. (1) Admission: candidates, in order (priority, then rank, then index), are
# admitted at their minimum while every constraint they use has room; then an exchange
# pass pauses one admitted charger wherever that lets two or more paused ones run, so the
# fewest chargers pause. (2) Water-filling: the admitted chargers rise together in steps of
# _QUANTUM; a charger stops at its maximum or when a constraint it uses is full (max-min
# fairness across the tree, phase by phase); when a constraint cannot give each of its
# rising users another quantum, its last quanta go one each in order before they stop.
# (3) Top-up: what is left goes a quantum at a time to whoever has least, so no charger stays
# below its maximum while every constraint it uses still has a quantum of room; one that is
# blocked by a single full constraint may take a quantum from a user of it that has more.
#
# Fallbacks are the same sharing over the capacities that remain when every meter is
# ignored and every group's other load is its reserve, each charger capped at its
# allocation: all followers at their fallbacks overload nothing.
from array import array
from micropython import const

from ampshare.core.ints import SMALL_MAX
from ampshare.core.pilot import CHARGING, PLUGGED
from ampshare.core.site import MODE_OFF, PRIO_MAX

NO_LIMIT = -1  # no external limit in force

# The granularity of an allocation: 0.1 A, the resolution of the configuration and finer
# than any pilot duty step a charger can follow.
_QUANTUM = const(100)
_BIG = SMALL_MAX  # "no bound yet", still a small int on the ESP32
# Readings beyond four times the largest fuse are faults; clamping there changes no
# decision (such a load already pauses everything) and keeps every sum below 2**30.
_METER_CLAMP = const(4_000_000)
RANK_MAX = const(0x1FFFFF)  # rank fits 21 bits so the sort key stays below 2**30
# What _other_loads computes: the capacities that decide the sharing (every draw credited),
# those an increase may use (only draws reported lately credited), the fallbacks' (no meter).
_NOW = const(0)
_UP = const(1)
_RESERVE = const(2)
# Rounds of the sharing that bring the credit of a charger of unknown wiring down to what it
# is given, before all are credited nothing (_share): most runs need none, a decrease one.
_ROUNDS = const(3)
_FROZEN = const(0)
_WAITING = const(1)  # admitted above the current water level: joins when the level gets there
_RISING = const(2)


class Allocator:
    def __init__(self, site):
        self.site = site
        ng = len(site.group_ids)
        nc = len(site.charger_ids)
        nm = len(site.meter_ids)
        self.ng, self.nc, self.nk = ng, nc, 3 * ng
        # Inputs, filled by the caller before run().
        self.meter = array("i", [0] * (3 * nm))  # mA per site phase, import positive
        self.meter_ok = bytearray(nm)  # 1 while the meter's reading is fresh
        # 1 while the meter's last reading is its latest (read within the last period): a
        # reading older than that may miss a load that rose since, so an increase (cap_up)
        # counts such a meter's group at its reserve until the next reading.
        self.meter_fresh = bytearray(b"\x01" * nm)
        self.pilot = bytearray(b"A" * nc)  # IEC 61851 state letter
        self.meas = array("i", [-1] * (3 * nc))  # mA per charger phase, -1 unmeasured
        # 1 while a charger's report is recent enough that its draw is what it draws now. A
        # draw not reported lately (a report lost, a follower cut off) may have stopped since
        # the meter read it: crediting it would count its fall as room, so an increase never
        # relies on it (cap_up).
        self.fresh = bytearray(b"\x01" * nc)
        self.offered = array("i", [0] * nc)  # the current in force now
        self.rank = array("i", [0] * nc)  # lower is served first within a priority
        # A silent follower keeps what it may still draw (and its fallback) whatever we
        # decide: pinned on its fuses, never offered more.
        self.held = array("i", [0] * nc)
        self.held_fb = array("i", [0] * nc)
        # Limits set from outside (an energy manager, the utility): mA, or NO_LIMIT. They only
        # ever lower a group's limit or a charger's maximum, never raise one above a fuse.
        self.ext_limit = array("i", [NO_LIMIT] * (3 * ng))
        self.ext_max = array("i", [NO_LIMIT] * nc)
        # What a PV charger may take of the surplus (surplus.py), NO_LIMIT for the others.
        self.pv_max = array("i", [NO_LIMIT] * nc)
        # What a car is believed to want (demand.py): mA, or NO_LIMIT (its maximum). Never
        # below its minimum: a car that draws nothing keeps the minimum until it is probed.
        self.want = array("i", [NO_LIMIT] * nc)
        # 0 until the installer enables sharing (the page, MQTT): nobody is offered current
        # before the site is known to be right, as Tesla's power sharing does.
        self.sharing = 1
        self.off = bytearray(nc)  # 1: offered nothing, fallback too (its unit is being unpaired)
        # 1: its car asks for nothing under an offer (demand.py parks it): its share goes to
        # the others until it asks or is probed.
        self.parked = bytearray(nc)
        # The charger phases its car draws on once it has settled (bit j: its phase j), 0
        # until then (demand.py): where its wiring is unknown, its draw is credited so.
        self.narrow = bytearray(nc)
        # Outputs.
        self.out = array("i", [0] * nc)
        self.fallback = array("i", [0] * nc)
        self.cap = array("i", [0] * (3 * ng))  # what the chargers under a group may take
        self.other = array("i", [0] * (3 * ng))  # other load, export credit bounded
        self.cap_fb = array("i", [0] * (3 * ng))  # the same with no meter, every group at its reserve
        # The same crediting only fresh draws, for increases; a charger of unknown wiring's
        # credit as before the sharing (_share may lower it in cap): the Budget counts that
        # charger at what it may still draw, never below its credit, on every phase.
        self.cap_up = array("i", [0] * (3 * ng))
        # Work.
        self._raw = array("i", [0] * (3 * ng))
        self._draw = array("i", [0] * (3 * ng))
        self._acc = array("i", [0] * (3 * ng))
        self._corr = array("i", [0] * (3 * ng))
        self._used = array("i", [0] * (3 * ng))
        self._base = array("i", [0] * (3 * ng))
        self._n = array("h", [0] * (3 * ng))
        self._tight = bytearray(3 * ng)
        self._a = array("i", [0] * nc)
        self._lo = array("i", [0] * nc)
        self._hi = array("i", [0] * nc)
        self._rise = bytearray(nc)
        self._tmp = array("h", [0] * nc)
        self._paused = array("h", [0] * nc)
        self._order = array("h", range(nc))
        self._key = array("i", [0] * nc)
        self._sd = array("i", [0, 0, 0])
        # Per charger of unknown wiring: the draw credited for it in this run, then the most
        # it may be (_share).
        self._cred = array("i", [0] * (2 * nc))
        # The site phases each charger is counted on: those its car draws on (use_phases), and
        # every one it is wired to (the fallbacks': a new car may draw on all of them).
        self._wmask = bytearray(self._phase_mask(c) for c in range(nc))
        self._mask = bytearray(self._wmask)
        self._m = self._mask  # the masks of the pass under way
        self._cons_table(site)
        self._unb = [g for g in range(ng) if site.unbalance[g] >= 0]  # groups with an unbalance limit
        # Set by a test: the largest magnitude any work array held at the end of any pass.
        self.audit = False
        self._peak = 0

    def _cons_table(self, site):
        # Flat list of the constraints each charger uses: ancestors x site phases. Grown as
        # arrays: a list of 64 chargers' constraints would take 4 KB in one piece at start-up.
        cons, off = array("h"), array("h", [0])
        for c in range(self.nc):
            mask = self._phase_mask(c)
            g = site.cgroup[c]
            while g >= 0:
                for p in range(3):
                    if mask & (1 << p):
                        cons.append(g * 3 + p)
                g = site.parent[g]
            off.append(len(cons))
        self._ck = cons
        self._coff = off
        # A charger's constraints in use come first in its slice, up to _cend[c]: all of them
        # unless use_phases() says its car draws on fewer site phases.
        self._wend = off[1:]  # every phase each charger is wired to
        self._cend = off[1:]
        self._end = self._cend  # the slice ends the pass under way works with

    def phases_for(self, c, mask):
        """The site phases use_phases(c, mask) would count charger c on (bit p: phase p)."""
        w = self._wmask[c]
        m = w & mask if mask else w
        return m if m else w

    def use_phases(self, c, mask):
        """Count charger c only on the site phases in mask (bit p: site phase p) of those it
        is wired to: a 1- or 2-phase car on a 3-phase charger leaves the others free. 0: all."""
        ck, lo, hi = self._ck, self._coff[c], self._coff[c + 1]
        i = lo
        for j in range(lo, hi):
            k = ck[j]
            if not mask or mask & (1 << (k % 3)):
                ck[i], ck[j] = k, ck[i]
                i += 1
        if i == lo:
            i = hi  # drawing on none of its phases: all of them
        self._cend[c] = i
        # The exchange pass reasons on the phases a charger uses: keep its mask the same.
        self._mask[c] = self.phases_for(c, mask)

    def spread(self, per_charger, into):
        """Adds each charger's value to every constraint it uses (the live view's and the
        snapshot's per-group figures)."""
        for c in range(self.nc):
            self.add_to(c, per_charger[c], into)

    def measured(self, into):
        """Adds the chargers' measured draws to every group above them, on the site phase
        each charger phase is wired to (a charger of unknown wiring cannot be placed)."""
        site, meas = self.site, self.meas
        for c in range(self.nc):
            g = site.cgroup[c]
            while g >= 0:
                for k in range(site.cphases[c]):
                    w = site.cwire[c * 3 + k]
                    if w >= 0 and meas[c * 3 + k] > 0:
                        into[g * 3 + w] += meas[c * 3 + k]
                g = site.parent[g]

    def add_to(self, c, v, into, wired=False):
        """Adds v to every constraint charger c is counted on: the phases its car draws on,
        or (wired) every phase it is wired to."""
        ck = self._ck
        for j in range(self._coff[c], (self._wend if wired else self._cend)[c]):
            into[ck[j]] += v

    def least_room(self, c, cap, use, wired=False):
        """The least of cap[k] - use[k] over the constraints charger c is counted on."""
        return self._least(c, cap, use, self._wend if wired else self._cend)

    def _least(self, c, cap, use, end):
        ck, room = self._ck, _BIG
        for j in range(self._coff[c], end[c]):
            k = ck[j]
            r = cap[k] - use[k]
            if r < room:
                room = r
        return room

    def requested(self, c):
        """What charger c's car is believed to want: its maximum, or its draw plus the margin
        once demand detection knows it (demand.py), never below its minimum."""
        site, w = self.site, self.want[c]
        if w < 0 or w >= site.cmax[c]:
            return site.cmax[c]
        return w if w > site.cmin[c] else site.cmin[c]

    def ranked(self, i):
        """The i-th charger in the order of the last run (priority, then rank)."""
        return self._order[i]

    def in_use(self, c):
        """The site phases charger c is counted on now (bit p: site phase p)."""
        return self._mask[c]

    def wired(self, c):
        """Every site phase charger c may draw on (all three where its wiring is unknown)."""
        return self._wmask[c]

    def _phase_mask(self, c):
        site = self.site
        wire = site.cwire[c * 3]
        if site.cphases[c] == 3 or wire < 0:
            return 7
        return 1 << wire

    def _uniform(self, i0, i1):
        # When the candidates order[i0:i1] have the same minimum and are counted on the same
        # phases, admission in order is already optimal (a laminar matroid): no exchange pass.
        # Asked at every pass: phases in use change while cars charge.
        order, hi, m = self._order, self._hi, self._m
        cmin = self.site.cmin
        first = -1
        for i in range(i0, i1):
            c = order[i]
            if not hi[c]:
                continue
            if first < 0:
                first = c
            elif m[c] != m[first] or cmin[c] != cmin[first]:
                return False
        return True

    # ---- one allocation ------------------------------------------------------------

    def run(self):
        self._peak = 0
        self._sort()
        site, lo, hi = self.site, self._lo, self._hi
        most, nc = self._cred, self.nc
        for c in range(nc):
            lo[c] = site.cmin[c]
            p = self.pilot[c]
            wants = p in PLUGGED and site.cmode[c] != MODE_OFF and self.sharing and not self.off[c] and \
                not self.parked[c]
            top = site.cmax[c]
            # Outside inputs come on the quantum's grid, as configured amps do: the sharing
            # gives quanta, and a maximum between two would never be reached.
            x = self.want[c]
            if 0 <= x < top:
                x -= x % _QUANTUM
                top = x if x > lo[c] else lo[c]
            top = _ceiling(self.ext_max[c], top, lo[c])
            top = _ceiling(self.pv_max[c], top, lo[c])
            hi[c] = top if wants and not self.held[c] else 0
            most[nc + c] = hi[c]  # a charger of unknown wiring given no more is credited no more (_share)
        self._other_loads(_NOW, self.cap)
        self._other_loads(_RESERVE, self.cap_fb)
        if self._all_fresh():
            for k in range(self.nk):
                self.cap_up[k] = self.cap[k]
        else:
            self._other_loads(_UP, self.cap_up)
        self._pin(self.held)
        self._share(self.cap, self.out)
        if self._unb and self._balance():
            self._pin(self.held)
            self._share(self.cap, self.out)  # what the lowered ones left goes to the others
            self._balance()  # the re-share may admit one onto a high phase: lowering only
        # Fallbacks: capped at the allocation, counted on every phase each charger is wired
        # to whatever its car draws today (a fallback is used when nobody watches, and a new
        # car may draw on all of them).
        for c in range(self.nc):
            hi[c] = self.out[c]
        self._end, self._m = self._wend, self._wmask
        self._pin(self.held_fb)
        self._share(self.cap_fb, self.fallback)
        self._end, self._m = self._cend, self._mask

    def _all_fresh(self):
        fresh = self.fresh
        for c in range(self.nc):
            if not fresh[c]:
                return False
        fresh = self.meter_fresh
        for m in range(len(fresh)):
            if not fresh[m]:
                return False
        return True

    def _pin(self, held):
        base, ck = self._base, self._ck
        for k in range(self.nk):
            base[k] = 0
        for c in range(self.nc):
            h = held[c]
            if h:
                for j in range(self._coff[c], self._coff[c + 1]):  # every wired phase: it is silent
                    base[ck[j]] += h

    def _other_loads(self, mode, cap):
        # Other load per group and phase, children before parents.
        site, nk = self.site, self.nk
        raw, acc, corr = self._raw, self._acc, self._corr
        draw, oth = self._draw, self.other
        metered = mode != _RESERVE
        for k in range(nk):
            acc[k] = 0
            corr[k] = 0
            draw[k] = 0
        if metered:
            self._charger_draws(mode == _UP)
        for g in range(self.ng - 1, -1, -1):
            m = site.gmeter[g]
            live = metered and m >= 0 and self.meter_ok[m] and (mode == _NOW or self.meter_fresh[m])
            up = site.parent[g]
            for p in range(3):
                k = g * 3 + p
                if live:
                    # The meter sees everything below: take the chargers out, and the part
                    # of the children's export that their own fuses cannot pass.
                    r = _clamp(self.meter[m * 3 + p], -_METER_CLAMP, _METER_CLAMP) - draw[k] + corr[k]
                else:
                    r = site.reserve[k] + acc[k]
                lim = site.limit[k]
                e = r if r > -lim else -lim  # export credit goes no further than this fuse
                raw[k] = r
                if up >= 0:
                    acc[up * 3 + p] += e
                    # Clipped export anywhere below still shows on every meter above.
                    corr[up * 3 + p] += e - r + corr[k]
                x = self.ext_limit[k]
                cap[k] = (x if 0 <= x < lim else lim) - e
                if mode == _NOW:
                    oth[k] = e

    def _charger_draws(self, fresh_only):
        # What each charger draws now, on each site phase, summed into its group and every
        # ancestor, as far as its own meter shows it (_draw). Unknown wiring: below.
        site, meas, draw = self.site, self.meas, self._draw
        cred, nc = self._cred, self.nc
        for c in range(nc):
            if not fresh_only:
                cred[c] = 0
            if fresh_only and not self.fresh[c]:
                continue
            base = c * 3
            charging = self.pilot[c] in CHARGING
            cmax = site.cmax[c]
            n = site.cphases[c]
            held = self.offered[c] if charging else 0  # not charging: a draw is a fault
            d0 = _draw(meas[base], held, cmax)
            least = d0
            if n == 3:
                d1 = _draw(meas[base + 1], held, cmax)
                d2 = _draw(meas[base + 2], held, cmax)
                least = min(d0, d1, d2)
            sd = self._sd
            if site.cwire[base] >= 0:
                sd[0] = sd[1] = sd[2] = 0
                sd[site.cwire[base]] = d0
                if n == 3:
                    sd[site.cwire[base + 1]] = d1
                    sd[site.cwire[base + 2]] = d2
            else:
                # Counted at what it may still draw (offered) on every site phase it may
                # draw on, its draw may be credited on each of them: the one a charger phase
                # is on then carries it exactly, and on the others the credit only spends
                # part of what is counted there, never more (a draw is credited at most at
                # its offer). The least it draws on a phase its car may take current on:
                # each of its phases until its car has settled (some cars bring theirs up one
                # by one), then those it draws on (narrow, from demand.py), as a charger of
                # known wiring is counted only on those. A 1-phase charger has one.
                m = self.narrow[c] if n == 3 else 1
                x = least
                if m and m != 7:
                    x = _BIG
                    if m & 1 and d0 < x:
                        x = d0
                    if m & 2 and d1 < x:
                        x = d1
                    if m & 4 and d2 < x:
                        x = d2
                    # Credited on a phase it may not be on: no more than it is given (_share).
                    if x > cred[nc + c]:
                        x = cred[nc + c]
                    if not fresh_only:
                        cred[c] = x
                m = self._mask[c]
                sd[0] = x if m & 1 else 0
                sd[1] = x if m & 2 else 0
                sd[2] = x if m & 4 else 0
            g = site.cgroup[c]
            while g >= 0:
                draw[g * 3] += sd[0]
                draw[g * 3 + 1] += sd[1]
                draw[g * 3 + 2] += sd[2]
                g = site.parent[g]

    def _sort(self):
        # Insertion sort of the persistent order: nearly sorted from the last run, so cheap.
        site, key, order = self.site, self._key, self._order
        for c in range(self.nc):
            r = self.rank[c]
            r = 0 if r < 0 else r if r < RANK_MAX else RANK_MAX
            key[c] = (PRIO_MAX - site.cprio[c]) << 21 | r
        for i in range(1, self.nc):
            c = order[i]
            j = i - 1
            while j >= 0 and _before(key, c, order[j]):
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = c

    def _share(self, cap, out):
        # A charger of unknown wiring given less than the draw credited for it (the credit
        # in _charger_draws) frees that draw on its own phase only, which is not known, so the
        # others may not count on the difference: its credit comes down to what it is given
        # and the sharing is made again. Lowering a credit lowers what everyone under it may
        # have, so a few rounds settle it; after _ROUNDS, every such charger is credited
        # nothing, and one more sharing ends it.
        nc, cred, n = self.nc, self._cred, 0
        while True:
            self._admit(cap)
            self._fill(cap)
            self._top_up(cap)
            a = self._a
            for c in range(nc):
                out[c] = a[c]
            if self.audit:
                self._note()
            if cap is not self.cap:
                return
            over = False
            for c in range(nc):
                if cred[c] > out[c]:
                    cred[nc + c] = out[c]
                    over = True
            if not over:
                return
            if n >= _ROUNDS:
                for c in range(nc):
                    cred[nc + c] = 0
            n += 1
            self._other_loads(_NOW, cap)
            self._pin(self.held)

    # ---- admission -----------------------------------------------------------------

    def _admit(self, cap):
        # Priority first: one level at a time, highest first, is admitted and then exchanged
        # until the fewest of that level pause; only then may a lower level take what is left.
        # A charger is never paused so that chargers of lower priority can run.
        used, a, lo = self._used, self._a, self._lo
        hi, base, order = self._hi, self._base, self._order
        prio = self.site.cprio
        for k in range(self.nk):
            used[k] = base[k]
        i0 = paused = 0
        for i in range(self.nc):
            c = order[i]
            a[c] = 0
            if hi[c] and self._fits(c, lo[c], cap):
                self._add(c, lo[c])
            elif hi[c]:
                paused += 1
            if i + 1 == self.nc or prio[order[i + 1]] != prio[c]:
                if paused > 1 and not self._uniform(i0, i + 1):
                    while self._exchange(cap, i0, i + 1):
                        pass
                i0, paused = i + 1, 0

    def _fits(self, c, amount, cap):
        ck, used = self._ck, self._used
        for j in range(self._coff[c], self._end[c]):
            k = ck[j]
            if used[k] + amount > cap[k]:
                return False
        return True

    def _add(self, c, amount):
        ck, used = self._ck, self._used
        for j in range(self._coff[c], self._end[c]):
            used[ck[j]] += amount
        self._a[c] += amount

    def _exchange(self, cap, i0, i1):
        # Within one priority level (order[i0:i1]): pause the lowest-placed admitted charger
        # whose place lets two or more run.
        a, lo, hi = self._a, self._lo, self._hi
        order, tmp, paused = self._order, self._tmp, self._paused
        np = 0
        for i in range(i0, i1):
            c = order[i]
            if hi[c] and a[c] == 0:
                paused[np] = c
                np += 1
        if np < 2:
            return False
        for i in range(i1 - 1, i0 - 1, -1):
            s = order[i]
            if a[s] == 0 or not self._smaller_paused(s, np):
                continue
            self._add(s, -lo[s])
            got = 0
            for j in range(np):
                c = paused[j]
                if self._fits(c, lo[c], cap):
                    self._add(c, lo[c])
                    tmp[got] = c
                    got += 1
            if got >= 2:
                return True
            for j in range(got):
                self._add(tmp[j], -lo[tmp[j]])
            self._add(s, lo[s])
        return False

    def _smaller_paused(self, s, np):
        # If every paused charger needs at least what s frees, on at least the phases s
        # uses, no two of them can take s's place (each would block the other on the fuse
        # that blocks it now): that exchange is not worth trying.
        lo, mask, paused = self._lo, self._m, self._paused
        ms = mask[s]
        for j in range(np):
            c = paused[j]
            if lo[c] < lo[s] or mask[c] & ms != ms:
                return True
        return False

    # ---- water-filling -------------------------------------------------------------

    def _fill(self, cap):
        a, hi, rise = self._a, self._hi, self._rise
        n, used = self._n, self._used
        nc, nk = self.nc, self.nk
        level = _BIG
        for c in range(nc):
            rise[c] = _WAITING if 0 < a[c] < hi[c] else _FROZEN
            if rise[c] and a[c] < level:
                level = a[c]
        for k in range(nk):
            n[k] = 0
        for c in range(nc):
            if rise[c] and a[c] == level:
                self._join(c)
        while True:
            step = _BIG
            for k in range(nk):
                if n[k]:
                    s = (cap[k] - used[k]) // n[k]
                    if s < step:
                        step = s
            for c in range(nc):
                r = rise[c]
                if r == _RISING:
                    s = hi[c] - level
                elif r == _WAITING:
                    s = a[c] - level
                else:
                    continue
                if s < step:
                    step = s
            if step == _BIG:
                return
            step -= step % _QUANTUM
            if step:
                level = self._raise(step, level)
            else:
                self._freeze_tight(cap)

    def _join(self, c):
        self._rise[c] = _RISING
        ck, n = self._ck, self._n
        for j in range(self._coff[c], self._end[c]):
            n[ck[j]] += 1

    def _freeze(self, c):
        if self._rise[c] == _RISING:
            ck, n = self._ck, self._n
            for j in range(self._coff[c], self._end[c]):
                n[ck[j]] -= 1
        self._rise[c] = _FROZEN

    def _raise(self, step, level):
        a, hi, rise = self._a, self._hi, self._rise
        n, used = self._n, self._used
        level += step
        for k in range(self.nk):
            if n[k]:
                used[k] += step * n[k]
        for c in range(self.nc):
            r = rise[c]
            if r == _RISING:
                a[c] = level
                if level >= hi[c]:
                    self._freeze(c)
            elif r == _WAITING and a[c] == level:
                self._join(c)
        return level

    def _freeze_tight(self, cap):
        # No quantum fits for every rising user of some constraint. Its last quanta go one
        # each to its rising users, in order, then all its users stop.
        n, used, tight = self._n, self._used, self._tight
        ck, rise, order = self._ck, self._rise, self._order
        for k in range(self.nk):
            tight[k] = 1 if n[k] and cap[k] - used[k] < n[k] * _QUANTUM else 0
        for i in range(self.nc):
            c = order[i]
            if rise[c] == _RISING and self._uses_tight(c) and self._room(c, cap) >= _QUANTUM:
                self._add(c, _QUANTUM)
        for c in range(self.nc):
            if rise[c] and self._uses_tight(c):
                self._freeze(c)

    def _uses_tight(self, c):
        ck, tight = self._ck, self._tight
        for j in range(self._coff[c], self._end[c]):
            if tight[ck[j]]:
                return True
        return False

    def _room(self, c, cap):
        return self._least(c, cap, self._used, self._end)

    def _top_up(self, cap):
        # Whatever water-filling left, a quantum at a time to whoever has least (first in
        # order among equals) below its maximum with a quantum of room on every constraint
        # it uses: max-min fair to the last quantum. One without room may take a quantum
        # from a user of its one full constraint that has more (_steal); else it is out
        # (rise[] marks who is still in) until a steal frees room elsewhere.
        a, hi, rise = self._a, self._hi, self._rise
        order = self._order
        self._rejoin()
        while True:
            best = -1
            for i in range(self.nc):
                c = order[i]
                if rise[c] and (best < 0 or a[c] < a[best]):
                    best = c
            if best < 0:
                return
            if self._room(best, cap) >= _QUANTUM:
                self._add(best, _QUANTUM)
                if a[best] >= hi[best]:
                    rise[best] = 0
            elif self._steal(best, cap):
                self._rejoin()  # the giver's other constraints have room again
            else:
                rise[best] = 0

    def _rejoin(self):
        a, hi, rise = self._a, self._hi, self._rise
        for c in range(self.nc):
            rise[c] = 1 if 0 < a[c] < hi[c] else 0

    def _steal(self, c, cap):
        # c has least and lacks room. If exactly one of its constraints is full and a user of
        # it has more than c by over a quantum (and keeps its minimum), that user gives c a
        # quantum: the spread shrinks every time, so this ends.
        ck, used, coff = self._ck, self._used, self._coff
        a, lo = self._a, self._lo
        full = -1
        for j in range(coff[c], self._end[c]):
            k = ck[j]
            if cap[k] - used[k] < _QUANTUM:
                if full >= 0:
                    return False
                full = k
        if full < 0:
            return False
        d = -1
        for e in range(self.nc):
            if e == c or a[e] <= a[c] + _QUANTUM or a[e] - _QUANTUM < lo[e] or (d >= 0 and a[e] <= a[d]):
                continue
            for j in range(coff[e], self._end[e]):
                if ck[j] == full:
                    d = e
                    break
        if d < 0:
            return False
        self._add(d, -_QUANTUM)
        self._add(c, _QUANTUM)
        return True

    # ---- unbalance ------------------------------------------------------------------

    def _balance(self):
        # A group's unbalance limit (grid rules): its phase currents, other load included, may
        # differ by no more than the limit, or than the other load alone makes them. Lowers
        # (and holds there, through _hi) the chargers that load the highest phase and not the
        # lowest. True when it lowered one.
        lowered = False
        for g in self._unb:
            for _ in range(3):  # each round settles the highest phase
                if not self._settle_phase(g):
                    break
                lowered = True
        return lowered

    def _settle_phase(self, g):
        t, oth, k = self._sd, self.other, g * 3
        self._phase_totals(g, t)
        pmax = pmin = 0
        for p in (1, 2):
            if t[p] > t[pmax]:
                pmax = p
            if t[p] < t[pmin]:
                pmin = p
        by_others = max(oth[k], oth[k + 1], oth[k + 2]) - min(oth[k], oth[k + 1], oth[k + 2])
        limit = self.site.unbalance[g]
        excess = t[pmax] - t[pmin] - (limit if limit > by_others else by_others)
        if excess <= 0:
            return False
        out, lo, hi = self.out, self._lo, self._hi
        cand = self._tmp
        n, room = 0, -excess  # room: what these chargers may keep on the highest phase together
        for i in range(self.nc):
            c = self._order[i]
            if self._loads(c, k + pmax) and not self._loads(c, k + pmin):
                if out[c]:
                    cand[n] = c
                    n += 1
                    room += out[c]
                else:
                    hi[c] = 0  # paused: a re-share must not admit it onto this phase
        if n == 0:
            return False
        need = 0
        for j in range(n):
            need += lo[cand[j]]
        while n and need > room:  # not all at their minimum: the last in order pause
            n -= 1
            c = cand[n]
            need -= lo[c]
            out[c] = hi[c] = 0
        self._even(cand, n, room)
        return True

    def _even(self, cand, n, room):
        # room shared evenly between cand[:n], none above what it has: water-filling again.
        out, lo, hi = self.out, self._lo, self._hi
        free = self._rise
        m, left = n, room
        for j in range(n):
            free[cand[j]] = 1
        while m:
            lvl = left // m
            lvl -= lvl % _QUANTUM
            capped = False
            for j in range(n):
                c = cand[j]
                if free[c] and out[c] <= lvl:
                    free[c] = 0
                    left -= out[c]
                    m -= 1
                    capped = True
            if capped:
                continue
            for j in range(n):
                c = cand[j]
                if free[c]:
                    out[c] = lvl
                    left -= lvl
            for j in range(n):  # the last quanta, one each in order
                c = cand[j]
                if free[c] and left >= _QUANTUM:
                    out[c] += _QUANTUM
                    left -= _QUANTUM
            break
        for j in range(n):
            c = cand[j]
            free[c] = 0
            if out[c] < lo[c]:
                out[c] = 0  # a charger with a higher minimum than the level: paused
            hi[c] = out[c]

    def _loads(self, c, k):
        ck = self._ck
        for j in range(self._coff[c], self._end[c]):
            if ck[j] == k:
                return True
        return False

    def _phase_totals(self, g, t):
        # Other load and allocations on group g's phases. _acc is free once the capacities
        # are made (it is _other_loads' work array).
        acc, oth = self._acc, self.other
        for k in range(self.nk):
            acc[k] = 0
        self.spread(self.out, acc)
        for p in range(3):
            t[p] = oth[g * 3 + p] + acc[g * 3 + p]

    # ---- audit ---------------------------------------------------------------------

    def peak(self):
        """The largest magnitude held by any input, output or work array after run(), and
        (with audit set) at the end of every pass in it: the sharing and the fallbacks'."""
        self._note()
        return self._peak

    def _note(self):
        top = self._peak
        for arr in (self.meter, self.meas, self.offered, self.out, self.fallback, self.cap,
                    self.other, self.cap_fb, self.cap_up, self._raw, self._draw, self._acc, self._corr,
                    self._used, self._a, self._lo, self._hi, self._key, self.held,
                    self.held_fb, self._base, self.want, self.ext_limit, self.ext_max, self.pv_max):
            for v in arr:
                if v > top:
                    top = v
                elif -v > top:
                    top = -v
        self._peak = top


def _draw(measured, held, cmax):
    # Unmeasured (-1): nothing. Its car may draw less than its offer (asleep on its own timer,
    # full) and take it up later: crediting the offer would show that gap as room. A
    # measurement is credited at most at what the car may draw (a report from before it
    # followed a decrease reads high) and at the charger's own maximum (above it is a fault):
    # crediting less is the safe side.
    if measured < 0:
        return 0
    if measured > held:
        measured = held
    return measured if measured < cmax else cmax


def _ceiling(x, top, lo):
    # A limit from outside (an external one, the surplus) on the quantum's grid; below the
    # charger's minimum it cannot charge: paused.
    if 0 <= x < top:
        x -= x % _QUANTUM
        top = x if x >= lo else 0
    return top


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _before(key, c, d):
    kc, kd = key[c], key[d]
    return kc < kd or (kc == kd and c < d)
