# What the LP bound (tools/bound.py) needs of a scenario, from the plant's own model, not the
# leader's: the fuses, the chargers as wired and as configured, the cars, and for every fuse
# and step what the other load leaves of it. Runs in the unix port (the plant and the site
# parser are the twin's); prints one JSON object.
#   micropython tools/bound_inputs.py SCENARIO.json [STEP_S]
import json
import sys

sys.path.append("tools")
from plant import Plant, site_of  # noqa: E402

STEP_S = 30  # the bound's time step: well under a car's taper and a load's profile steps


def inputs(scenario, step_s=STEP_S):
    site = site_of(scenario)
    plant = Plant(site, scenario)
    ng, duration = len(site.group_ids), scenario.get("duration_s", 3600)
    steps = (duration + step_s - 1) // step_s
    # Per fuse k and step: the mean over the step's seconds of what the other load leaves of
    # the limit (never below 0). A relaxation: any controller's mean current through the fuse
    # over the step is at most this, whatever it does within the step.
    room = [[0] * steps for _ in range(3 * ng)]
    other = [0] * (3 * ng)
    for t in range(steps):
        acc = [0] * (3 * ng)
        n = 0
        for s in range(t * step_s, min(duration, (t + 1) * step_s)):
            for k in range(3 * ng):
                other[k] = 0
            for g in range(ng):
                o = plant.other_at(g, s)
                for p in range(3):
                    plant._up(g, p, o[p], other)
            for k in range(3 * ng):
                acc[k] += max(0, plant.limits[k] - other[k])
            n += 1
        for k in range(3 * ng):
            room[k][t] = acc[k] // n
    chargers = []
    for c, cid in enumerate(site.charger_ids):
        known = site.cwire[c * 3] >= 0
        chargers.append({"id": cid, "group": site.cgroup[c], "max_ma": site.cmax[c], "phases": site.cphases[c],
                         "configured": [site.cwire[c * 3 + k] for k in range(3)] if known else None,
                         "real": list(plant.wire[c])})
    return {"step_s": step_s, "steps": steps, "duration_s": duration, "voltage": site.voltage,
            "groups": [{"id": gid, "parent": site.parent[g]} for g, gid in enumerate(site.group_ids)],
            "room_ma": room, "chargers": chargers, "cars": scenario.get("cars", [])}


def main(argv):
    with open(argv[1]) as f:
        scenario = json.load(f)
    print(json.dumps(inputs(scenario, int(argv[2]) if len(argv) > 2 else STEP_S)))


if __name__ == "__main__":
    main(sys.argv)
