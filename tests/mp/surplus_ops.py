# The surplus core under a virtual clock, for tests/test_surplus.py: a site, an export profile
# per second, the cars' draws following their allocation; rows of what each charger got.
from ampshare import site as sitemod
from ampshare.allocator import Allocator
from ampshare.surplus import Surplus


def op_surplus_run(req):
    site = sitemod.parse(req["site"])
    a = Allocator(site)
    s = Surplus(a)
    nc = len(site.charger_ids)
    for c in range(nc):
        a.pilot[c] = ord("C")
    a.meter_ok[0] = 1
    profile = req["export_a"]  # [[from_s, amps per phase exported], ...]
    rows = []
    for t in range(req["seconds"]):
        export = [x for at, x in profile if at <= t][-1]
        drawn = 0
        for c in range(nc):
            for k in range(3):
                a.meas[c * 3 + k] = a.out[c] if k < site.cphases[c] else 0
            drawn += a.out[c]  # on every phase: the sites here are 3-phase
        for p in range(3):
            a.meter[p] = -export * 1000 + drawn
        s.update(t * 1000)
        a.run()
        rows.append([t] + list(a.out))
    return rows


OPS = {"surplus_run": op_surplus_run}
