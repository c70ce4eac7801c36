# Worker ops that drive a follower and a leader (each a core on its side of the wire) through
# timed events.
from binascii import hexlify, unhexlify
from time import ticks_diff

from ampshare.config import site as sitemod
from ampshare.core.follower import Follower
from ampshare.core.leader import Leader
from ampshare.wire.follower import FollowerPort
from ampshare.wire.leader import LeaderPort

_objs = {}


def _hex(b):
    return hexlify(b).decode()


def follower_new(req):
    key = req.get("key")
    core = Follower(req.get("nameplate", 32000), req.get("phases", 3), req.get("can_switch", False), req.get("now", 0))
    _objs["f"] = p = FollowerPort(core, unhexlify(req["uid"]), unhexlify(req.get("code", "")), req.get("f_epoch", 1),
                                  key=unhexlify(key) if key else None)
    p.seq = req.get("seq", 0)
    return follower_view()


def follower_view():
    p = _objs["f"]
    f = p.core
    return {"duty": f.duty, "offered": f.offered, "contactor": f.contactor, "state": chr(f.state),
            "at_fallback": f.at_fallback, "target": f.target, "fallback": f.fallback,
            "errors": f.errors, "paired": p.key is not None, "charger_id": p.charger_id,
            "rejected": list(p.rejected), "n_accepted": p.accepted, "one_phase": f.one_phase,
            "switching": f.switch, "identifying": f.identifying(), "f_epoch": p.f_epoch,
            "epoch_event": p.epoch_event}


def _replay(req, apply, view):
    # Each event [t, what, ...] goes to apply(); with "trace", the view after each one.
    trace = []
    for ev in req["events"]:
        res = apply(ev[0], ev[1], ev)
        if req.get("trace", True):
            state = view()
            state.update(res)
            trace.append(state)
    return {"trace": trace, "end": view()}


def _follower_event(t, what, ev):
    p = _objs["f"]
    f = p.core
    if what == "sample":
        f.sample(t, ev[2], ev[3])
    elif what == "measure":
        f.measure(ev[2], ev[3], ev[4], 0)
    elif what == "recv":
        return {"accepted": p.receive(t, unhexlify(ev[2]))}
    elif what == "press":
        f.press_pair(t)
    elif what == "tick":
        d = p.tick(t)
        return {"sent": _hex(d) if d else None}
    return {}


def follower_run(req):
    return _replay(req, _follower_event, follower_view)


def leader_new(req):
    site = sitemod.parse(req["site"])
    P = LeaderPort(Leader(site, req.get("now", 0)), req.get("l_epoch", 1))
    P.seq = req.get("seq", 0)
    for c, uid, key in req.get("followers", []):
        P.add_follower(c, unhexlify(uid), unhexlify(key))
    _objs["L"] = P
    return leader_view()


def leader_view():
    P = _objs["L"]
    L = P.core
    return {"sent": list(L.sent), "permitted": list(L.permitted), "sent_fb": list(L.sent_fb),
            "status": list(L.status), "out": list(L.alloc.out), "held": list(L.alloc.held),
            "cap_up": list(L.alloc.cap_up), "stopped": [L.stopped(c) for c in range(L.nc)],
            "paired": list(L.paired),
            "rejected": list(P.rejected), "n_accepted": P.accepted, "hellos": P.hellos,
            "discovered": [_hex(d[0]) for d in P.discovered], "claims": [d[5] for d in P.discovered]}


def _leader_event(t, what, ev):
    P = _objs["L"]
    L = P.core
    if what == "recv":
        return {"accepted": P.receive(t, unhexlify(ev[2]))}
    if what == "meter":
        L.meter(t, ev[2], ev[3], ev[4], ev[5])
    elif what == "tick":
        return {"sent": [[c, _hex(d)] for c, d in P.tick(t)]}
    elif what == "limit":  # [t, "limit", kind, id, ma, w, watchdog_ms]
        return {"rid": L.limit(t, ev[2], ev[3], ev[4], ev[5], ev[6])}
    elif what == "pair":  # [t, "pair", charger, uid hex, key hex]
        P.pair(ev[2], unhexlify(ev[3]), b"code", b"n" * 8, unhexlify(ev[4]))
    elif what == "answer":
        return {"answer": L.external.answer(ev[2])}
    elif what == "share":  # [t, "share", on]
        L.share(t, ev[2])
    elif what == "stop":  # [t, "stop", charger]: its unit is being unpaired
        L.stop(t, ev[2])
    elif what == "remove":  # [t, "remove", charger]: its key dropped
        P.remove_follower(ev[2])
    elif what == "age":  # [t, "age"]: how long ago each unit was heard, as the page shows it
        return {"heard_ms_ago": [ticks_diff(t, L.heard[c]) for c in range(L.nc)]}
    return {}


def leader_run(req):
    return _replay(req, _leader_event, leader_view)


def fuzz(req):
    # Feed datagrams; none may raise, none may be accepted, none may change a current.
    obj = _objs[req["role"]]
    view = follower_view if req["role"] == "f" else leader_view
    before = view()
    accepted = 0
    for h in req["datagrams"]:
        if obj.receive(req.get("now", 0), unhexlify(h)):
            accepted += 1
    after = view()
    return {"accepted": accepted, "before": before, "after": after}


OPS = {"follower_new": follower_new, "follower_run": follower_run, "leader_new": leader_new,
       "leader_run": leader_run, "fuzz": fuzz}


def pilot_op(req):
    from ampshare.core import pilot
    duties = [pilot.duty_for(m) for m in req.get("ma", [])]
    return {"duty": duties, "back": [pilot.offered_by(d) for d in duties],
            "states": [chr(pilot.classify(h, ord(p) if p else 0)) for h, p in req.get("levels", [])]}


OPS["pilot"] = pilot_op


def twin_op(req):
    import sys
    if "tools" not in sys.path:
        sys.path.append("tools")
    import twin
    span = req.get("rows")  # [first_s, last_s]: only those seconds come back, to keep the line short
    rows = None
    if span:
        rows = twin.Rows(span[0], span[1])
    summary = twin.Twin(req["scenario"], req.get("policy")).run(None, rows)
    return {"summary": summary, "rows": rows.kept if rows else None}


OPS["twin"] = twin_op


def store_op(req):
    from ampshare.run import store
    store.save(req["path"], unhexlify(req["data"]))
    loaded = store.load(req["path"], binary=True)
    return {"loaded": _hex(loaded), "missing": store.load(req["path"] + ".absent")}


OPS["store"] = store_op
