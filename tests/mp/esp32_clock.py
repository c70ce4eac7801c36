# Runs a follower core and a leader core for a week on the ESP32's clock (ticks with a 2**30
# period, differences valid below 2**29 ms, about 6.2 days). Prints one JSON line.
import json
import sys

_PERIOD = 1 << 30
_HALF = _PERIOD >> 1


class Esp32Clock:
    @staticmethod
    def ticks_add(t, delta):
        return (t + delta) % _PERIOD

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + _HALF) % _PERIOD) - _HALF


# ampshare.core.clock takes its tick arithmetic from `time`: given this one while it loads, every
# core (and clock.aged) runs on the ESP32's.
_time = sys.modules.get("time")
sys.modules["time"] = Esp32Clock
import ampshare.core.clock  # noqa: E402,F401
if _time is not None:
    sys.modules["time"] = _time
else:
    del sys.modules["time"]

import drive  # noqa: E402
from ampshare.core.follower import Follower  # noqa: E402
from ampshare.wire import frame as P  # noqa: E402
from ampshare.wire import leader as W  # noqa: E402
from ampshare.wire.follower import FollowerPort  # noqa: E402
from ampshare.wire.leader import LeaderPort  # noqa: E402

DAY = 86_400_000
KEY = b"\x11" * 32
UID = b"\x24\x00\x00\x00\x00\x01"


def ticks(ms):
    return Esp32Clock.ticks_add(0, ms)


out = {}
f = Follower(32000, 3, False, ticks(0))
fp = FollowerPort(f, UID, b"label", 1, key=KEY, charger=0)
seq = [0]
BUF = bytearray(P.COMMAND_LEN)


def command(t, amps):
    seq[0] += 1
    data = W.seal_command(BUF, memoryview(BUF)[:P.COMMAND_LEN - P.TAG_LEN], P.Key(KEY), UID, 1, seq[0], 1,
                          amps * 1000, 6000, 3)
    fp.receive(ticks(t), bytes(data))


def run(t0, t1, step, high):
    for t in range(t0, t1, step):
        f.sample(ticks(t), high, -12000)
        if high == 6000 and t % 1000 == 0:
            command(t, 16)
        fp.tick(ticks(t))


command(0, 16)
run(0, 20_000, 100, 6000)  # a session
run(20_000, 7 * DAY, 60_000, 12000)  # unplugged for a week
out["duty_before"] = f.duty
start = 7 * DAY
run(start, start + 12_000, 100, 6000)  # a car arrives
out["offered_after_12_s"] = f.offered
pair = W.pair(b"label", UID, b"n" * 8, 1, 0, "wb", b"\x22" * 32)
out["pair_accepted"] = fp.receive(ticks(start + 12_000), pair)
out["uptime_s"] = f.uptime_s

# The leader: a follower silent for a week comes back; a decrease it does not confirm is
# repeated within RESEND_MS, as on the first day (every kept tick was aged).
from ampshare.config import site as sitemod  # noqa: E402
from ampshare.core.leader import Leader  # noqa: E402

SITE = {"version": 1, "groups": [{"id": "m", "limit_a": 32, "meter": "g", "reserve_a": 0}],
        "meters": [{"id": "g", "source": "modbus"}],
        "chargers": [{"id": "a", "group": "m", "max_a": 32, "rotation": "L123"}]}
L = Leader(sitemod.parse(SITE), ticks(0))
LP = LeaderPort(L, 1)
LP.add_follower(0, UID, KEY)
fseq = [0]


def report(t, held=None):
    # It holds what it was sent (or `held`), and its car draws 16 A.
    fseq[0] += 1
    from ampshare.wire import follower as PF
    LP.receive(ticks(t), PF.state(P.Key(KEY), UID, 1, fseq[0], 1, ord("C"), 0, L.sent[0] if held is None else held,
                                 6000, (16000, 16000, 16000), 3, 2, 0, t // 1000, LP.seq))


def lead(t0, t1, step, meter_a, reports=True):
    sent = 0
    for t in range(t0, t1, step):
        if t % 1000 == 0:
            L.meter(ticks(t), 0, meter_a * 1000, meter_a * 1000, meter_a * 1000)
            if reports:
                report(t)
        sent += len(LP.tick(ticks(t)))
    return sent


lead(0, 20_000, 100, 16)  # charging at 16 A
lead(20_000, 40_000, 100, 26)  # other load up 10 A: lowered, confirmed, freed
out["lowered"] = L.sent[0]
lead(40_000, 7 * DAY, 60_000, 26, False)  # silent for a week, the meter still read
# Back, saying it holds more than it was sent (a report the leader had not seen): counted,
# and the decrease repeated within RESEND_MS, as on the first day.
lead(start, start + 100, 100, 26, False)  # its period
report(start + 50, 32000)
out["resent_within_400_ms"] = lead(start + 100, start + 500, 100, 26, False) > 0
print(json.dumps(out))
