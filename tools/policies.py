# The peers' sharing, for make bench-policy only (tools/bench_policy.py): each replaces, on one
# leader core in the twin, the allocation (alloc.run) and how it is applied (_apply), so the
# plant, the cars, the followers and the network stay the twin's and only the sharing differs.
# Never part of the firmware. Each is written from its product's public documentation or
# source, simplified where said; what each reads:
#
# static: Tesla's and Zaptec's static power sharing (Tesla Wall Connector installation
#   manual, "power sharing"; Zaptec's installation-current setting): the configured limit of
#   each fuse split equally between the chargers with a car plugged in; no meter. Its limit
#   is each group's limit_a, as an installer sets the feeding breaker's rating.
# warp: Tinkerforge WARP's charge manager (Tinkerforge/esp32-firmware, software/src/modules/
#   charge_manager/charge_manager.cpp and current_allocator.cpp): an allocation every 10 s
#   (allocation_interval); a metered fuse's limit less its measured other load (dynamic load
#   management, safety_margin_pct 0), an unmetered one its static limit; a charger plugged in
#   is switched on at once at its minimum (stage 2), the others then rise to an equal share,
#   each capped after 60 s in C at its highest measured phase + 3 A (requested current
#   margin); switching on needs the minimum for the first charger and 1.5 times it for the
#   others (enable_current_factor_pct 150); when not all fit, the ones on longest go off
#   every 15 min (rotation_interval) and those with least energy come on; a 1-phase charger
#   of unknown rotation counts on every phase.
# smartevse: SmartEVSE-3 (SmartEVSE/SmartEVSE-3, src/main.cpp: CalcBalancedCurrent,
#   IsCurrentAvailable): every 2 s, the mains limit (root group) less the highest phase's
#   measured load; a set point that rises by a quarter of the headroom and falls by all of
#   the excess at once, split equally between the active EVs (those capped at their maximum
#   first); a car joins only when one more minimum fits beside the base load; when even the
#   minimum for all does not fit three times running (NoCurrent > 2), every EV stops for 60 s
#   (ChargeDelay). Sub-groups' limits as static circuit limits (MaxCircuit), split equally.
from time import ticks_add, ticks_diff

from ampshare.core.leader import ONLINE, PERIOD_MS
from ampshare.core.pilot import CHARGING, PLUGGED

WARP_PERIOD_MS = 10_000  # allocation_interval
WARP_MARGIN_MA = 3_000  # REQUESTED_CURRENT_MARGIN_DEFAULT
WARP_SETTLE_MS = 60_000  # requested_current_threshold
WARP_ROTATE_MS = 15 * 60_000  # rotation_interval
WARP_ENABLE = 150  # enable_current_factor_pct: per cent of the minimum to switch another on
SMART_PERIOD_MS = 2_000  # a mains reading and a balancing every 2 s
SMART_DELAY_MS = 60_000  # CHARGEDELAY: every EV stopped this long when the minimum does not fit


def install(name, core):
    """Put the named peer's sharing in place of ampshare's on this leader core."""
    peer = {"static": Static, "warp": Warp, "smartevse": SmartEvse}[name](core)
    core.alloc.run = peer.run
    core._apply = peer.apply
    return peer


class Peer:
    period_ms = 0  # 0: every leader period (1 s)

    def __init__(self, core):
        self.core = core
        self.site = s = core.site
        self._last = None
        # Every phase each charger may draw on: all three where its wiring is unknown.
        self.on = [core.alloc.wired(c) for c in range(core.nc)]
        self.groups_of = []  # each charger's group and every ancestor
        for c in range(core.nc):
            g, gs = s.cgroup[c], []
            while g >= 0:
                gs.append(g)
                g = s.parent[g]
            self.groups_of.append(gs)

    def wanting(self, c):
        return self.core.status[c] == ONLINE and self.core.alloc.pilot[c] in PLUGGED

    def drawn(self, c, p):
        """What charger c draws on site phase p, as its own meter says."""
        s, m = self.site, self.core.alloc.meas
        for k in range(3):
            w = s.cwire[c * 3 + k]
            if (w if w >= 0 else k) == p:
                return max(0, m[c * 3 + k])
        return 0

    def most_drawn(self, c):
        return max(self.drawn(c, p) for p in range(3))

    def headroom(self, g, p):
        """What fuse (g, p) leaves the chargers: its limit less the other load its meter shows
        (the chargers' measured draw taken out), or its whole limit where nothing measures."""
        s, a = self.site, self.core.alloc
        lim = s.limit[g * 3 + p]
        m = s.gmeter[g]
        if m < 0 or not a.meter_ok[m]:
            return lim
        ev = 0
        for c in range(self.core.nc):
            if g in self.groups_of[c]:
                ev += self.drawn(c, p)
        return lim - (a.meter[m * 3 + p] - ev)

    def run(self):
        # Called by the leader's tick right after it set its next period: now is one before.
        a = self.core.alloc
        now = ticks_add(self.core._due, -PERIOD_MS)
        if self._last is not None and self.period_ms and ticks_diff(now, self._last) < self.period_ms:
            return  # within the peer's own period: what it decided last holds
        self._last = now
        self.decide(now, a.out)
        for c in range(self.core.nc):
            a.out[c] -= a.out[c] % 100  # the wire's 0.1 A
            a.fallback[c] = 0  # a peer's charger without its manager stops

    def apply(self, now_ms):
        # What a peer decided is set at once, up or down: no make-before-break.
        core, a = self.core, self.core.alloc
        for c in range(core.nc):
            if core.status[c] != ONLINE:
                continue
            t = a.out[c]
            if t < core.sent[c]:
                core.lowered[c] = 1
            core.sent[c] = core.permitted[c] = t
            core._send_fallback(c)
            core._command(c, now_ms)

    def users(self, cands, g, p):
        return [c for c in cands if g in self.groups_of[c] and self.on[c] & (1 << p)]

    def equal(self, cands, cap_of):
        """Equal shares of every fuse's cap between the candidates on it, each at most its
        maximum: on each fuse the ones that want less than an equal part keep what they have,
        the rest share what is left."""
        s = self.site
        share = {c: s.cmax[c] for c in cands}
        for g in range(len(s.group_ids)):
            for p in range(3):
                left = sorted(self.users(cands, g, p), key=lambda c: share[c])
                room = cap_of(g, p)
                while left:
                    each = max(0, room) // len(left)
                    if share[left[0]] <= each:
                        room -= share[left.pop(0)]
                        continue
                    for c in left:
                        share[c] = each
                    break
        return share


class Static(Peer):
    def decide(self, now, out):
        s = self.site
        cands = [c for c in range(self.core.nc) if self.wanting(c)]
        share = self.equal(cands, lambda g, p: s.limit[g * 3 + p])
        for c in range(self.core.nc):
            v = share.get(c, 0)
            out[c] = v if v >= s.cmin[c] else 0  # below the minimum: it waits


class SmartEvse(Peer):
    period_ms = SMART_PERIOD_MS

    def __init__(self, core):
        super().__init__(core)
        self.iset = 0  # IsetBalanced: what the active EVs share
        self.active = []
        self.no_current = 0
        self.stopped_until = None

    def decide(self, now, out):
        s, nc = self.site, self.core.nc
        for c in range(nc):
            out[c] = 0
        if self.stopped_until is not None:
            if ticks_diff(now, self.stopped_until) < 0:
                return
            self.stopped_until = None
        mains = min(s.limit[p] for p in range(3))  # MaxMains: the root's fuse
        base = max(s.limit[p] - self.headroom(0, p) for p in range(3))  # Baseload, worst phase
        self.active = [c for c in self.active if self.wanting(c)]
        for c in range(nc):
            # IsCurrentAvailable: one more minimum beside the others' and the base load.
            if self.wanting(c) and c not in self.active and \
                    (len(self.active) + 1) * s.cmin[c] + base <= mains:
                self.active.append(c)
                self.iset = mains - base  # a node joining: the balance starts afresh
        if not self.active:
            self.iset = 0
            return
        diff = mains - base - sum(self.most_drawn(c) for c in self.active)
        self.iset += diff // 4 if diff > 0 else diff
        self.iset = min(self.iset, sum(s.cmax[c] for c in self.active))
        floor = len(self.active) * max(s.cmin[c] for c in self.active)
        if self.iset < floor:
            self.iset = floor
            self.no_current += 1 if base + floor > mains else 0
        else:
            self.no_current = 0
        if self.no_current > 2:
            self.no_current = 0
            self.stopped_until = ticks_add(now, SMART_DELAY_MS)
            self.active = []
            return
        # Equal shares of the set point; the sub-groups' fuses as static circuit limits.
        share = self.equal(self.active, lambda g, p: self.iset if g == 0 else s.limit[g * 3 + p])
        for c in self.active:
            out[c] = max(share[c], s.cmin[c])


class Warp(Peer):
    period_ms = WARP_PERIOD_MS

    def __init__(self, core):
        super().__init__(core)
        n = core.nc
        self.on_since = [None] * n  # when it was switched on
        self.c_since = [None] * n  # in state C since
        self.energy = [0] * n  # mA*s allocated: the least comes on first
        self.active = []
        self.plugged = set()  # plugged in and seen: welcomed once
        self._rotated = None

    def decide(self, now, out):
        s, nc, a = self.site, self.core.nc, self.core.alloc
        if self._rotated is None:
            self._rotated = now
        for c in range(nc):
            self.energy[c] += out[c] * self.period_ms // 1000
            charging = self.core.status[c] == ONLINE and a.pilot[c] in CHARGING
            self.c_since[c] = (self.c_since[c] if self.c_since[c] is not None else now) if charging else None
            if not self.wanting(c):
                self.plugged.discard(c)
                if c in self.active:
                    self.active.remove(c)
        cap = [self.headroom(g, p) for g in range(len(s.group_ids)) for p in range(3)]
        waiting = [c for c in range(nc) if self.wanting(c) and c not in self.active]
        if waiting and ticks_diff(now, self._rotated) >= WARP_ROTATE_MS:
            self._rotated = now  # rotation: off, then on again by least energy
            self.active = []
            waiting = [c for c in range(nc) if self.wanting(c)]
        for c in waiting:
            if c not in self.plugged:
                # Just plugged in: switched on at once at its minimum (stage 2); the ones on
                # longest go off where that does not fit (stage 3).
                self.plugged.add(c)
                self._switch_on(c, now)
                self._shed(cap, keep=c)
        for c in sorted(waiting, key=lambda c: self.energy[c]):
            if c not in self.active and self._fits(c, cap):
                self._switch_on(c, now)
        share = self.equal(self.active, lambda g, p: cap[g * 3 + p])
        for c in range(nc):
            out[c] = 0
            if c not in self.active:
                continue
            v = share[c]
            if self.c_since[c] is not None and ticks_diff(now, self.c_since[c]) >= WARP_SETTLE_MS:
                v = min(v, self.most_drawn(c) + WARP_MARGIN_MA)  # what it is seen to take
            out[c] = max(v, s.cmin[c])  # switched on: at least its minimum

    def _switch_on(self, c, now):
        self.active.append(c)
        self.on_since[c] = now

    def _minima(self, g, p, cands):
        return sum(self.site.cmin[d] for d in self.users(cands, g, p))

    def _fits(self, c, cap):
        # The first charger needs its minimum; each further one 1.5 times it.
        need = self.site.cmin[c] * (WARP_ENABLE if self.active else 100) // 100
        for g in self.groups_of[c]:
            for p in range(3):
                if self.on[c] & (1 << p) and self._minima(g, p, self.active) + need > cap[g * 3 + p]:
                    return False
        return True

    def _shed(self, cap, keep):
        s = self.site
        for g in range(len(s.group_ids)):
            for p in range(3):
                while self._minima(g, p, self.active) > cap[g * 3 + p]:
                    on = [d for d in self.users(self.active, g, p) if d != keep]
                    if not on:
                        break
                    self.active.remove(min(on, key=lambda d: self.on_since[d]))
