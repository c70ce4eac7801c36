"""A fuse's view of an allocation, kept apart from the allocator's model on purpose.

reference.py states the sharing rules; this file states only what a fuse would see, from the
configuration and the state document alone:

- a charger's current flows on the site phases its car draws on (after its first minute, the
  phases measured drawing); before that, and for its fallback, on every phase it is wired to
  (all three where the rotation is unknown);
- the other load through a metered fuse is the meter less the chargers' measured draws; a
  charger of unknown wiring adds the most it could over every way it may be wired (adds());
  through a fuse whose meter is absent or silent it is each group's reserve_a, summed over
  the groups below it (a metered group's reserve defaults to its whole limit).

Nothing here caps a measurement at an offer, clips an export or rounds to a quantum: where
the allocator is stricter, this is more lenient, never the other way round.
"""
from reference import ROT, ma, three

SETTLED_S = 60  # the car's first minute: it may bring its phases up one by one


def _wired(c):
    rot = ROT.get(c.get("rotation", "unknown"))
    if rot is None:
        return (0, 1, 2)
    return rot[:c.get("phases", 3)]


class Fuses:
    def __init__(self, site, state):
        self.groups = {g["id"]: g for g in site["groups"]}
        self.parent = {g["id"]: g.get("parent") for g in site["groups"]}
        self.chargers = {c["id"]: c for c in site["chargers"]}
        self.meters = state.get("meters", {})
        self.cstate = state.get("chargers", {})

    def under(self, cid):
        g = self.chargers[cid]["group"]
        while g:
            yield g
            g = self.parent[g]

    def below(self, gid):
        """gid and every group under it."""
        return [h for h in self.groups if gid in self._up(h)]

    def _up(self, gid):
        out = []
        while gid:
            out.append(gid)
            gid = self.parent[gid]
        return out

    def limit(self, gid):
        return three(self.groups[gid]["limit_a"])

    def reserve(self, gid):
        g = self.groups[gid]
        if "reserve_a" in g:
            return three(g["reserve_a"])
        return self.limit(gid) if g.get("meter") else [0, 0, 0]

    def measured(self, cid):
        m = self.cstate.get(cid, {}).get("measured_a")
        if m is None:
            return None
        vals = [ma(x) for x in m] if isinstance(m, list) else [ma(m)]
        return (vals + [0, 0])[:3]

    def drawing(self, cid):
        """The site phases the car in this charger may draw on now."""
        c = self.chargers[cid]
        wired = _wired(c)
        if c.get("rotation", "unknown") not in ROT:
            return set(wired)
        return {wired[k] for k in self.drawing_own(cid)}

    def draws(self, cid):
        """What the charger is measured drawing on each site phase it surely loads."""
        c = self.chargers[cid]
        meas = self.measured(cid)
        out = [0, 0, 0]
        if meas is None or self.cstate.get(cid, {}).get("state") not in ("C", "D"):
            return out
        rot = ROT.get(c.get("rotation", "unknown"))
        if rot is None:
            return out  # on no phase it surely is: see adds()
        for k in range(c.get("phases", 3)):
            out[rot[k]] = meas[k]
        return out

    def adds(self, cid, a, p, fallback=False):
        """What charger cid at current a adds to a fuse's site phase p beyond its other load.
        Unknown rotation: the most it adds over every way it could be wired, from what the
        meter shows of it now (d on the phase each charger phase is on) to a on the charger
        phases its car may draw on: a 1-phase charger a - d on its one phase or nothing
        elsewhere; a 3-phase charger's phases cover every site phase."""
        c = self.chargers[cid]
        if fallback:
            return a if p in _wired(c) else 0
        if c.get("rotation", "unknown") in ROT:
            return a if p in self.drawing(cid) else 0
        meas = self.measured(cid)
        if meas is None or self.cstate.get(cid, {}).get("state") not in ("C", "D"):
            return a  # nothing of it credited: a on whichever phase it is
        n = c.get("phases", 3)
        may = self.drawing_own(cid)
        worst = max((a if j in may else 0) - meas[j] for j in range(n))
        return max(worst, 0) if n == 1 else worst

    def drawing_own(self, cid):
        """The charger phases the car in this charger may draw on now (its own numbering)."""
        c, st = self.chargers[cid], self.cstate.get(cid, {})
        n = c.get("phases", 3)
        meas = self.measured(cid)
        settled = st.get("state") in ("C", "D") and st.get("charging_s", 0) >= SETTLED_S
        if not settled or meas is None:
            return set(range(n))
        live = {k for k in range(n) if meas[k] > 0}
        return live or set(range(n))

    def other(self, gid, metered=True):
        """The other load through fuse gid, per site phase."""
        m = self.groups[gid].get("meter")
        if metered and m in self.meters:
            reading = three(self.meters[m])
            for cid in self.chargers:
                if gid in self.under(cid):
                    d = self.draws(cid)
                    reading = [reading[p] - d[p] for p in range(3)]
            return reading
        total = self.reserve(gid)
        for kid in self.groups:
            if self.parent[kid] == gid:
                o = self.other(kid, metered)
                total = [total[p] + o[p] for p in range(3)]
        return total

    def overloads(self, currents, fallback=False):
        """(group, phase, chargers' current, room) wherever the chargers' currents, on the
        phases they flow on, do not fit beside the other load."""
        bad = []
        for gid in self.groups:
            lim, oth = self.limit(gid), self.other(gid, metered=not fallback)
            for p in range(3):
                load = sum(self.adds(cid, a, p, fallback) for cid, a in currents.items() if gid in self.under(cid))
                if load > 0 and load > lim[p] - oth[p]:  # (a charger of unknown wiring may add less than nothing)
                    bad.append((gid, p, load, lim[p] - oth[p]))
        return bad
