# The site's electrics as a model: cars, other loads, PV, meters and fuses. Integers only
# (mA, ms, mWh); runs in MicroPython (the twin) and CPython (the plant simulator).

# Car behaviour, each with its reason.
CAR_STEP_MA = 500  # on-board chargers set their current in 0.5 A steps
TAPER_FROM = 800  # per mille of the battery: above 80 % the current tapers
TAPER_END_MA = 2000  # ... down to about 2 A just before full
# DESIGN.md: an other-load rise is the leader's to answer within 1 s and the EVs' to follow
# within 5 s more; an excess that the rise explains is excused that long, no longer.
RISE_MS = 6000
_NEVER = 1 << 60  # later than any run
WIRES = {"L123": (0, 1, 2), "L132": (0, 2, 1), "L213": (1, 0, 2), "L231": (1, 2, 0),
         "L312": (2, 0, 1), "L321": (2, 1, 0)}


class Car:
    """One EV on one charger: follows the pilot after its own delay, tapers, stops when full."""

    def __init__(self, spec, rnd, voltage):
        self.phases = spec.get("phases", 3)
        self.wired = self.phases  # the phases it draws on now: one behind a 1-phase relay
        self.max_ma = int(spec.get("max_a", 16) * 1000)
        self.capacity_mwh = int(spec.get("capacity_kwh", 60) * 1_000_000)
        self.energy_mwh = int(spec.get("soc", 0.3) * self.capacity_mwh)
        self.need_mwh = self.capacity_mwh  # charges to full unless it leaves first
        lo, hi = spec.get("follow_s", [1, 5])
        self.follow_ms = rnd.randint(lo * 1000, hi * 1000)
        self.voltage = voltage
        self.draw = 0  # mA per phase in use
        self.target = 0  # what it follows now
        # What it was asked, as (due ms, mA): each change of the pilot (or of its own wish) is
        # followed follow_ms after it, in order (IEC 61851-1: within 5 s of each change).
        self.changes = []
        self.delivered_mwh = 0
        # [from_s, to_s]: the car's own timer holds it at 0 A (pilot still C), as a car that waits
        # for cheap hours or warms its battery does; it draws again when it wakes.
        self.asleep_ms = [t * 1000 for t in spec.get("asleep_s", [0, 0])]

    def full(self):
        return self.energy_mwh >= self.capacity_mwh

    def pilot_mv(self, duty_offers):
        # B (9 V) until an offer is there and the car wants it, then C (6 V).
        return 6000 if duty_offers and not self.full() else 9000

    def limit(self):
        # Taper near full: from 80 % the car's own limit falls towards TAPER_END_MA.
        soc = self.energy_mwh * 1000 // self.capacity_mwh
        if soc <= TAPER_FROM:
            return self.max_ma
        span = 1000 - TAPER_FROM
        return max(TAPER_END_MA, self.max_ma - (self.max_ma - TAPER_END_MA) * (soc - TAPER_FROM) // span)

    def step(self, now_ms, dt_ms, offered_ma, contactor):
        changes = self.changes
        if not contactor or self.energy_mwh >= self.capacity_mwh:  # open, or full
            self.draw = self.target = 0
            if changes:
                self.changes = []
            return
        lim = self.limit()  # the energy moves only at the end of the step
        want = offered_ma if offered_ma < lim else lim
        asleep = self.asleep_ms
        if asleep[0] <= now_ms < asleep[1]:
            want = 0
        want -= want % CAR_STEP_MA
        if want != (changes[-1][1] if changes else self.target):
            changes.append((now_ms + self.follow_ms, want))
        while changes and now_ms >= changes[0][0]:
            self.target = changes.pop(0)[1]
        # An on-board charger may lower its draw itself (taper) at once, never raise it early.
        draw = min(self.target, lim - lim % CAR_STEP_MA)
        self.draw = draw
        if draw:
            mwh = self.voltage * draw * self.wired * dt_ms // 3_600_000
            self.energy_mwh += mwh
            self.delivered_mwh += mwh


def _cloud(minute):
    # A cloud cover per minute (0..999), the same on every run: a small integer hash.
    x = (minute * 2654435761 + 12345) & 0x3FFFFFFF
    return (x >> 7) % 1000


def site_of(scenario):
    """The scenario's site, parsed: given inline or as a path to its JSON file."""
    import json

    from ampshare.config import site as sitemod
    cfg = scenario["site"]
    if isinstance(cfg, str):
        with open(cfg) as f:
            cfg = json.load(f)
    return sitemod.parse(cfg)


class Plant:
    """Loads under each group, every fuse's overload accounting, every meter's reading."""

    def __init__(self, site, scenario):
        self.site = site
        self.ng = len(site.group_ids)
        self.limits = [site.limit[k] for k in range(3 * self.ng)]
        self.loads = scenario.get("loads", [])
        self.pv = scenario.get("pv", [])
        self.cars = [None] * len(site.charger_ids)
        wiring = scenario.get("wiring", {})
        self.wire = []
        for c, cid in enumerate(site.charger_ids):
            rot = wiring.get(cid)
            if rot is None:
                known = site.cwire[c * 3]
                rot = (site.cwire[c * 3], site.cwire[c * 3 + 1], site.cwire[c * 3 + 2]) if known >= 0 else (0, 1, 2)
            else:
                rot = WIRES[rot]
            self.wire.append(rot)
        nk = 3 * self.ng
        self.total = [0] * nk  # what each fuse carries now
        self.ev_total = [0] * nk
        self._car_d = [0] * len(site.charger_ids)  # what each car adds to ev_total, on how many phases
        self._car_w = [0] * len(site.charger_ids)
        self._other_through = [0] * nk  # the other loads' part of total, for the second _other_s
        self.overload_ev = [0] * nk  # mA*ms above the limit the EVs drew into, unexcused
        self.overload_step = [0] * nk  # excused: an other-load rise not yet 6 s old
        self.overload_other = [0] * nk  # other load alone above the limit
        self.over_since = [None] * nk  # when the EVs' part of an overload began
        self.longest_over_ms = 0
        self._window = [[] for _ in range(nk)]  # (t, other load) where it changed
        self.low = [0] * nk  # the least other load in each window, as _account last left it
        self._other_s = -1
        self._next_step = _NEVER  # the next second a load's profile steps (_through)
        # The fuses each group's phase p is under, its own first, as indices g*3+p: a charger's
        # current is added to every fuse it passes, walked once here rather than at each step.
        self.fuses = [[self._chain(g, p) for p in range(3)] for g in range(self.ng)]
        # Each charger's wired phases, k-th as its fuses: what a car draws on its k-th phase.
        self.car_fuses = [[self.fuses[site.cgroup[c]][self.wire[c][k]] for k in range(3)]
                          for c in range(len(site.charger_ids))]
        # The same for a car drawing on its first w phases (w 0..3), one list each: what settle()
        # walks for each car at each step.
        self.draw_fuses = [[[i for k in range(w) for i in fs[k]] for w in range(4)] for fs in self.car_fuses]
        # Each group's reserve on each phase, summed over its subtree: the other load that the
        # fallbacks must leave room for (DESIGN.md, invariant 2).
        self.reserve = [0] * nk
        for g in range(self.ng):
            for p in range(3):
                self._up(g, p, site.reserve[g * 3 + p], self.reserve)

    def other_at(self, g, now_s):
        """Other load directly in group g at time now_s: profile steps and PV, mA per phase."""
        gid = self.site.group_ids[g]
        out = [0, 0, 0]
        for load in self.loads:
            if load["group"] != gid:
                continue
            level = [0, 0, 0]
            for at, amps in load["profile"]:
                if at <= now_s:
                    level = amps if isinstance(amps, list) else [amps, amps, amps]
            for p in range(3):
                out[p] += int(level[p] * 1000)
        for pv in self.pv:
            if pv["group"] != gid:
                continue
            start, end = pv.get("start_s", 21600), pv.get("end_s", 75600)
            if start < now_s < end:
                # A sine-like day: a parabola through 0 at sunrise and sunset, peak at noon.
                x = (now_s - start) * 1000 // (end - start)
                shape = 4 * x * (1000 - x) // 1000
                cloud = 1000 - int(pv.get("clouds", 0) * 1000) * _cloud(now_s // 60) // 1000
                amps = int(pv["peak_a"] * 1000) * shape // 1000 * cloud // 1000
                for p in range(3):
                    out[p] -= amps
        return out

    def settle(self, now_ms):
        """Every fuse's current at now_ms: the loads of this second, the cars as they draw."""
        now_s = now_ms // 1000
        if now_s != self._other_s:
            # Loads and PV change by the second: what they put through every fuse is made
            # again once a second at most; without PV, only when a load's profile steps (or
            # time went back, or _other_s was set to -1: a load was changed).
            last, self._other_s = self._other_s, now_s
            if self.pv or last < 0 or now_s < last or now_s >= self._next_step:
                self._through(now_s)
        # The cars' part is kept from step to step: a car's share moves only when its draw or
        # the phases it draws on do (or it comes or goes).
        ev, draw_fuses, was_d, was_w = self.ev_total, self.draw_fuses, self._car_d, self._car_w
        for c, car in enumerate(self.cars):
            d = w = 0
            if car is not None:
                d, w = car.draw, car.wired
            if d != was_d[c] or w != was_w[c]:
                for i in draw_fuses[c][was_w[c]]:
                    ev[i] -= was_d[c]
                for i in draw_fuses[c][w]:
                    ev[i] += d
                was_d[c], was_w[c] = d, w
        total, through = self.total, self._other_through
        for k in range(3 * self.ng):
            total[k] = through[k] + ev[k]

    def _through(self, now_s):
        # The other loads through every fuse at now_s, and the next second a profile steps.
        nxt = _NEVER
        for load in self.loads:
            for at, _ in load["profile"]:
                if now_s < at < nxt:
                    nxt = at
        self._next_step = nxt
        through = self._other_through
        for k in range(3 * self.ng):
            through[k] = 0
        for g in range(self.ng):
            o = self.other_at(g, now_s)
            for p in range(3):
                for i in self.fuses[g][p]:
                    through[i] += o[p]

    def step(self, now_ms, dt_ms):
        self.settle(now_ms)
        self._account(now_ms, dt_ms)

    def _chain(self, g, p):
        out = []
        while g >= 0:
            out.append(g * 3 + p)
            g = self.site.parent[g]
        return out

    def _up(self, g, p, ma, into):
        for i in self.fuses[g][p]:
            into[i] += ma

    def rise(self, k):
        """How far the other load through fuse k rose in the last RISE_MS: the part of an
        excess the EVs may not have followed yet (_account keeps the window and its least
        value: asked after step())."""
        return self._window[k][-1][1] - self.low[k]

    def _account(self, now_ms, dt_ms):
        # Invariant 1 (realized), step by step. Above the limit, the part the other load alone
        # makes is nobody's to correct; of the EVs' part, as much as the other load rose in the
        # last 6 s is excused (the leader's second and the EVs' 5 s); the rest the EVs drew
        # into: what they were permitted was too much.
        total, evt, limits, lows, wins = self.total, self.ev_total, self.limits, self.low, self._window
        for k in range(3 * self.ng):
            t, e = total[k], evt[k]
            other = t - e
            win = wins[k]
            moved = False
            if not win or win[-1][1] != other:
                win.append((now_ms, other))
                moved = True
            # Keep the last change before the window too: it is the value at its start.
            while len(win) > 1 and now_ms - win[1][0] > RISE_MS:
                win.pop(0)
                moved = True
            if moved:  # the least value only changes with the window
                low = win[0][1]
                for _, v in win:
                    if v < low:
                        low = v
                lows[k] = low
            else:
                low = lows[k]
            excess = t - limits[k]
            if excess <= 0:
                if self.over_since[k] is not None:
                    self._close(k, now_ms)
                continue
            avoidable = min(excess, e)
            self.overload_other[k] += (excess - avoidable) * dt_ms
            if avoidable <= 0:
                self._close(k, now_ms)
                continue
            if self.over_since[k] is None:
                self.over_since[k] = now_ms
            excused = min(avoidable, max(0, other - low))
            self.overload_step[k] += excused * dt_ms
            self.overload_ev[k] += (avoidable - excused) * dt_ms

    def _close(self, k, now_ms):
        # An episode of the EVs' overload ended (or the run did): how long did it last?
        if self.over_since[k] is not None:
            self.longest_over_ms = max(self.longest_over_ms, now_ms - self.over_since[k])
            self.over_since[k] = None

    def finish(self, end_ms):
        """The run ends: an overload still open counts to its end."""
        for k in range(3 * self.ng):
            self._close(k, end_ms)

    def meter(self, g):
        """What a meter at group g reads now: everything through its fuse, per phase."""
        return self.total[g * 3], self.total[g * 3 + 1], self.total[g * 3 + 2]

    def charger_meas(self, c):
        """What charger c's own meter reads, on its L1, L2, L3."""
        car = self.cars[c]
        out = [0, 0, 0]
        if car is not None:
            for k in range(car.wired):
                out[k] = car.draw
        return out
