# A board whose flash refuses every write (its state folder is not there): each role starts,
# controls and reports, and shows the failures. Prints one JSON line.
import json

from ampshare.run import live
from ampshare.config import settings
from ampshare.wire import frame as P
from ampshare.config import site as sitemod
from ampshare.run.follower import FollowerApp
from ampshare.hal.unix import Board
from ampshare.run.leader import LeaderApp

GONE = "/nonexistent/ampshare-state"
out = {}
s = settings.parse({"role": "follower", "hal": "unix", "uid": "240ac4000001", "state_dir": GONE,
                    "broadcast": "127.0.0.1", "port_follower": 27811, "port_leader": 27810})
f = FollowerApp(s, Board(), 0)
for t in range(0, 1000, 100):
    f.step(t)
f.port.key = P.Key(b"\x11" * 32)  # as if paired (its key, too, would stay in RAM)
report = f.port.report()
out["follower"] = {"flash_errors": f.flash_errors, "flash_failed": f.core.flash_failed, "flags": report[35]}

SITE = {"version": 1, "groups": [{"id": "main", "limit_a": 32}],
        "chargers": [{"id": "wb1", "group": "main", "max_a": 32}]}
s = settings.parse({"role": "leader", "hal": "unix", "state_dir": GONE, "port_leader": 27812})
L = LeaderApp(s, sitemod.parse(SITE), Board(), 0)
for t in range(0, 4000, 100):
    L.step(t)
status = json.loads(live.status(L))
out["leader"] = {"flash_errors": status["flash_errors"], "error": status["flash_error"],
                 "saved_epoch": L.saved_epoch, "epoch": L.port.l_epoch}
print(json.dumps(out))
