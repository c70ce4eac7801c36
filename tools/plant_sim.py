# The plant as a process: the site's electrics in real time for boards running the unix hal.
#   micropython tools/plant_sim.py SCENARIO.json [PORT]
# The scenario is the twin's format (site, cars, loads, pv). Each follower board sends its
# pilot duty and contactor; it gets back the pilot's levels and its measured currents. The
# leader asks for the meters. Tests and the simulator's view send commands:
#   {"cmd": "status"}                       the plant's truth, per charger and fuse
#   {"cmd": "load", "group": id, "amps": n|[3]}  an extra load in a group, from now on
#   {"cmd": "car", ...car spec...}          a car arrives now (or leaves: "leave": true)
import json
import sys
import time

import asyncio

sys.path.append("tools")
from plant import Car, Plant, site_of  # noqa: E402

from ampshare.core import pilot  # noqa: E402
from ampshare.run.udp import Link  # noqa: E402

STEP_MS = 100  # the boards sample the pilot at 10 Hz
REFRESH_MS = 1000  # each board hears from the plant at least this often
# A board not heard from this long has been reset by its watchdog (or killed): a reset MCU's
# pins fall low, so its contactor opens and its pilot stops oscillating.
DEAD_MS = 3000
PORT = 45460


class Board:
    def __init__(self, addr):
        self.addr = addr
        self.duty = pilot.DUTY_FULL
        self.contactor = False
        self.one_phase = False  # the 3->1 relay
        self.sent = None
        self.sent_at = 0
        self.reduced_at = None  # ticks when the duty last went down (reaction benchmark)
        self.heard_at = 0


class PlantSim:
    def __init__(self, scenario, port):
        self.site = site_of(scenario)
        self.scn = scenario
        self.plant = Plant(self.site, scenario)
        self.boards = {}  # charger index -> Board
        self.link = Link("127.0.0.1", port)
        self.t0 = time.ticks_ms()
        self.extra = {}  # group id -> the load set by command
        self.step_at = None  # ticks of the last load step by command

    def _charger(self, cid):
        return self.site.charger_ids.index(cid) if cid in self.site.charger_ids else -1

    def on_message(self, msg, addr):
        now = time.ticks_ms()
        if "duty" in msg:
            c = self._charger(msg.get("id"))
            if c < 0:
                return
            b = self.boards.get(c)
            if b is None:
                b = self.boards[c] = Board(addr)
            b.addr = addr
            if pilot.offered_by(msg["duty"]) < pilot.offered_by(b.duty) and b.reduced_at is None:
                b.reduced_at = now  # the first reduction since the last load step
            b.duty = msg["duty"]
            b.contactor = bool(msg["contactor"])
            b.one_phase = bool(msg.get("relay", 0))
            b.heard_at = now
            self._tell(c, b, now, True)
        elif "meters" in msg:
            out = {}
            for g, m in enumerate(self.site.gmeter):
                if m >= 0:
                    out[self.site.meter_ids[m]] = list(self.plant.meter(g))
            self.link.send(json.dumps({"meters": out}), addr)
        elif msg.get("cmd") == "status":
            self.link.send(json.dumps(self.status(now)), addr)
        elif msg.get("cmd") == "load":
            # One commanded load per group, replaced by the next command.
            load = self.extra.get(msg["group"])
            if load is None:
                load = self.extra[msg["group"]] = {"group": msg["group"]}
                self.plant.loads.append(load)
            load["profile"] = [[0, msg["amps"]]]
            self.plant._other_s = -1  # from this step, not the next second
            self.step_at = now
            for b in self.boards.values():
                b.reduced_at = None
            self.link.send(b'{"ok": 1}', addr)
        elif msg.get("cmd") == "car":
            c = self._charger(msg["charger"])
            self.plant.cars[c] = None if msg.get("leave") else Car(msg, _Fixed(msg.get("follow_ms", 2000)), self.site.voltage)
            self.link.send(b'{"ok": 1}', addr)

    def _now_s(self, now):
        return time.ticks_diff(now, self.t0) // 1000

    def _levels(self, c, b):
        car = self.plant.cars[c]
        high = 12000 if car is None else car.pilot_mv(b.duty < pilot.DUTY_FULL)
        meas = self.plant.charger_meas(c)
        wh = car.delivered_mwh // 1000 if car else 0
        return high, meas, wh

    def _tell(self, c, b, now, force=False):
        high, meas, wh = self._levels(c, b)
        msg = (high, meas[0], meas[1], meas[2], wh // 100)
        if force or msg != b.sent or time.ticks_diff(now, b.sent_at) >= REFRESH_MS:
            b.sent = msg
            b.sent_at = now
            self.link.send(json.dumps({"hi": high, "lo": -12000, "ma": meas, "wh": wh}), b.addr)

    def step(self, now):
        rel = time.ticks_diff(now, self.t0)
        self._arrivals(rel)
        for c, car in enumerate(self.plant.cars):
            if car is None:
                continue
            b = self.boards.get(c)
            if b is None or time.ticks_diff(now, b.heard_at) >= DEAD_MS:
                car.step(rel, STEP_MS, 0, False)
            else:
                car.wired = 1 if b.one_phase else car.phases
                car.step(rel, STEP_MS, pilot.offered_by(b.duty), b.contactor)
        self.plant.step(rel, STEP_MS)
        for c, b in self.boards.items():
            self._tell(c, b, now)

    def _arrivals(self, rel):
        if rel % 1000 >= STEP_MS:
            return
        s = rel // 1000
        for spec in self.scn.get("cars", []):
            c = self._charger(spec["charger"])
            if spec.get("arrive_s", 0) == s and self.plant.cars[c] is None:
                self.plant.cars[c] = Car(spec, _Fixed(spec.get("follow_ms", 2000)), self.site.voltage)
            if spec.get("leave_s") == s:
                self.plant.cars[c] = None

    def status(self, now):
        p, site = self.plant, self.site
        chargers = {}
        for c, cid in enumerate(site.charger_ids):
            b = self.boards.get(c)
            car = p.cars[c]
            chargers[cid] = {"duty": b.duty if b else None, "offered_ma": pilot.offered_by(b.duty) if b else 0,
                             "contactor": b.contactor if b else False, "car": car is not None,
                             "draw_ma": car.draw if car else 0,
                             "reduced_ms": time.ticks_diff(b.reduced_at, self.step_at)
                             if b and b.reduced_at is not None and self.step_at is not None else None}
        groups = {gid: {"total": [p.total[g * 3 + k] for k in range(3)],
                        "limit": [p.limits[g * 3 + k] for k in range(3)],
                        "ev_As": [p.overload_ev[g * 3 + k] // 1_000_000 for k in range(3)]}
                  for g, gid in enumerate(site.group_ids)}
        return {"t_ms": time.ticks_diff(now, self.t0), "chargers": chargers, "groups": groups}

    async def receive(self):
        while True:
            data, addr = await self.link.recv()
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            self.on_message(msg, addr)

    async def run(self):
        asyncio.create_task(self.receive())
        due = time.ticks_ms()
        while True:
            now = time.ticks_ms()
            self.step(now)
            due = time.ticks_add(due, STEP_MS)
            await asyncio.sleep_ms(max(0, time.ticks_diff(due, time.ticks_ms())))


class _Fixed:
    """A car's reaction time, fixed rather than drawn: real time has noise enough."""

    def __init__(self, ms):
        self.ms = ms

    def randint(self, lo, hi):
        return min(max(self.ms, lo), hi)


def main(argv):
    with open(argv[1]) as f:
        scenario = json.load(f)
    port = int(argv[2]) if len(argv) > 2 else PORT
    print("plant: listening on 127.0.0.1:%d" % port)
    asyncio.run(PlantSim(scenario, port).run())


if __name__ == "__main__":
    main(sys.argv)
