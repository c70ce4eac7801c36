# The live view's figures (the simulator's monitor): per group and phase meter, available,
# allocated and usage; per charger the pilot, the offer, the draws and the link; per meter its
# health. Loaded only on a leader that sends them.
import json
import time

from ampshare.core.link import FLASH_FAILED
from ampshare.core.pilot import PLUGGED

LINK = ("unknown", "online", "silent", "lost")  # by core/leader.py's status: UNKNOWN, ONLINE, ...


def status(app, why=None):
    """The figures as one JSON text (the simulator's status datagram)."""
    return "".join(chunks(app, why))


def chunks(app, why=None):
    """The figures as JSON text, a group or a charger at a time: a page's stream of 64
    chargers never holds the whole document. why(app, c, allocated), where given, says in
    words why each charger gets what it gets (web/live.py, loaded only with the page)."""
    core, site = app.core, app.site
    a = core.alloc
    allocated, usage, requested = [0] * a.nk, [0] * a.nk, [0] * a.nk
    a.spread(core.permitted, allocated)
    for c in range(a.nc):
        if a.pilot[c] in PLUGGED:  # a car is there
            a.add_to(c, a.requested(c), requested)
    a.measured(usage)
    yield '{"epoch": %d, "sharing": %s, "groups": {' % (app.port.l_epoch, "true" if a.sharing else "false")
    for g, gid in enumerate(site.group_ids):
        m = site.gmeter[g]
        meter = [a.meter[m * 3 + p] for p in range(3)] if m >= 0 and a.meter_ok[m] else None
        row = {"meter": meter, "available": [a.cap[g * 3 + p] for p in range(3)],
               "requested": requested[g * 3:g * 3 + 3], "allocated": allocated[g * 3:g * 3 + 3],
               "usage": usage[g * 3:g * 3 + 3]}
        if core.surplus is not None and core.surplus.metered[g]:
            row["surplus"] = core.surplus.avg[g]
        yield "%s%s: %s" % (", " if g else "", json.dumps(gid), json.dumps(row))
    yield '}, "chargers": {'
    for c, cid in enumerate(site.charger_ids):
        row = {"pilot": chr(a.pilot[c]), "offered": core.sent[c], "fallback": core.sent_fb[c],
               "meas": [max(0, a.meas[c * 3 + k]) for k in range(3)],
               "link": LINK[core.status[c]],
               "phases": core.phases[c], "flash_failed": bool(core.flags[c] & FLASH_FAILED)}
        if why is not None:
            row["why"] = why(app, c, allocated)
            row["heard_ms_ago"] = time.ticks_diff(time.ticks_ms(), core.heard[c]) if core.status[c] else None  # type: ignore[assignment]
        yield "%s%s: %s" % (", " if c else "", json.dumps(cid), json.dumps(row))
    yield '}, "meters": %s, "flash_errors": %d, "flash_error": %s, "loop": {"period_ms": %d, "gap_ms": %d, ' \
          '"gap_max_ms": %d}}' % (json.dumps(meter_health(app)), app.flash_errors, json.dumps(app.flash_error),
                                  app.period_ms, app.gap_recent(), app.gap_max)


def meter_health(app):
    # Per meter the leader reads itself: good reads, failures by kind, the last failure.
    out = {}
    for m, meter in (app.line.meters if app.line is not None else ()):
        out[app.site.meter_ids[m]] = {"good": meter.good, "errors": dict(zip(meter.kinds, meter.errors)),
                                      "last_error": str(meter.last_error) if meter.last_error else None}
    cl = app.clamps
    if cl is not None:
        last = cl.last_error
        out[app.site.meter_ids[cl.m]] = {"good": cl.good, "errors": dict(zip(cl.reasons[1:], cl.failed[1:])),
                                         "last_error": None if last is None else "L%d: %s" % (last[1] + 1,
                                                                                              cl.reasons[last[0]])}
    return out
