# Seeded mixed scenarios for make bench-policy, ones nobody tuned the sharing to: a metered
# 63 A main with a 32 A unmetered sub-distribution, six to ten chargers (some of unknown
# rotation, wired at random), 1-, 2- and 3-phase cars of every size arriving over the
# evening, some near full (tapering), some asleep on their own timers for a while, a heat pump
# cycling, a cooker's peaks, and PV on half of them. The same seed gives the same scenario.
import random

HOURS = 4  # an evening's arrivals and their charging; long enough for tapers and turns


def _site(rnd, n):
    chargers = []
    for i in range(n):
        sub = i >= n - 3  # the last three behind the sub-distribution
        three = rnd.random() < 0.7
        rot = rnd.choice(["L123", "L231", "L312", "unknown", "unknown"])
        chargers.append({"id": "cp%d" % (i + 1), "group": "carport" if sub else "main", "min_a": 6,
                         "max_a": 32 if rnd.random() < 0.3 else 16, "phases": 3 if three else 1,
                         "rotation": rot})
    return {"version": 1, "voltage_v": 230,
            "meters": [{"id": "grid", "source": "modbus", "model": "sdm630", "address": 1}],
            "groups": [{"id": "main", "limit_a": 63, "meter": "grid", "reserve_a": 35},
                       {"id": "carport", "parent": "main", "limit_a": 32, "reserve_a": 0}],
            "chargers": chargers}


def scenario(seed):
    rnd = random.Random(seed)
    n = rnd.randint(6, 10)
    site = _site(rnd, n)
    duration = HOURS * 3600
    wiring = {ch["id"]: rnd.choice(["L123", "L132", "L213", "L231", "L312", "L321"])
              for ch in site["chargers"] if ch["rotation"] == "unknown"}
    cars = []
    for ch in site["chargers"]:
        if rnd.random() < 0.15:
            continue  # an empty bay
        arrive = rnd.randrange(0, duration // 2, 60)
        car = {"charger": ch["id"], "arrive_s": arrive, "phases": rnd.choice([1, 3, 3, 3, 2]),
               "max_a": rnd.choice([16, 16, 32]), "capacity_kwh": rnd.choice([40, 60, 77, 100]),
               "soc": round(rnd.choice([0.1, 0.3, 0.5, 0.75, 0.85]), 2), "follow_s": [1, 5]}
        if ch["phases"] == 1:
            car["phases"] = 1
        if rnd.random() < 0.25:
            t0 = arrive + rnd.randrange(300, 3600, 60)
            car["asleep_s"] = [t0, t0 + rnd.randrange(600, 3600, 60)]
        if rnd.random() < 0.3:
            car["leave_s"] = arrive + rnd.randrange(1800, 3 * 3600, 60)
        cars.append(car)
    # A heat pump cycling 20 minutes on, 10 off; a house base; cooker peaks on one phase.
    pump = [[t, 9 if (t // 600) % 3 != 2 else 0] for t in range(0, duration, 600)]
    house = [[t, [rnd.randint(2, 12), rnd.randint(2, 12), rnd.randint(2, 12)]] for t in range(0, duration, 900)]
    cook = []
    for _ in range(3):
        t = rnd.randrange(0, duration - 1800, 60)
        cook += [[t, [0, rnd.randint(10, 18), 0]], [t + rnd.randrange(300, 1500, 60), [0, 0, 0]]]
    loads = [{"group": "main", "profile": pump}, {"group": "main", "profile": house},
             {"group": "main", "profile": sorted(cook)}]
    scn = {"site": site, "duration_s": duration, "step_ms": 250, "seed": seed,
           "network": {"loss": 0.02, "delay_ms": [2, 30]}, "loads": loads, "cars": cars, "wiring": wiring}
    if rnd.random() < 0.5:
        # An evening's PV: the sun setting over the first hours.
        scn["pv"] = [{"group": "main", "peak_a": rnd.choice([10, 20]), "start_s": -6 * 3600, "end_s": 3 * 3600,
                      "clouds": 0.3}]
    return scn
