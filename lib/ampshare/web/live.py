# What the page shows, as JSON text from what the leader's shell holds now: the live document
# (run/live.py's figures and, per charger, why it gets what it gets), the units, and the state
# a preview allocates from. Loaded on a request, let go after.
import json
import time

from ampshare.core import leader as L
from ampshare.core.site import MODE_OFF
from ampshare.run import live

def state(app):
    """The live document, a piece at a time (run/live.py)."""
    return live.chunks(app, why)


def why(app, c, allocated):
    """In words, why charger c gets what it gets now."""
    core, site = app.core, app.site
    a = core.alloc
    s = core.status[c]
    if s == L.SILENT:
        return "silent: what it may draw is kept reserved"
    if s == L.LOST:
        return "lost: at its fallback"
    if s == L.UNKNOWN:
        return "not heard since the leader started" if core.paired[c] else "no unit paired"
    p = chr(a.pilot[c])
    if p == "A":
        return "no car"
    if p in "EF":
        return "pilot error"
    if not a.sharing:
        return "sharing is off"
    if site.cmode[c] == MODE_OFF:
        return "mode off"
    if a.off[c]:
        return "unpairing: offered nothing until its unit confirms"
    sent = core.sent[c]
    if a.parked[c]:
        mins = (core.demand.reprobe_in(c, time.ticks_ms()) + 59_999) // 60_000
        return "parked: its car asks for nothing; offered its minimum again in %d min" % max(mins, 1)
    if sent == 0:
        # A turn re-ranks the paused by what they had (core/turns.py): the next is when this
        # one may come in, if it has had least by then.
        mins = (core.turns.next_in(time.ticks_ms()) + 59_999) // 60_000
        return "paused: the minimum does not fit now; next turn in %d min" % max(mins, 1)
    if sent >= site.cmax[c]:
        return "at its maximum"
    if 0 <= a.ext_max[c] <= sent:
        return "external limit"
    if 0 <= a.pv_max[c] <= sent:
        return "PV surplus"
    if 0 <= a.want[c] <= sent:
        return "demand-limited: its car draws less"
    return "limited by fuse %s" % _tightest(app, c, allocated)


def _tightest(app, c, allocated):
    # The group and site phase on c's path with the least room left after the allocation.
    core, site = app.core, app.site
    a, mask = core.alloc, core.alloc.in_use(c)
    best, where = None, "?"
    g = site.cgroup[c]
    while g >= 0:
        for p in range(3):
            if mask & (1 << p):
                room = a.cap[g * 3 + p] - allocated[g * 3 + p]
                if best is None or room < best:
                    best, where = room, "%s on L%d" % (site.group_ids[g], p + 1)
        g = site.parent[g]
    return where


def units(app):
    """The chargers' units (paired, heard) and the units heard saying HELLO, as JSON text a
    charger at a time: 64 chargers' entries are never held at once."""
    from binascii import hexlify
    core, port, site = app.core, app.port, app.site
    now = time.ticks_ms()
    yield '{"chargers": {'
    for c, cid in enumerate(site.charger_ids):
        uid = port.uid[c]
        yield '%s%s: {"uid": %s, "link": "%s", "heard_s_ago": %s, "listed": %s}' % (
            ", " if c else "", json.dumps(cid), '"%s"' % hexlify(uid).decode() if uid else "null",
            live.LINK[core.status[c]],
            "%d" % (time.ticks_diff(now, core.heard[c]) // 1000) if core.status[c] else "null",
            "true" if app.listed_code[c] is not None else "false")
    yield '}, "heard": ['
    for i, (uid, firmware, nameplate, phases, flags, claim) in enumerate(port.discovered):
        on = None
        for c in range(core.nc):
            if port.uid[c] == uid:
                on = site.charger_ids[c]
        yield "%s%s" % (", " if i else "", json.dumps({"uid": hexlify(uid).decode(), "firmware": firmware,
                                                       "nameplate_a": nameplate // 1000, "phases": phases,
                                                       "charger": on, "claims": claim or None}))
    yield "]}"


def snapshot_state(app, site):
    """The allocation snapshot's state (DESIGN.md) of what the leader knows now, for the
    chargers and meters the edited `site` keeps (matched by id)."""
    core, old = app.core, app.site
    a = core.alloc
    meters, chargers = {}, {}
    for m, mid in enumerate(old.meter_ids):
        if mid in site.meter_ids and a.meter_ok[m]:
            meters[mid] = [a.meter[m * 3 + p] / 1000 for p in range(3)]
    for c, cid in enumerate(old.charger_ids):
        if cid not in site.charger_ids or core.status[c] != L.ONLINE:
            continue
        ch = {"state": chr(a.pilot[c]), "offered_a": core.sent[c] / 1000}
        meas = [a.meas[c * 3 + k] for k in range(3)]
        if min(meas) >= 0:
            ch["measured_a"] = [v / 1000 for v in meas]
        chargers[cid] = ch
    return {"meters": meters, "chargers": chargers}
