# Turn-taking when not every car can have its minimum: the allocator admits chargers by
# priority, then by rank (allocator.py). Ranks are the energy each car has received in its
# session, re-read on a fixed interval, so the paused ones take turns: at each turn the cars
# that have had least are admitted first. Between turns the order stands still, so nobody is
# paused and resumed on every small change. Sans-I/O: reports and now_ms in, ranks out.
from array import array

from ampshare.core.allocator import RANK_MAX
from ampshare.core.pilot import PLUGGED
from ampshare.core.clock import ticks_add, ticks_diff



class Turns:
    def __init__(self, alloc, now_ms, turn_ms):
        self.alloc = alloc
        nc = len(alloc.site.charger_ids)
        self.turn_ms = turn_ms
        self.wh = array("i", [0] * nc)  # the follower's energy counter, as last reported
        self.base = array("i", [0] * nc)  # the counter when this session began
        self.plugged = bytearray(nc)
        self._due = ticks_add(now_ms, turn_ms)

    def report(self, c, letter, wh):
        """A follower's state letter and energy counter (Wh)."""
        plugged = letter in PLUGGED
        if plugged and not self.plugged[c]:
            # A new session: at the back of the line until the next turn, whatever it had.
            self.base[c] = wh
            self.alloc.rank[c] = RANK_MAX  # the allocator's bound: 2,097 kWh, no session is longer
        self.plugged[c] = plugged
        self.wh[c] = wh

    def next_in(self, now_ms):
        """ms until the next turn (the page's "turn in N min")."""
        return ticks_diff(self._due, now_ms)

    def tick(self, now_ms):
        """True at a turn, with the ranks re-read: the caller allocates at once."""
        if ticks_diff(now_ms, self._due) < 0:
            return False
        self._due = ticks_add(now_ms, self.turn_ms)
        rank = self.alloc.rank
        for c in range(len(self.wh)):
            got = self.wh[c] - self.base[c]
            rank[c] = got  # the allocator bounds it
        return True
