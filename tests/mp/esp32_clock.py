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


sys.modules["ampshare.clock"] = Esp32Clock  # before any core is imported

import drive  # noqa: E402
from ampshare import protocol as P  # noqa: E402
from ampshare import protocol_leader as W  # noqa: E402
from ampshare.follower import Follower  # noqa: E402

DAY = 86_400_000
KEY = b"\x11" * 32
UID = b"\x24\x00\x00\x00\x00\x01"


def ticks(ms):
    return Esp32Clock.ticks_add(0, ms)


out = {}
f = Follower(UID, 32000, 3, False, 1, b"label", ticks(0), key=KEY, charger=0)
seq = [0]


def command(t, amps):
    seq[0] += 1
    f.receive(ticks(t), W.command(P.Key(KEY), UID, 1, seq[0], 1, amps * 1000, 6000, 3))


def run(t0, t1, step, high):
    for t in range(t0, t1, step):
        f.sample(ticks(t), high, -12000)
        if high == 6000 and t % 1000 == 0:
            command(t, 16)
        f.tick(ticks(t))


command(0, 16)
run(0, 20_000, 100, 6000)  # a session
run(20_000, 7 * DAY, 60_000, 12000)  # unplugged for a week
out["duty_before"] = f.duty
start = 7 * DAY
run(start, start + 12_000, 100, 6000)  # a car arrives
out["offered_after_12_s"] = f.offered
pair = W.pair(b"label", UID, b"n" * 8, 1, 0, "wb", b"\x22" * 32)
out["pair_accepted"] = f.receive(ticks(start + 12_000), pair)
out["uptime_s"] = f.uptime_s
print(json.dumps(out))
