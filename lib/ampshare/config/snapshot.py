# One allocation from a site configuration and a state document (DESIGN.md, "Allocation
# snapshot"): what `make allocate` prints. The state is what the leader would know now.
import json

from ampshare.config import site as sitemod
from ampshare.core import pilot
from ampshare.core.allocator import Allocator
from ampshare.core.demand import START_MS as DEMAND_START_MS
from ampshare.core.demand import Demand
from ampshare.core.external import FAILED, External
from ampshare.config.units import ConfigError, fmt_a, ma

_READING_MAX_A = 4000  # a reading beyond four times the largest fuse is a fault, refused
_SECONDS_MAX = 10**8  # about three years: anything longer is a typo
# Ranks order chargers of equal priority: whoever has charged least, then whoever has waited
# longest, goes first. Seconds beyond 2**20 (12 days) all rank alike.
_RANK_SPAN = 1 << 20


def load(alloc, state):
    """Fill the allocator's inputs from a state dict; refuse unknown names."""
    site = alloc.site
    if not isinstance(state, dict):
        raise ConfigError("state", "must be a JSON object")
    meters = state.get("meters", {})
    chargers = state.get("chargers", {})
    if not isinstance(meters, dict) or not isinstance(chargers, dict):
        raise ConfigError("state", "meters and chargers must be objects")
    for mid, reading in meters.items():
        if mid not in site.meter_ids:
            raise ConfigError("state.meters." + mid, "unknown meter")
        m = site.meter_ids.index(mid)
        for p, v in enumerate(_three(reading, "state.meters." + mid, -_READING_MAX_A, True)):
            alloc.meter[m * 3 + p] = v
        alloc.meter_ok[m] = 1
    demand = Demand(alloc)
    for cid, ch in chargers.items():
        if cid not in site.charger_ids:
            raise ConfigError("state.chargers." + cid, "unknown charger")
        _charger(alloc, site.charger_ids.index(cid), ch, "state.chargers." + cid, demand)
    _external(alloc, state.get("external", {}))
    alloc.surplus = None
    if site.has_pv():
        from ampshare.core.surplus import Surplus
        alloc.surplus = Surplus(alloc)
        alloc.surplus.update(0, steady=True)  # every delay and smoothing run out
        for c in range(alloc.nc):
            if alloc.surplus.want1[c]:  # switched to one phase: its L1's site phase alone
                alloc.use_phases(c, alloc.surplus.mask(c, 0))


def _external(alloc, cfg):
    # {"groups": {id: {"limit_a": a or [a, a, a]}}, "chargers": {id: {"limit_a": a} or {"limit_w": w}}},
    # applied as the leader applies a controller's requests (external.py), without a watchdog.
    if not isinstance(cfg, dict):
        raise ConfigError("state.external", "must be an object")
    ext = External(alloc)
    for kind, key in (("group", "groups"), ("charger", "chargers")):
        for ident, lim in cfg.get(key, {}).items():
            where = "state.external.%s.%s" % (key, ident)
            if not isinstance(lim, dict) or not ("limit_a" in lim or "limit_w" in lim):
                raise ConfigError(where, "needs limit_a or limit_w")
            a = lim.get("limit_a")
            if a is not None:
                a = _three(a, where + ".limit_a", 0, True) if kind == "group" else ma(a, where + ".limit_a", 0, 80, 3)
            w = lim.get("limit_w")
            if w is not None and (isinstance(w, bool) or not isinstance(w, int)):
                raise ConfigError(where + ".limit_w", "must be whole watts")
            state, reason = ext.answer(ext.request(0, kind, ident, a, w, 0))
            if state == FAILED:
                raise ConfigError(where, reason)
    ext.before_run()


def _charger(alloc, c, ch, where, demand):
    if not isinstance(ch, dict):
        raise ConfigError(where, "must be an object")
    letter = ch.get("state", "A")
    if not isinstance(letter, str) or len(letter) != 1 or ord(letter) not in pilot.LETTERS:
        raise ConfigError(where + ".state", "must be one of A B C D E F")
    alloc.pilot[c] = ord(letter)
    charged = min(_seconds(ch, "charging_s", where), _RANK_SPAN - 1)
    waited = min(_seconds(ch, "waiting_s", where), _RANK_SPAN)
    alloc.rank[c] = _RANK_SPAN + charged - waited
    if "measured_a" in ch:
        for k, v in enumerate(_three(ch["measured_a"], where + ".measured_a", 0, False)):
            alloc.meas[c * 3 + k] = v
    if "offered_a" in ch:
        alloc.offered[c] = ma(ch["offered_a"], where + ".offered_a", 0, 80, 3)
    elif "measured_a" in ch:
        alloc.offered[c] = alloc.site.cmax[c]  # no offer given: the measurement stands alone
    _demand(alloc, demand, c, charged)


def _demand(alloc, d, c, charged_s):
    # What the car wants, as the leader would believe it with every timer run out: a car that
    # has charged past the start period and draws clearly less than its offer is limited to
    # its draw plus the margin (demand.py).
    m = alloc.meas
    drawn = max(m[c * 3], m[c * 3 + 1], m[c * 3 + 2])
    letter = alloc.pilot[c]
    meas = (m[c * 3], m[c * 3 + 1], m[c * 3 + 2])
    d.report(0, c, letter, drawn, alloc.offered[c], meas)
    if charged_s * 1000 >= DEMAND_START_MS and drawn >= 0:
        alloc.use_phases(c, d.report(DEMAND_START_MS, c, letter, drawn, alloc.offered[c], meas))


def _seconds(ch, name, where):
    secs = ch.get(name, 0)
    if isinstance(secs, bool) or not isinstance(secs, int) or not 0 <= secs <= _SECONDS_MAX:
        raise ConfigError(where + "." + name, "must be a whole number of seconds")
    return secs


def _three(value, where, lo, same_for_all):
    # Three phases, or one number: every phase (a meter) or L1 only (a 1-phase charger).
    # A meter's list of one would be ambiguous (L1 only, or all three?), so it is refused.
    if isinstance(value, list):
        if len(value) != 3 and (same_for_all or len(value) != 1):
            raise ConfigError(where, "must be one number or three")
        vals = [ma(v, "%s[%d]" % (where, i), lo, _READING_MAX_A, 3) for i, v in enumerate(value)]
        return vals + [0, 0] if len(vals) == 1 else vals
    v = ma(value, where, lo, _READING_MAX_A, 3)
    return [v, v, v] if same_for_all else [v, 0, 0]


def run(site_cfg, state):
    """Parse, load, allocate. Returns the allocator (its site carries the warnings)."""
    site = sitemod.parse(site_cfg)
    alloc = Allocator(site)
    load(alloc, state)
    alloc.run()
    return alloc


def to_json(alloc):
    site = alloc.site
    parts = []
    for c, cid in enumerate(site.charger_ids):
        parts.append('%s: {"current_a": %s, "phases": %d, "fallback_a": %s, "requested_a": %s}' % (
            json.dumps(cid), fmt_a(alloc.out[c]), _phases(alloc, c), fmt_a(alloc.fallback[c]), fmt_a(alloc.requested(c))))
    req, alloc_a, usage = _per_phase(alloc)
    groups = []
    for g, gid in enumerate(site.group_ids):
        m = site.gmeter[g]
        meter = "[%s]" % ", ".join(fmt_a(alloc.meter[m * 3 + p]) for p in range(3)) \
            if m >= 0 and alloc.meter_ok[m] else "null"
        row = [("meter_a", meter)]
        for name, arr, floor in (("available_a", alloc.cap, True), ("requested_a", req, False),
                                 ("allocated_a", alloc_a, False), ("usage_a", usage, False),
                                 ("other_a", alloc.other, False)):
            vals = (max(0, arr[g * 3 + p]) if floor else arr[g * 3 + p] for p in range(3))
            row.append((name, "[%s]" % ", ".join(fmt_a(v) for v in vals)))
        sur = getattr(alloc, "surplus", None)
        if sur is not None and sur.metered[g]:
            # The surplus its PV chargers share, summed over the phases.
            row.append(("surplus_a", fmt_a(sur.avg[g])))
        groups.append("%s: {%s}" % (json.dumps(gid), ", ".join('"%s": %s' % kv for kv in row)))
    return '{"chargers": {%s}, "groups": {%s}%s}' % (", ".join(parts), ", ".join(groups), _external_json(alloc))


def _phases(alloc, c):
    sur = getattr(alloc, "surplus", None)
    return 1 if sur is not None and sur.want1[c] else alloc.site.cphases[c]


def _per_phase(alloc):
    # Per group and site phase: what the cars want, what they are given (each counted on the
    # phases in use), and what the chargers' meters show they draw.
    nk = alloc.nk
    req, out, usage = [0] * nk, [0] * nk, [0] * nk
    alloc.spread([alloc.requested(c) if alloc.pilot[c] in pilot.PLUGGED else 0 for c in range(alloc.nc)], req)
    alloc.spread(alloc.out, out)
    alloc.measured(usage)
    return req, out, usage


def _external_json(alloc):
    # The limits in force, as amps: what a W limit became, and what a group's limit is.
    site = alloc.site
    gs = ['%s: {"limit_a": [%s]}' % (json.dumps(gid), ", ".join(fmt_a(alloc.ext_limit[g * 3 + p]) for p in range(3)))
          for g, gid in enumerate(site.group_ids) if alloc.ext_limit[g * 3] >= 0]
    cs = ['%s: {"limit_a": %s}' % (json.dumps(cid), fmt_a(alloc.ext_max[c]))
          for c, cid in enumerate(site.charger_ids) if alloc.ext_max[c] >= 0]
    if not gs and not cs:
        return ""
    return ', "external": {"groups": {%s}, "chargers": {%s}}' % (", ".join(gs), ", ".join(cs))
