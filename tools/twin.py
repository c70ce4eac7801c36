# make twin SCENARIO=examples/scenarios/….json [TRACE=file]: a whole site in one process of the
# unix port under a virtual clock: the leader core, a follower core per charger, the plant and
# a lossy network, faults injected at given times. Prints a JSON summary.
import json
import random
import sys
import time
from time import ticks_add

from ampshare.core.follower import Follower
from ampshare.core.leader import Leader
from ampshare.wire.follower import FollowerPort
from ampshare.wire.leader import LeaderPort
from ampshare.core.pilot import DUTY_FULL, offered_by
from ampshare.core.pilot import EV_FOLLOW_MS  # a car may draw an offer up to 5 s after it was lowered

sys.path.append("tools")
from plant import RISE_MS, Car, Plant, site_of  # noqa: E402

# The shells sample the pilot at 10 Hz (a contactor opens within 100 ms); a scenario may take
# a coarser step ("step_ms") for long runs: the control period (1 s) and the EVs' 1-5 s stay
# far above it.
STEP_MS = 100
METER_MS = 1000  # a meter is polled once a second
LEADER = -1
_NEVER = 1 << 60  # later than any run (and a small int on the 64-bit port)


class Net:
    """Datagrams between the leader and each follower, with loss, duplication, reordering,
    delay and partitions, all drawn from one seeded generator."""

    def __init__(self, spec):
        self.loss = int(spec.get("loss", 0) * 1000)
        self.dup = int(spec.get("dup", 0) * 1000)
        self.reorder = int(spec.get("reorder", 0) * 1000)
        self.delay = spec.get("delay_ms", [2, 20])
        self.partitions = spec.get("partitions", [])
        self.queue = []
        self.first = _NEVER  # when the earliest datagram in the queue arrives
        self.sent = self.lost = 0

    def cut(self, now_ms, charger, cids):
        for t0, t1, who in self.partitions:
            if t0 * 1000 <= now_ms < t1 * 1000 and (who == "all" or cids.index(who) == charger):
                return True
        return False

    def send(self, now_ms, charger, to, data, cids):
        self.sent += 1
        randint = random.randint
        if randint(0, 999) < self.loss or (self.partitions and self.cut(now_ms, charger, cids)):
            self.lost += 1
            return
        copies = 2 if randint(0, 999) < self.dup else 1
        lo, hi = self.delay
        for _ in range(copies):
            at = now_ms + randint(lo, hi)
            if randint(0, 999) < self.reorder:
                at += randint(0, 1000)  # overtaken by later packets
            self.queue.append((at, to, data))
            if at < self.first:
                self.first = at

    def due(self, now_ms):
        if now_ms < self.first:
            return ()  # nothing arrives yet: the queue is not walked
        ready, left, first = [], [], _NEVER
        for m in self.queue:  # one pass, each part in the order sent
            if m[0] <= now_ms:
                ready.append(m)
            else:
                left.append(m)
                if m[0] < first:
                    first = m[0]
        self.queue, self.first = left, first
        ready.sort(key=_arrival)
        return ready


def _arrival(m):
    return m[0]


class Twin:
    def __init__(self, scenario, policy=None):
        self.site = site_of(scenario)  # the site as it is wired: the plant's
        self.scn = scenario
        # make bench-policy: a peer's sharing (tools/policies.py) in place of ampshare's.
        self.policy = policy
        # The configuration the leader runs on: the site's, unless the scenario starts it on
        # another ("leader_site") and changes it later (a "site_change" fault).
        self.lsite = self._configured(scenario.get("leader_site"))
        self.step_ms = scenario.get("step_ms", STEP_MS)
        if 1000 % self.step_ms:
            raise ValueError("step_ms must divide a second")
        # The cores get the board's ticks, not the virtual time: "ticks_start_ms" sets the
        # ticks at 0 s (negative: they wrap that far into the run). Every timer must hold
        # across the wrap (ticks_diff, never "<") and beyond 32 bits (the unix port's ticks).
        self._t0 = ticks_add(0, scenario.get("ticks_start_ms", 0))
        seed = scenario.get("seed", 1)
        random.seed(seed)
        self.plant = Plant(self.site, scenario)
        self.net = Net(scenario.get("network", {}))
        self.cids = self.site.charger_ids
        n = len(self.cids)
        self.keys = [bytes([(c * 37 + i) & 255 for i in range(32)]) for c in range(n)]
        self.uids = [bytes([0x24, 0x0A, 0xC4, 0, c // 256, c % 256]) for c in range(n)]
        self.f_epoch = [1] * n
        self.l_epoch = 1
        self.leader = self._new_leader(0)  # the leader's port; its core is .core
        self.ports = [self._new_follower(c, 0) for c in range(n)]
        self.followers = [p.core for p in self.ports]
        self.leader_down_until = None
        self.follower_down_until = [None] * n
        self.meter_silent = {}  # meter id -> until ms
        self.fallback_ms = [0] * n
        self.pauses = [0] * n
        self.starts = [0] * n
        self.switches = [0] * n  # 3<->1 relay moves
        self._one = [False] * n
        self.under_load = 0
        # The chargers' draw at the root's meter, mA*s summed over phases: what the surplus
        # covered and what came from the grid (the root's net import, up to that draw).
        self.from_surplus = self.from_grid = 0
        self.rejected = 0
        self.energy_mwh = [0] * n
        self.had_car = [False] * n  # the cars of equal need that fairness is measured over
        self._offered = [0] * n
        self._level = [0] * n
        self._duty = [0] * n
        self._drawn = [-1] * n
        self._offer_duty = [-1] * n  # each pilot's duty and the current it offers, as last read
        self._offer_ma = [0] * n
        # Invariants 2 and 3 (docs/leader.md), counted from the followers' own state and the
        # plant, not from the leader's: mA*ms beyond a fuse, and the first second it happened.
        self._offers = [[(0, 0)] for _ in range(n)]  # (t, offer) changes: 5 s and the one before
        self._most = [0] * n  # the highest offer in each window, as _may_draw last found it
        self.fb_over = self.mbb_over = 0
        self.fb_first = self.mbb_first = None
        self._fb = [0] * (3 * len(self.site.group_ids))
        self._may = [0] * (3 * len(self.site.group_ids))
        # The fuses each charger's fallback counts on (its configured phases) and each car's
        # draw on (its first 1, 2 or 3 wired phases).
        self._spare = [r - lim for r, lim in zip(self.plant.reserve, self.plant.limits)]  # reserve less limit, a fuse
        self._fbv = [0] * n  # what each charger adds to _fb and to _may now, on how many phases
        self._mayv = [0] * n
        self._mayw = [0] * n
        self._wired_fuses = self.plant.draw_fuses
        self._fb_fuses = [self._wired_fuses[c][self.site.cphases[c]] for c in range(n)]

    def _configured(self, cfg):
        # A configuration's chargers are the first of the site's, in its order (a charger is
        # added at the end), and its meters are the site's, by id: the twin's followers and
        # meter readings keep their indices.
        if cfg is None:
            lsite = self.site
        else:
            lsite = site_of({"site": cfg})
            if list(lsite.charger_ids) != list(self.site.charger_ids[:len(lsite.charger_ids)]):
                raise ValueError("a configuration's chargers must be the first of the site's, in order")
        self._lmeter = [lsite.meter_ids.index(mid) if mid in lsite.meter_ids else -1 for mid in self.site.meter_ids]
        return lsite

    def _new_leader(self, now_ms):
        leader = LeaderPort(Leader(self.lsite, self._t(now_ms)), self.l_epoch)
        for c in range(len(self.lsite.charger_ids)):
            leader.add_follower(c, self.uids[c], self.keys[c])
        if self.policy:
            from policies import install
            install(self.policy, leader.core)
        return leader

    def _new_follower(self, c, now_ms):
        car_max = int(self.site.cmax[c])
        core = Follower(car_max, self.site.cphases[c], bool(self.site.cswitch[c]), self._t(now_ms))
        return FollowerPort(core, self.uids[c], b"", self.f_epoch[c], key=self.keys[c], charger=c)

    def _t(self, now_ms):
        return ticks_add(self._t0, now_ms)

    # ---- faults and arrivals --------------------------------------------------------

    def _events(self, now_ms):
        now_s, t = now_ms // 1000, now_ms % 1000
        if t:
            return
        for spec in self.scn.get("cars", []):
            c = self.cids.index(spec["charger"])
            if spec.get("arrive_s", 0) == now_s:
                self.plant.cars[c] = Car(spec, random, self.site.voltage)
                self.had_car[c] = True
                f = self.followers[c]
                self._seen_offer(c, now_ms, f.offered if f else 0)  # it saw no earlier offer
            if spec.get("leave_s") == now_s and self.plant.cars[c] is not None:
                self.energy_mwh[c] += self.plant.cars[c].delivered_mwh
                self.plant.cars[c] = None
        for f in self.scn.get("faults", []):
            if f["at_s"] != now_s:
                continue
            kind = f["kind"]
            if kind == "leader_crash":
                self.leader = None
                self.leader_down_until = now_ms + f.get("restart_s", 30) * 1000
            elif kind == "site_change":
                # A site saved on the page is applied by the leader starting again on it
                # (docs/api.md): gone for the restart, then a new boot epoch on the new site.
                self.lsite = self._configured(f.get("site", self.scn["site"]))
                self.leader = None
                self.leader_down_until = now_ms + f.get("restart_s", 2) * 1000
            elif kind == "follower_crash":
                c = self.cids.index(f["charger"])
                self.followers[c] = self.ports[c] = None
                self._seen_offer(c, now_ms, 0)  # its relay drops: the car stops at once
                self.follower_down_until[c] = now_ms + f.get("restart_s", 30) * 1000
            elif kind == "meter_silent":
                self.meter_silent[f["meter"]] = now_ms + f.get("for_s", 30) * 1000
            elif kind == "external" and self.leader is not None:
                # An energy manager's request: {"target": "group"|"charger", "id", "limit_a" or
                # "limit_w" (neither: clear), "watchdog_s" (default 30; 0: until cleared)}.
                a = f.get("limit_a")
                self.leader.core.limit(self._t(now_ms), f["target"], f["id"], None if a is None else int(a * 1000),
                                  f.get("limit_w"), f.get("watchdog_s", 30) * 1000)
        if self.leader is None and now_ms >= self.leader_down_until:
            self.l_epoch += 1
            self.leader = self._new_leader(now_ms)
        for c, until in enumerate(self.follower_down_until):
            if until is not None and now_ms >= until:
                self.f_epoch[c] += 1
                self.ports[c] = self._new_follower(c, now_ms)
                self.followers[c] = self.ports[c].core
                self._level[c] = 0
                self.follower_down_until[c] = None

    # ---- one step ---------------------------------------------------------------------

    def step(self, now_ms):
        if now_ms % 1000 == 0:  # arrivals, departures and faults come on the second
            self._events(now_ms)
        t = self._t(now_ms)  # the cores' clock
        plant = self.plant
        for when, to, data in self.net.due(now_ms):
            if to == LEADER:
                if self.leader is not None and not self.leader.receive(t, data):
                    self.rejected += 1
            elif self.ports[to] is not None and not self.ports[to].receive(t, data):
                self.rejected += 1
        if self.leader is not None and now_ms % METER_MS == 0:
            plant.settle(now_ms)  # a meter reads the fuse as it is now
            for g, m in enumerate(self.site.gmeter):
                if m < 0:
                    continue
                mid = self.site.meter_ids[m]
                if self.meter_silent.get(mid, -1) > now_ms:
                    continue
                if self._lmeter[m] < 0:
                    continue  # a meter the configuration does not name
                l1, l2, l3 = plant.meter(g)
                self.leader.core.meter(t, self._lmeter[m], l1, l2, l3)
        if self.leader is not None:
            for c, data in self.leader.tick(t):
                self.net.send(now_ms, c, c, data, self.cids)
        self._followers(now_ms, t)
        plant.step(now_ms, self.step_ms)
        self._invariants(now_ms)
        if now_ms % 1000 == 0 and self.site.gmeter[0] >= 0:
            self._energy_split()

    def _invariants(self, now_ms):
        # 2. Fallback: every follower at the fallback of the last COMMAND it took, on every
        #    phase its charger is wired to, every group's other load at its reserve_a.
        # 3. Make-before-break: what each car may still draw (the highest offer in force over
        #    the last 5 s), on the phases it draws on, beside the other load there now; an
        #    other-load rise of the last 6 s excused as far as it goes (invariant 1's rule).
        #    Both sums are kept from step to step: a charger's part moves only when its
        #    fallback, what its car may draw or the phases it draws on do.
        p = self.plant
        fb, may, fbv, mayv, mayw = self._fb, self._may, self._fbv, self._mayv, self._mayw
        nk = len(fb)
        cars, wired_fuses, fb_fuses = p.cars, self._wired_fuses, self._fb_fuses
        offers, most = self._offers, self._most
        for c, f in enumerate(self.followers):
            v = f.fallback if f is not None and f.heard else 0
            if v != fbv[c]:
                dv = v - fbv[c]
                fbv[c] = v
                for i in fb_fuses[c]:
                    fb[i] += dv
            car = cars[c]
            d = w = 0
            if car is not None:
                w, hist = car.wired, offers[c]
                # The same offer and no change leaving the window: its highest stands.
                if hist[-1][1] == (f.offered if f is not None else 0) and \
                        (len(hist) == 1 or now_ms - hist[1][0] < EV_FOLLOW_MS):
                    d = most[c]
                else:
                    d = self._may_draw(now_ms, c, f)
            if d != mayv[c] or w != mayw[c]:
                for i in wired_fuses[c][mayw[c]]:
                    may[i] -= mayv[c]
                for i in wired_fuses[c][w]:
                    may[i] += d
                mayv[c], mayw[c] = d, w
        # Over by min(fb, reserve + fb - limit) and by min(may, other + may - limit) less the
        # rise; the rise is the other load now less the least of its window (plant.rise), so the
        # second is min(may - other + least, least + may - limit). Each is over only where both
        # of its terms are, and the second term is looked at first: far from the limit, it is
        # the only one.
        dt, limits, spare, lows, total, ev = self.step_ms, p.limits, self._spare, p.low, p.total, p.ev_total
        for k in range(nk):
            v = fb[k]
            if v + spare[k] > 0 and v > 0:
                self.fb_over += min(v, v + spare[k]) * dt
                if self.fb_first is None:
                    self.fb_first = now_ms // 1000
            m = may[k]
            x = lows[k] + m - limits[k]
            if x > 0:
                over = min(x, m - total[k] + ev[k] + lows[k])
                if over > 0:
                    self.mbb_over += over * dt
                    if self.mbb_first is None:
                        self.mbb_first = now_ms // 1000

    def _seen_offer(self, c, now_ms, v):
        # The offers car c may still follow start again at v.
        self._offers[c] = [(now_ms, v)]
        self._most[c] = v

    def _may_draw(self, now_ms, c, f):
        hist = self._offers[c]
        v = f.offered if f is not None else 0
        moved = False
        if hist[-1][1] != v:
            hist.append((now_ms, v))
            moved = True
        while len(hist) > 1 and now_ms - hist[1][0] >= EV_FOLLOW_MS:
            hist.pop(0)  # the entry before the window is the offer at its start
            moved = True
        if not moved:
            return self._most[c]  # the highest only changes with the window
        most = 0
        for _, o in hist:
            if o > most:
                most = o
        self._most[c] = most
        return most

    def _energy_split(self):
        drawn = 0
        for car in self.plant.cars:
            if car is not None:
                drawn += car.draw * car.wired
        imported = sum(self.plant.meter(0))
        grid = min(drawn, imported) if imported > 0 else 0
        self.from_grid += grid
        self.from_surplus += drawn - grid

    def _followers(self, now_ms, t):
        # Every charger's step, in one loop: the twin's lists are looked up once a step, not
        # once a charger (an attribute costs a lookup in a map of dozens).
        cars, ports, net, cids, step_ms = self.plant.cars, self.ports, self.net, self.cids, self.step_ms
        levels, duties, offer_duty, offer_ma = self._level, self._duty, self._offer_duty, self._offer_ma
        ones, drawn, offered_was, fallback_ms = self._one, self._drawn, self._offered, self.fallback_ms
        second = now_ms % 1000 == 0
        for c, f in enumerate(self.followers):
            car = cars[c]
            if f is None:
                if car is not None:
                    car.step(now_ms, step_ms, 0, False)  # a resetting board drops its relay
                continue
            duty = f.duty
            level = 12000 if car is None else car.pilot_mv(duty < DUTY_FULL)
            if level != levels[c] or duty != duties[c]:
                # The pilot's levels only change with the car or the duty: sampling an
                # unchanged pilot again tells the follower nothing new, so the twin skips it.
                f.sample(t, level, -12000)
                duty = f.duty
                levels[c], duties[c] = level, duty
            if duty != offer_duty[c]:  # what the car reads from the duty, as it changes
                offer_duty[c], offer_ma[c] = duty, offered_by(duty)
            one = ones[c]
            if car is not None:
                # The relay only moves with the contactor open (the follower's order): the
                # car draws on the phases the relay leaves it.
                car.wired = 1 if f.one_phase else car.phases
                if f.one_phase != one:
                    self._relay(c, f, car)  # moved on a COMMAND
                    one = ones[c]
                car.step(now_ms, step_ms, offer_ma[c], f.contactor)
                d = car.draw
                if d != drawn[c] or second:
                    # The charger's own meter (plant.charger_meas), read when it changed and
                    # each second for the energy: reading it again unchanged tells the
                    # follower nothing.
                    drawn[c] = d
                    n = car.wired
                    f.measure(d, d if n > 1 else 0, d if n > 2 else 0, car.delivered_mwh // 1000)
            offered, was = f.offered, offered_was[c]
            if was and not offered:
                self.pauses[c] += 1
            if offered and not was:
                self.starts[c] += 1
            offered_was[c] = offered
            out = ports[c].tick(t)
            if car is not None and f.one_phase != one:
                self._relay(c, f, car)  # moved by the follower's own timers, at this instant
            if out is not None:
                net.send(now_ms, c, LEADER, out, cids)
            if f.at_fallback:
                fallback_ms[c] += step_ms

    def _relay(self, c, f, car):
        # The relay moved (the callers look first: a call each step and charger costs).
        self._one[c] = f.one_phase
        self.switches[c] += 1
        if f.contactor or car.draw:
            self.under_load += 1  # a relay that moves under load: never

    # ---- the run --------------------------------------------------------------------

    def run(self, trace_path=None, rows=None):
        """Run the scenario; each second goes to the trace file and/or `rows` (anything with append)."""
        duration = self.scn.get("duration_s", 3600) * 1000
        trace = open(trace_path, "w") if trace_path else None
        for now in range(0, duration, self.step_ms):
            self.step(now)
            if now % 1000 == 0 and (trace is not None or rows is not None):
                row = self._second(now)
                if trace is not None:
                    trace.write(json.dumps(row))
                    trace.write("\n")
                if rows is not None:
                    rows.append(row)
        if trace is not None:
            trace.close()
        self.plant.finish(duration)
        return self.summary()

    def _second(self, now_ms):
        p = self.plant
        return {"t": now_ms // 1000,
                "leader": self.leader is not None,
                "chargers": {cid: {"offered_a": f.offered // 100 / 10 if f else None,
                                   "fallback_a": f.fallback // 100 / 10 if f else None,
                                   "at_fallback": f.at_fallback if f else None,
                                   "car": p.cars[c] is not None,
                                   "draw_a": p.cars[c].draw / 1000 if p.cars[c] else 0}
                             for c, (cid, f) in enumerate(zip(self.cids, self.followers))},
                "groups": {gid: [p.total[g * 3 + k] / 1000 for k in range(3)]
                           for g, gid in enumerate(self.site.group_ids)}}

    def summary(self):
        p, site = self.plant, self.site
        over = {}
        for g, gid in enumerate(site.group_ids):
            for k in range(3):
                i = g * 3 + k
                over["%s:L%d" % (gid, k + 1)] = {"ev_As": _as(p.overload_ev[i]),
                                                 "step_As": _as(p.overload_step[i]),
                                                 "other_As": _as(p.overload_other[i])}
        energy = {}
        for c, cid in enumerate(self.cids):
            car = p.cars[c]
            energy[cid] = (self.energy_mwh[c] + (car.delivered_mwh if car else 0)) // 1000
        ev = sum(p.overload_ev)
        return {"energy_wh": energy, "fairness": _jain([energy[cid] for c, cid in enumerate(self.cids)
                                                        if self.had_car[c]]), "overload": over,
                "longest_overload_s": p.longest_over_ms / 1000,
                # One figure per invariant (docs/leader.md), ampere-seconds beyond a fuse.
                "invariants": {"realized_ev_As": _as(ev),
                               "fallback_As": _as(self.fb_over), "fallback_first_s": self.fb_first,
                               "make_before_break_As": _as(self.mbb_over), "make_before_break_first_s": self.mbb_first},
                "packets": {"sent": self.net.sent, "lost": self.net.lost, "rejected": self.rejected},
                "fallback_s": {cid: self.fallback_ms[c] // 1000 for c, cid in enumerate(self.cids)},
                "pauses": {cid: self.pauses[c] for c, cid in enumerate(self.cids)},
                "starts": {cid: self.starts[c] for c, cid in enumerate(self.cids)},
                "phase_switches": {cid: self.switches[c] for c, cid in enumerate(self.cids)},
                "switched_under_load": self.under_load,
                # The chargers' energy at the root's meter: from the surplus, and from the grid.
                "chargers_wh": {"surplus": self.from_surplus * site.voltage // 3_600_000,
                                "grid": self.from_grid * site.voltage // 3_600_000}}


def _jain(xs):
    # Jain's fairness index of the energies: 1.0 when all received alike, 1/n when one took all.
    # Three decimals, in integers (the twin runs in the unix port and replays bit for bit).
    total, squares = sum(xs), sum(x * x for x in xs)
    if not squares:
        return None
    return (total * total * 1000 // (len(xs) * squares)) / 1000


def _as(ma_ms):
    # mA*ms to ampere-seconds, three decimals, as text-exact JSON numbers
    return ma_ms // 1000 / 1000


class Rows:
    """A sink for run(): keeps only the trace rows of seconds first..last."""

    def __init__(self, first, last):
        self.first = first
        self.last = last
        self.kept = []

    def append(self, row):
        if self.first <= row["t"] <= self.last:
            self.kept.append(row)


def main(argv):
    timed = "--time" in argv
    args = [a for a in argv[1:] if a != "--time"]
    policy = None
    if "--policy" in args:
        i = args.index("--policy")
        policy = args[i + 1]
        del args[i:i + 2]
    if not args:
        print("usage: twin.py [--time] [--policy static|warp|smartevse] SCENARIO.json [TRACE.jsonl]", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        scenario = json.load(f)
    t0 = time.ticks_ms()
    summary = Twin(scenario, policy).run(args[1] if len(args) > 1 else None)
    if timed:
        print("%s: %d s simulated in %d ms" % (args[0], scenario.get("duration_s", 3600),
                                              time.ticks_diff(time.ticks_ms(), t0)), file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
