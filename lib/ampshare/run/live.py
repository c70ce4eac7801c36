# The live view's figures (the simulator's monitor): per group and phase meter, available,
# allocated and usage; per charger the pilot, the offer, the draws and the link; per meter its
# health. Loaded only on a leader that sends them.
import json

from ampshare.core.link import FLASH_FAILED


def status(app):
    core, site = app.core, app.site
    a = core.alloc
    allocated, usage = [0] * a.nk, [0] * a.nk
    a.spread(core.permitted, allocated)
    a.measured(usage)
    groups = {}
    for g, gid in enumerate(site.group_ids):
        m = site.gmeter[g]
        meter = [a.meter[m * 3 + p] for p in range(3)] if m >= 0 and a.meter_ok[m] else None
        groups[gid] = {"meter": meter, "available": [a.cap[g * 3 + p] for p in range(3)],
                       "allocated": allocated[g * 3:g * 3 + 3], "usage": usage[g * 3:g * 3 + 3]}
        if core.surplus is not None and core.surplus.metered[g]:
            groups[gid]["surplus"] = core.surplus.avg[g]
    chargers = {}
    for c, cid in enumerate(site.charger_ids):
        chargers[cid] = {"pilot": chr(a.pilot[c]), "offered": core.sent[c], "fallback": core.sent_fb[c],
                         "meas": [max(0, a.meas[c * 3 + k]) for k in range(3)],
                         "link": ("unknown", "online", "silent", "lost")[core.status[c]],
                         "phases": core.phases[c], "flash_failed": bool(core.flags[c] & FLASH_FAILED)}
    return json.dumps({"epoch": app.port.l_epoch, "groups": groups, "chargers": chargers, "meters": meter_health(app),
                       "flash_errors": app.flash_errors, "flash_error": app.flash_error})


def meter_health(app):
    # Per meter the leader reads itself: good reads, failures by kind, the last failure.
    out = {}
    for m, meter in (app.line.meters if app.line is not None else ()):
        out[app.site.meter_ids[m]] = {"good": meter.good, "errors": dict(zip(meter.kinds, meter.errors)),
                                      "last_error": str(meter.last_error) if meter.last_error else None}
    if app.clamps is not None:
        out[app.site.meter_ids[app.clamps.m]] = {"good": app.clamps.good, "errors": {"clipped": app.clamps.clipped},
                                                 "last_error": None}
    return out
