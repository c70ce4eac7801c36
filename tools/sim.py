#!/usr/bin/env python3
"""make sim: the plant, a leader and followers, each its own `micropython` process on
loopback UDP, and a live view of the site refreshed every second. Ctrl-C stops them all.

    python3 tools/sim.py [--site examples/home.json] [--followers N] [--seconds S]

Also a library: the end-to-end tests and the reaction benchmark start a site with Sim.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = ["L1", "L2", "L3"]


def micropython():
    exe = os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")
    return exe if Path(exe).exists() else (shutil.which("micropython") or exe)


def mp_env(code=None):
    env = dict(os.environ)
    # Microdot (make setup installs it in build/vendor) beside ours, as the ROM image has it.
    env["MICROPYPATH"] = ".frozen:%s:%s" % (code or ROOT / "lib", ROOT / "build" / "vendor")
    return env


@lru_cache(maxsize=None)
def heap_total(heap):
    """The bytes the unix port's collector manages with -X heapsize=heap."""
    out = subprocess.run([micropython(), "-X", "heapsize=" + heap, "-c", "import gc; print(gc.mem_alloc() + gc.mem_free())"],
                         capture_output=True, text=True, check=True).stdout
    return int(out)


def rom_heap(heap, rom):
    """A heapsize that leaves `heap`'s bytes beside the ROM image's block (tools/rom_run.py)."""
    # The collector keeps about 1/85 of a heap for its tables; 512 B covers the rounding.
    return str((heap_total(heap) + Path(rom).stat().st_size) * 85 // 84 + 512)


def uid_of(i):
    return "02a5%08x" % (i + 1)  # a locally administered MAC per follower


def cars_for(site, n):
    """A car on each charger, arriving a few seconds apart, of varied size."""
    cars = []
    for i, c in enumerate(site["chargers"][:n]):
        phases = c.get("phases", 3)
        cars.append({"charger": c["id"], "arrive_s": 2 + 3 * i, "phases": phases if phases == 1 else [3, 3, 1][i % 3],
                     "max_a": [32, 16, 11][i % 3], "soc": 0.3, "follow_ms": 1500})
    return cars


class Sim:
    """Starts and stops the processes of one simulated site in a work folder. Its ports run
    from base_port (leader, plant, monitor, then a follower each from base_port + 10): keep
    them below Linux's ephemeral range (32768 up), where any socket bound to port 0 may sit."""

    def __init__(self, site_path, followers=None, work=None, base_port=25500, cars=None, loads=None,
                 heap=None, settings=None, code=None, monitor=True, meter_line=False, rom=None,
                 leader_settings=None, http_port=None, unpaired=(), page=None):
        self.site_path = Path(site_path)
        self.site = json.loads(self.site_path.read_text())
        n = len(self.site["chargers"])
        self.n = n if followers is None else followers
        if self.n > n:
            raise SystemExit("%s has %d chargers; cannot run %d followers" % (site_path, n, self.n))
        self.work = Path(work or ROOT / "build" / "sim")
        self.port = base_port
        self.plant_port = base_port + 1
        self.monitor_port = base_port + 2
        self.cars = cars_for(self.site, self.n) if cars is None else cars
        root = [g["id"] for g in self.site["groups"] if not g.get("parent")][0]
        self.loads = [{"group": root, "profile": [[0, 5]]}] if loads is None else loads
        self.heap = heap
        self.extra = settings or {}  # more settings for every board
        self.leader_extra = leader_settings or {}  # and for the leader alone
        self.code = code  # where the boards' ampshare comes from: lib/, or compiled .mpy
        # Or a ROM image (make rom): the code runs in place, beside the heap, as on a board.
        self.rom = rom
        self.monitor_on = monitor  # the leader's status datagram for the live view
        # Every Modbus meter of the site served at its own address on one socat pty pair, read
        # by the leader's RS485 master: the real Modbus path. Without it the plant hands out every
        # reading over UDP. Served when every meter is a Modbus one of a model the simulator
        # plays (tools/meter_sim.py: SDM630, SDM72D-M, SDM120) at an address of its own; any other
        # site's meters come over UDP.
        meters = self.site.get("meters", [])
        addrs = [m.get("address", 1) for m in meters]
        self.meter_line = meter_line and bool(meters) and len(set(addrs)) == len(addrs) and all(
            m["source"] == "modbus" and m.get("model", "sdm630") in ("sdm630", "sdm72d-m", "sdm120") for m in meters)
        self.meter = None  # the MeterSim, while it runs
        self._line = None  # socat and the feeding thread
        # The leader's page and API on loopback (its access point stood in for), and the
        # followers left out of its pairing list (paired from the page instead).
        self.http_port = http_port
        self.unpaired = set(unpaired)
        self.page = Path(page) if page else ROOT / "build" / "page.html.gz"
        self.label = "label-code"  # the leader's label code: the page's first login
        self.procs = {}
        self.ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ctl.bind(("127.0.0.1", 0))
        self.ctl.settimeout(2)

    # ---- processes ---------------------------------------------------------------------------

    def setup(self):
        if self.work.exists():
            shutil.rmtree(self.work)
        (self.work / "plant").mkdir(parents=True)
        scn = {"site": self.site, "cars": self.cars, "loads": self.loads}
        if any(c.get("mode") in ("pv", "min_pv") for c in self.site["chargers"]):
            # PV chargers need sun: a clear midday over the root group for the whole run.
            root = [g["id"] for g in self.site["groups"] if not g.get("parent")][0]
            scn["pv"] = [{"group": root, "peak_a": 20, "start_s": -20000, "end_s": 30000}]
        (self.work / "plant" / "scenario.json").write_text(json.dumps(scn))
        common = dict({"hal": "unix", "bind": "127.0.0.1", "broadcast": "127.0.0.1", "port_leader": self.port,
                       "plant": ["127.0.0.1", self.plant_port], "state_dir": "."}, **self.extra)
        pair = {c["id"]: {"uid": uid_of(i), "code": "code-%d" % i} for i, c in enumerate(self.site["chargers"][:self.n])
                if i not in self.unpaired}
        if self.http_port:
            common_leader = {"http": {"port": self.http_port, "bind": "127.0.0.1"}, "page": str(self.page),
                             "code": self.label}
        else:
            common_leader = {}
        self._write("leader", dict(common, role="leader", site="site.json", pair=pair, **common_leader,
                                   monitor=["127.0.0.1", self.monitor_port] if self.monitor_on else None,
                                   rs485={"device": str(self.work / "rs485-leader")} if self.meter_line else None,
                                   **self.leader_extra))
        (self.work / "leader" / "site.json").write_text(json.dumps(self.site))
        for i, c in enumerate(self.site["chargers"][:self.n]):
            self._write("f%d" % i, dict(common, role="follower", uid=uid_of(i), code="code-%d" % i,
                                        port_follower=self.port + 10 + i, plant_id=c["id"],
                                        nameplate_a=c["max_a"], phases=c.get("phases", 3),
                                        phase_switching=c.get("phase_switching", False)))

    def _write(self, name, settings):
        d = self.work / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "settings.json").write_text(json.dumps(settings))

    def start(self, name):
        args = [micropython()]
        if self.heap and name != "plant":
            heap = self.heap["leader"] if name == "leader" else self.heap["follower"]
            args += ["-X", "heapsize=" + (rom_heap(heap, self.rom) if self.rom else heap)]
        if name == "plant":
            args += [str(ROOT / "tools" / "plant_sim.py"), "scenario.json", str(self.plant_port)]
        elif self.rom:
            args += [str(ROOT / "tools" / "rom_run.py"), str(self.rom), "settings.json"]
        else:
            args += ["-c", "from ampshare.run import app\napp.main('settings.json')"]
        log = open(self.work / name / "log.txt", "a")
        env = mp_env(None if name == "plant" else self.code)
        if self.rom and name != "plant":
            env["MICROPYPATH"] = ".frozen"  # ampshare from the image alone
        if name == "plant":
            env["MICROPYPATH"] += ":" + str(ROOT / "tools")
        self.procs[name] = subprocess.Popen(args, cwd=self.work / name, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self):
        self.setup()
        if self.meter_line:
            self._start_line()
        self.start("plant")
        time.sleep(0.3)
        self.start("leader")
        for i in range(self.n):
            self.start("f%d" % i)

    def kill(self, name):
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()

    def stop(self):
        for name in list(self.procs):
            self.kill(name)
        self._stop_line()
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.sock.close()  # its port is free for the next site

    # ---- the site meter on an RS485 line -----------------------------------------------------

    def _start_line(self):
        import threading

        from meter_sim import MeterSim
        ends = [self.work / "rs485-leader", self.work / "rs485-meter"]
        socat = subprocess.Popen(["socat"] + ["pty,raw,echo=0,link=%s" % e for e in ends], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not all(e.exists() for e in ends) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.meter = MeterSim(str(ends[1]), units={m.get("address", 1): m.get("model", "sdm630")
                                                   for m in self.site["meters"]}).start()
        stop = threading.Event()
        feeder = threading.Thread(target=self._feed_meter, args=(stop,), daemon=True)
        feeder.start()
        self._line = (socat, stop, feeder)

    def _feed_meter(self, stop):
        # The plant's truth at each meter, five times a second, as its registers. A 1-phase
        # meter shows its site phase's current on its one phase.
        volts = self.site.get("voltage_v", 230)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.5)
        while not stop.wait(0.2):
            try:
                sock.sendto(b'{"meters": 1}', ("127.0.0.1", self.plant_port))
                got = json.loads(sock.recvfrom(65536)[0])["meters"]
                for m in self.site["meters"]:
                    ma = got[m["id"]]
                    if self.meter.meters[m.get("address", 1)].phases == 1:
                        k = ("L1", "L2", "L3").index(m.get("phase", "L1"))
                        ma = [ma[k], 0, 0]
                    self.meter.set(unit=m.get("address", 1), current_a=[abs(x) / 1000 for x in ma],
                                   power_w=[x * volts / 1000 for x in ma])
            except (OSError, ValueError, KeyError):
                continue
        sock.close()

    def _stop_line(self):
        if self._line is None:
            return
        socat, stop, feeder = self._line
        stop.set()
        feeder.join(5)
        self.meter.stop()
        socat.kill()
        socat.wait()
        self._line = None

    def restart_dead(self):
        """A board whose watchdog fired boots again, as a real one would."""
        for name, p in list(self.procs.items()):
            if p.poll() is not None:
                self.start(name)

    # ---- talking to the plant and listening to the leader ------------------------------------

    def plant(self, msg):
        self.ctl.sendto(json.dumps(msg).encode(), ("127.0.0.1", self.plant_port))
        while True:
            data, addr = self.ctl.recvfrom(65536)
            if addr[1] == self.plant_port:
                return json.loads(data)

    def status(self):
        return self.plant({"cmd": "status"})


class Monitor:
    """The leader's status datagrams, newest first."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.last = None
        self.received = 0  # datagrams read so far: a test sees whether new ones came

    def poll(self):
        """The newest status (or the last one read, when none came since)."""
        while True:
            try:
                self.last = json.loads(self.sock.recv(65536))
                self.received += 1
            except BlockingIOError:
                return self.last


def amps(ma):
    return "%5.1f" % (ma / 1000) if ma is not None else "    -"


def render(leader, plant):
    lines = ["ampshare sim  %s   (Ctrl-C stops every process)" % time.strftime("%H:%M:%S"), ""]
    if leader is None:
        return "\n".join(lines + ["waiting for the leader..."])
    lines.append("%-14s %-3s %7s %9s %9s %7s" % ("group", "ph", "Meter", "Available", "Allocated", "Usage"))
    for gid, g in leader["groups"].items():
        for p in range(3):
            lines.append("%-14s %-3s %7s %9s %9s %7s" % (gid if p == 0 else "", LINK[p],
                         amps(g["meter"][p] if g["meter"] else None), amps(max(0, g["available"][p])),
                         amps(g["allocated"][p]), amps(g["usage"][p])))
    for gid, g in leader["groups"].items():
        if "surplus" in g:
            lines.append("%-14s surplus for its PV chargers: %s over the phases" % (gid, amps(g["surplus"])))
    lines += ["", "%-14s %-5s %7s %2s %-20s %8s %-7s" % ("charger", "pilot", "offered", "ph", "drawn L1/L2/L3",
                                                          "fallback", "link")]
    for cid, c in leader["chargers"].items():
        drawn = "/".join("%.1f" % (m / 1000) for m in c["meas"])
        lines.append("%-14s %-5s %7s %2d %-20s %8s %-7s" % (cid, c["pilot"], amps(c["offered"]), c.get("phases", 3),
                                                             drawn, amps(c["fallback"]), c["link"]))
    if leader.get("meters"):
        lines.append("")
    for mid, h in leader.get("meters", {}).items():
        bad = ", ".join("%d %s" % (n, kind) for kind, n in h["errors"].items() if n)
        lines.append("meter %s (Modbus): %d good reads%s" % (mid, h["good"], "; " + bad if bad else ""))
    if plant:
        over = sum(sum(g["ev_As"]) for g in plant["groups"].values())
        lines += ["", "plant: %d s, overload the EVs drew into: %d A s" % (plant["t_ms"] // 1000, over)]
    return "\n".join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default=str(ROOT / "examples" / "home.json"))
    ap.add_argument("--followers", type=int, default=None)
    ap.add_argument("--seconds", type=int, default=0, help="stop after this long (0: until Ctrl-C)")
    ap.add_argument("--http-port", type=int, default=8080, help="the leader's page and API on 127.0.0.1")
    ap.add_argument("--unpaired", type=int, nargs="*", default=[],
                    help="followers (by number) left for pairing from the page")
    ap.add_argument("--sharing-off", action="store_true",
                    help="the leader as its first-boot page leaves it: no current offered until sharing is turned on")
    ap.add_argument("--mqtt", default=None, metavar="HOST:PORT", help="connect the leader to this MQTT broker")
    args = ap.parse_args(argv[1:])
    extra = {"sharing": False} if args.sharing_off else {}
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        extra["mqtt"] = {"host": host, "port": int(port)}
    sim = Sim(args.site, args.followers, meter_line=True, http_port=args.http_port, unpaired=args.unpaired,
              leader_settings=extra or None)
    mon = Monitor(sim.monitor_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start = time.monotonic()
    try:
        sim.start_all()
        while not args.seconds or time.monotonic() - start < args.seconds:
            time.sleep(1)
            sim.restart_dead()
            try:
                plant = sim.status()
            except (socket.timeout, OSError):
                plant = None
            sys.stdout.write("\x1b[H\x1b[2J" + render(mon.poll(), plant) + "\n\nthe page: http://127.0.0.1:%d/"
                             " (first login: %s)\n" % (args.http_port, sim.label))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
