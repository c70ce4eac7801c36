# Runs inside the MicroPython unix port. Reads one JSON request per line on stdin and
# writes one JSON answer per line: the pytest side drives the firmware through it.
import json
import sys

import ct_ops
import drive
import modbus_ops
import surplus_ops
from ampshare.config import site as sitemod
from ampshare.config import snapshot
from ampshare.core.allocator import Allocator
from ampshare.config.units import ConfigError

_held = [None]


def _outputs(alloc):
    return {
        "out": list(alloc.out),
        "fallback": list(alloc.fallback),
        "cap": list(alloc.cap),
        "credited": list(alloc._cred),  # what each charger of unknown wiring was credited
        "peak": alloc.peak(),
    }


def op_allocate(req):
    alloc = Allocator(sitemod.parse(req["site"]))
    alloc.audit = True  # peak() sees every pass's work, the fallbacks' included
    snapshot.load(alloc, req["state"])
    alloc.run()
    res = _outputs(alloc)
    if req.get("again"):
        # The same allocator a second time: its kept order must not change the answer.
        alloc.run()
        res["again"] = _outputs(alloc)
    return res


def op_snapshot(req):
    return {"json": snapshot.to_json(snapshot.run(req["site"], req["state"]))}


def _parsed(s):
    return {"warnings": s.warnings, "groups": s.group_ids, "chargers": s.charger_ids,
            "cmin": list(s.cmin), "cmax": list(s.cmax), "wire": list(s.cwire), "limit": list(s.limit)}


def op_parse(req):
    return _parsed(sitemod.parse(req["site"]))


def op_hold(req):
    _held[0] = sitemod.SiteHolder(req["site"])
    return {}


def op_propose(req):
    return {"warnings": _held[0].propose(req["site"])}


def op_held(req):
    alloc = Allocator(_held[0].site)
    snapshot.load(alloc, req["state"])
    alloc.run()
    return {"site": _parsed(_held[0].site), "out": list(alloc.out)}


def op_settings(req):
    from binascii import hexlify

    from ampshare.config import settings
    s = settings.parse(req["settings"])
    s["pair"] = {cid: [hexlify(uid).decode(), code.decode()] for cid, (uid, code) in s["pair"].items()}
    return s


_OPS = {"settings": op_settings, "allocate": op_allocate, "snapshot": op_snapshot, "parse": op_parse,
        "hold": op_hold, "propose": op_propose, "held": op_held}
_OPS.update(drive.OPS)
_OPS.update(ct_ops.OPS)
_OPS.update(modbus_ops.OPS)
_OPS.update(surplus_ops.OPS)


def serve():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            req = json.loads(line)
            ans = {"ok": _OPS[req["op"]](req)}
        except ConfigError as e:
            ans = {"error": str(e), "field": e.field}
        except Exception as e:  # reported, so the test fails with the VM's own words
            ans = {"crash": "%s: %s" % (type(e).__name__, e)}
        json.dump(ans, sys.stdout)  # streamed: a long answer needs no heap of its size
        sys.stdout.write("\n")


serve()
