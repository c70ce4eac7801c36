# Make-before-break: what every car may still draw and every fallback a follower may still
# hold, per fuse and phase, so that an increase goes out only where it fits beside them.
# A car may still draw the highest offer in force over the last 5 s (the EV's time to follow a
# decrease); a follower may still hold the highest fallback it may have accepted. Sans-I/O:
# the leader fills it each period from its own bookkeeping, then asks and takes.
from array import array

from micropython import const

from ampshare.core.clock import ticks_diff

# An increase takes the least room of the last two to three seconds: a meter read a moment
# after a car stopped, before the car's report came, shows the stop as room (its draw still
# credited). The report comes within a second (the followers' period), or within 1.3 s of
# the stop when its datagram is held up in the network, and the reading a second after the
# meter's: three one-second windows cover the read, the late report and the next read.
_WINDOW_MS = const(1_000)
_WINDOWS = const(3)


class Budget:
    def __init__(self, alloc):
        self.alloc = alloc
        nk = alloc.nk
        self.use = array("i", [0] * nk)  # what the cars may still draw
        self.use_fb = array("i", [0] * nk)  # the fallbacks the followers may still hold
        self.up = array("i", [0] * nk)  # the room increases may use, after window()
        self._ring = array("i", [0] * (nk * _WINDOWS))  # each window's least cap_up, window-major
        self._at = 0  # the window filling now
        self._since = None

    def window(self, now_ms):
        """After each allocation: up = the least of the allocator's cap_up over the current
        window and the _WINDOWS - 1 before it."""
        cap, up, ring = self.alloc.cap_up, self.up, self._ring
        nk = self.alloc.nk  # (four names in one assignment would make a tuple)
        first = self._since is None
        if first or ticks_diff(now_ms, self._since) >= _WINDOW_MS:
            self._since = now_ms
            self._at = (self._at + 1) % _WINDOWS
            lo = self._at * nk
            hi = lo + nk
            if first:  # no earlier windows: this one stands for them all
                lo, hi = 0, len(ring)
            for i in range(lo, hi):
                ring[i] = cap[i % nk]
        base = self._at * nk
        for k in range(nk):
            v = cap[k]
            if v < ring[base + k]:
                ring[base + k] = v
            for w in range(_WINDOWS):
                r = ring[w * nk + k]
                if r < v:
                    v = r
            up[k] = v

    def count(self, permitted, fb_allowed, held, held_fb):
        """Every charger's figures on its fuses. A heard one's draw on the phases its car draws
        on; a silent one's, and every fallback, on each phase it is wired to: nobody watches
        then, and a new car may draw on all of them."""
        a, use, use_fb = self.alloc, self.use, self.use_fb
        for k in range(a.nk):
            use[k] = 0
            use_fb[k] = 0
        for c in range(a.nc):
            h = held[c]
            a.add_to(c, h if h else permitted[c], use, h != 0)
            a.add_to(c, held_fb[c] if h else fb_allowed[c], use_fb, True)

    def room(self, c, more):
        """How much of `more` (mA) charger c's car may be given beside what the others may
        still draw, on every phase it is counted on."""
        free = self.alloc.least_room(c, self.up, self.use)
        return more if more <= free else free

    def fits(self, c):
        """True when what every car may still draw fits, on every phase charger c is counted
        on, in the room increases may use."""
        return self.alloc.least_room(c, self.up, self.use) >= 0

    def take(self, c, more):
        self.alloc.add_to(c, more, self.use)

    def fallback_fits(self, c, more):
        """True when a fallback `more` mA higher fits beside every fallback the others may
        still hold, with every group at its reserve, on each phase c is wired to."""
        return more <= self.alloc.least_room(c, self.alloc.cap_fb, self.use_fb, True)

    def take_fallback(self, c, more):
        self.alloc.add_to(c, more, self.use_fb, True)
