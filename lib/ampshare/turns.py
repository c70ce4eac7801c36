# Turn-taking when not every car can have its minimum: the allocator admits chargers by
# priority, then by rank (allocator.py). Ranks are the energy each car has received in its
# session, re-read on a fixed interval, so the paused ones take turns: at each turn the cars
# that have had least are admitted first. Between turns the order stands still, so nobody is
# paused and resumed on every small change. Sans-I/O: reports and now_ms in, ranks out.
from array import array

from micropython import const

from ampshare.clock import ticks_add, ticks_diff

TURN_MS = const(900_000)  # 15 min: long enough to be worth a contactor cycle and the car's
#                           restart, short enough that a waiting car starts within the hour
_RANK_MAX = const(0x1FFFFF)  # allocator.py keeps ranks in 21 bits (2,097 kWh: no session is longer)
_PLUGGED = b"BCD"


class Turns:
    def __init__(self, alloc, now_ms, turn_ms=TURN_MS):
        self.alloc = alloc
        nc = len(alloc.site.charger_ids)
        self.turn_ms = turn_ms
        self.wh = array("i", [0] * nc)  # the follower's energy counter, as last reported
        self.base = array("i", [0] * nc)  # the counter when this session began
        self.plugged = bytearray(nc)
        self._due = ticks_add(now_ms, turn_ms)

    def report(self, c, letter, wh):
        """A follower's state letter and energy counter (Wh)."""
        plugged = letter in _PLUGGED
        if plugged and not self.plugged[c]:
            # A new session: at the back of the line until the next turn, whatever it had.
            self.base[c] = wh
            self.alloc.rank[c] = _RANK_MAX
        self.plugged[c] = plugged
        self.wh[c] = wh

    def tick(self, now_ms):
        """True at a turn, with the ranks re-read: the caller allocates at once."""
        if ticks_diff(now_ms, self._due) < 0:
            return False
        self._due = ticks_add(now_ms, self.turn_ms)
        rank = self.alloc.rank
        for c in range(len(self.wh)):
            got = self.wh[c] - self.base[c]
            rank[c] = 0 if got < 0 else got if got < _RANK_MAX else _RANK_MAX
        return True
