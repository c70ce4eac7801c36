# The surplus core under a virtual clock, for tests/test_surplus.py: a site, an export profile
# per second, the cars' draws following their allocation; rows of what each charger got.
from ampshare.config import site as sitemod
from ampshare.core.allocator import Allocator
from ampshare.core.surplus import Surplus


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
            # A switching charger's relay follows the leader at once (the follower's own
            # sequence is tests/test_follower.py's); on one phase it draws on its L1.
            s.one[c] = s.want1[c] if site.cswitch[c] else 0
            n = 1 if s.one[c] else site.cphases[c]
            a.use_phases(c, 1 << site.cwire[c * 3] if s.one[c] else 0)
            for k in range(3):
                a.meas[c * 3 + k] = a.out[c] if k < n else 0
            drawn += a.out[c] * n
        for p in range(3):
            a.meter[p] = -export * 1000 + drawn // 3  # the sun and the cars, spread over the phases
        s.update(t * 1000)
        a.run()
        rows.append([t] + list(a.out) + [s.want1[c] for c in range(nc)])
    return rows


OPS = {"surplus_run": op_surplus_run}
