"""The allocation rules of DESIGN.md and the issue, written plainly in CPython.

The property tests check the firmware's answers against these definitions: what each fuse
may carry, which chargers use which fuse and phase, and what counts as other load.
"""
from fractions import Fraction

Q = 100  # mA: the allocation step
ROT = {"L123": (0, 1, 2), "L132": (0, 2, 1), "L213": (1, 0, 2),
       "L231": (1, 2, 0), "L312": (2, 0, 1), "L321": (2, 1, 0)}


def ma(amps):
    return int(round(Fraction(str(amps)) * 1000))


def three(v):
    return [ma(x) for x in v] if isinstance(v, list) else [ma(v)] * 3


class Reference:
    def __init__(self, site, state, credited=None):
        self.site, self.state, self.credited = site, state, credited
        site_min = ma(site.get("min_current_a", 6))
        self.groups = {}
        for g in site["groups"]:
            limit = three(g["limit_a"])
            reserve = g.get("reserve_a")
            reserve = three(reserve) if reserve is not None else (limit if g.get("meter") else [0, 0, 0])
            self.groups[g["id"]] = {"parent": g.get("parent"), "limit": limit,
                                    "reserve": reserve, "meter": g.get("meter")}
        self.children = {gid: [] for gid in self.groups}
        for gid, g in self.groups.items():
            if g["parent"]:
                self.children[g["parent"]].append(gid)
        cstate = state.get("chargers", {})
        self.chargers = {}
        for c in site.get("chargers", []):
            st = cstate.get(c["id"], {})
            hi = ma(c["max_a"])
            if "connector_max_a" in c:
                hi = min(hi, ma(c["connector_max_a"]))
            lo = max(site_min, ma(c["min_a"])) if "min_a" in c else site_min
            letter = st.get("state", "A")
            meas = None
            if "measured_a" in st:
                m = st["measured_a"]
                meas = [ma(x) for x in m] if isinstance(m, list) else [ma(m)]
                meas = (meas + [0, 0])[:3] if len(meas) == 1 else meas
            rot = c.get("rotation", "unknown")
            self.chargers[c["id"]] = {
                "group": c["group"], "lo": lo, "hi": hi, "phases": c.get("phases", 3),
                "wire": ROT.get(rot), "prio": c.get("priority", 0),
                "wants": letter in "BCD" and c.get("mode", "fast") != "off",
                "charging": letter in "CD", "meas": meas,
                "settled": letter in "CD" and meas is not None and st.get("charging_s", 0) >= 60,
                "offered": ma(st["offered_a"]) if "offered_a" in st else (hi if meas is not None else 0),
            }

    def ancestors(self, gid):
        while gid:
            yield gid
            gid = self.groups[gid]["parent"]

    def phases(self, cid):
        c = self.chargers[cid]
        if c["phases"] == 3 or c["wire"] is None:
            return (0, 1, 2)
        return (c["wire"][0],)

    def uses(self, cid):
        return [(g, p) for g in self.ancestors(self.chargers[cid]["group"]) for p in self.phases(cid)]

    def most_credit(self, cid):
        """What a charger of unknown wiring may be credited on every site phase: the least it
        draws on a phase its car may take current on (a 1-phase charger's one; a 3-phase one's
        three, or once its car has settled those drawing more than 1 A), and no more than it
        may be given; the allocator credits less where it gives less."""
        c = self.chargers[cid]
        own = self.own(cid)
        if not self.unsure(cid):
            return min(own)  # a charger phase on every site phase, each drawing at least that
        live = [own[k] for k in self.live(cid)]
        return min(min(live or own), c["hi"] if c["wants"] else 0)

    def unsure(self, cid):
        """A charger of unknown wiring credited on a site phase it may not draw on: a 1-phase
        one, or a 3-phase one whose settled car draws on one or two of its phases."""
        return self.chargers[cid]["phases"] == 1 or 0 < len(self.live(cid)) < 3

    def live(self, cid):
        """Its charger phases drawing more than 1 A once its car has settled (none before)."""
        c = self.chargers[cid]
        return [k for k in range(c["phases"]) if c["settled"] and c["meas"][k] > 1000]

    def own(self, cid):
        """What it draws on each of its phases, as credited: at most the offer in force,
        nothing while not charging, nothing unmeasured."""
        c = self.chargers[cid]
        cap = min(c["offered"], c["hi"]) if c["charging"] else 0
        return [max(0, min(c["meas"][k], cap)) if c["meas"] is not None else 0 for k in range(c["phases"])]

    def site_draw(self, cid):
        """What the charger draws now on each site phase, as the rules count it."""
        c = self.chargers[cid]
        own = self.own(cid)
        if c["wire"] is None:
            # Counted on every site phase at its offer, it is credited on every one the least it
            # draws on a phase its car may take current on: a 1-phase charger's one; a 3-phase
            # one's three, or once its car has settled those drawing more than 1 A. No more
            # than it may be given, and less where it is given less (self.credited: the answer).
            x = self.most_credit(cid)
            if self.credited is not None and self.unsure(cid):
                x = self.credited[cid]  # at most that, and at most what it is given (the test checks)
            return [x] * 3
        out = [0, 0, 0]
        for k, d in enumerate(own):
            out[c["wire"][k]] = d
        return out

    def capacities(self, metered=True):
        """(group, phase) -> what the chargers under that group may take on that phase."""
        live = self.state.get("meters", {}) if metered else {}
        under = {gid: [0, 0, 0] for gid in self.groups}
        for cid, c in self.chargers.items():
            d = self.site_draw(cid)
            for g in self.ancestors(c["group"]):
                for p in range(3):
                    under[g][p] += d[p]
        memo = {}

        def other(gid, p):  # (raw, effective, clipped export below) other load
            if (gid, p) not in memo:
                g = self.groups[gid]
                kids = [other(k, p) for k in self.children[gid]]
                # The export each child could not pass, and what its descendants could not:
                # a meter sees all of it, so none of it may count as headroom.
                clipped = sum(e - r + below for r, e, below in kids)
                if g["meter"] and g["meter"] in live:
                    reading = max(-4_000_000, min(4_000_000, three(live[g["meter"]])[p]))
                    raw = reading - under[gid][p] + clipped
                else:
                    raw = g["reserve"][p] + sum(e for _, e, _ in kids)
                memo[gid, p] = (raw, max(raw, -g["limit"][p]), clipped)
            return memo[gid, p]

        return {(gid, p): self.groups[gid]["limit"][p] - other(gid, p)[1]
                for gid in self.groups for p in range(3)}

    def totals(self, alloc):
        """(group, phase) -> sum of the allocations that count against it."""
        tot = {(gid, p): 0 for gid in self.groups for p in range(3)}
        for cid, a in alloc.items():
            for k in self.uses(cid):
                tot[k] += a
        return tot

    def most_servable(self, cap, among=None, beside=()):
        """Brute force: the largest number of wanting chargers (of `among`, default all) that
        fit at their minimum beside the chargers `beside`, also at their minimum."""
        want = [c for c in (among if among is not None else self.chargers) if self.chargers[c]["wants"]]
        best = 0
        for mask in range(1 << len(want)):
            chosen = [want[i] for i in range(len(want)) if mask >> i & 1]
            if len(chosen) <= best:
                continue
            tot = self.totals({c: self.chargers[c]["lo"] for c in chosen + list(beside)})
            if all(tot[k] <= cap[k] for k in tot if tot[k]):
                best = len(chosen)
        return best
