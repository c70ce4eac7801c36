# The follower core: one wallbox's control pilot, contactor and link to the leader.
# Sans-I/O: the shell feeds pilot levels and measured currents, wire/follower.py the leader's
# authentic COMMANDs (as values), each with now_ms; they read back the duty, the contactor and
# when to report.
from array import array
from ampshare.core.clock import ticks_add, ticks_diff

from micropython import const

from ampshare.core import link, pilot

# Defaults, each with its reason.
WATCHDOG_MS = const(10_000)  # DESIGN.md: no valid COMMAND for 10 s -> the fallback current
_PAUSE_OPEN_MS = const(6_000)  # paused but the car still draws: open after the EV's 5 s + 1 s
# After a pause, stay paused this long: every restart is a contactor cycle (rated in tens of
# thousands), and some cars fault when a session stops and starts within seconds.
MIN_PAUSE_MS = const(60_000)
REPORT_MS = const(1_000)  # STATE at least once a second, and at once on a change
_HELLO_MS = const(2_000)  # announce while unpaired: found within a page refresh
# A paired unit no leader commands (its leader replaced or reset, or it was unpaired while
# away) announces itself too, with the charger id it holds, so the page shows where it thinks
# it belongs. Seldom: its reports go on beside, and a leader restart should not flood the air.
_CLAIM_MS = const(10_000)
_PAIR_WINDOW_MS = const(300_000)  # PAIR accepted 5 min after power-up or a button press
IDENTIFY_MS = const(10_000)  # the LED blinks this long after a COMMAND that asks it to
# When the watchdog fires, an offer below the fallback waits this long before rising to it,
# or to anything a COMMAND allows meanwhile. The others fell back at the same moment, and
# their cars take the EV's 5 s to come down to their fallbacks; a leader that still hears us
# (a link cut one way), or a new one adopting what we report (held() says the fallback), counts
# us at it already. 1 s for the report and 1 s for the network are added.
FALLBACK_RISE_MS = const(7_000)
# A measured change this large is reported at once: the leader subtracts the cars' draw from
# the site meter. A rise not yet reported reads as other load (the safe side); a fall not yet
# reported reads as room, so a fall is reported from less: below any car's current step
# (0.5 A), above a charger meter's noise.
_REPORT_DELTA_MA = const(1_000)
REPORT_FALL_MA = const(300)

# What tick() asks the wire to send
REPORT = const(1)
HELLO = const(2)

# 3<->1 phase switching (a charger with the second contactor), step by step: offer nothing,
# wait for the car to stop (up to the EV's 5 s and one more), open the contactor, move the
# relay, wait, offer again, and close only when the car asks again (C, pilot oscillating).
_SW_IDLE = const(0)
_SW_STOPPING = const(1)  # nothing offered; the contactor closed until the car has stopped
_SW_OPENING = const(2)  # the contactor opened; the relay waits for it to drop out
_SW_WAITING = const(3)  # the relay moved; the car's pause
_SWITCH_STOP_MS = const(6_000)
# A contactor drops out within tens of ms; the relay moves only after this, a control period
# later at the soonest, so no two coil changes ever fall in the same instant.
_CONTACTOR_DROP_MS = const(500)
# A car's on-board charger re-detects its phases only after a pause: some need 45 s or more
# before they accept the new count without a fault, so a minute.
SWITCH_PAUSE_MS = const(60_000)


class Follower:
    def __init__(self, nameplate_ma, phases, can_switch, now_ms, paired=False):
        self.nameplate = nameplate_ma
        self.phases = phases
        self.can_switch = can_switch
        self.paired = paired  # it holds a key (wire/follower.py)
        self._up_at = now_ms
        self.uptime_s = 0
        self.window_until = ticks_add(now_ms, _PAIR_WINDOW_MS)
        self.window_open = True
        # Link
        self.heard = False
        self.last_cmd = now_ms
        self.target = 0  # what the leader allows now
        self.fallback = 0  # what may be kept if the leader goes silent
        self.at_fallback = False
        self._fallen_at = None  # ticks the watchdog fired, while a rise must still wait
        # The charger's own phases (bits L1-L3) the leader's last COMMAND did not count it on:
        # it knew the car then, and that car drew on fewer. A car arriving after that waits
        # for a COMMAND that counts every phase it may draw on (its fallback counts them all).
        self.uncounted = 0
        self._new_car = False
        self.identify_until = None  # ticks until which the LED blinks (the shell drives it)
        self.flash_failed = False  # the shell could not save to flash: reported to the leader
        # Pilot and contactor
        self.state = pilot.A
        self.offered = 0  # what the pilot offers now
        self.duty = pilot.DUTY_FULL
        self.contactor = False
        self.diode = False  # passed since the car was plugged in
        self.errors = 0
        self.last_increase = ticks_add(now_ms, -pilot.INCREASE_GAP_MS)
        self.paused_at = None
        self.meas = array("i", [-1, -1, -1])  # mA; -1 until measured (a board without sensing never is)
        self.one_phase = False  # the relay's position: the shell drives hal.set_phase_relay
        self.switch = _SW_IDLE
        self._want_one = False
        self._switch_at = now_ms
        # The contactor closed since the car was plugged in. True at boot: a board that reset
        # mid-charge cannot know, and a needless pause is the safe side (cleared at A).
        self._session_closed = True
        self.metered = False
        self._reported = array("i", [0, 0, 0])
        self.energy_wh = 0
        # Reports
        self._last_report = ticks_add(now_ms, -REPORT_MS)
        self._last_claim = now_ms
        self._changed = True

    # ---- inputs ---------------------------------------------------------------------

    def press_pair(self, now_ms):
        self.window_until = ticks_add(now_ms, _PAIR_WINDOW_MS)
        self.window_open = True

    def sample(self, now_ms, high_mv, low_mv):
        """One reading of the pilot's positive and negative levels (the shell: >= 10 Hz)."""
        state = pilot.classify(high_mv, self.state)
        if state == pilot.A or state >= pilot.E:
            self.diode = False  # unplugged or a fault: check again before closing
        if self.duty < pilot.DUTY_FULL and pilot.B <= state <= pilot.D:
            # Oscillating with a car: the negative half is there to check.
            ok = pilot.diode_ok(low_mv)
            self.diode = ok
            self._flag(link.ERR_DIODE, not ok)
        self._flag(link.ERR_PILOT, state >= pilot.E)
        if state != self.state:
            if state == pilot.A:
                # The car left: the next one is a new session (no pause owed to it), and the
                # leader's count of this one's phases does not hold for it.
                self._new_car = self.uncounted & self._live() != 0
                self.paused_at = None  # the contactor opens now (_drive)
            self.state = state
            self._changed = True
            self._drive(now_ms)  # the contactor answers a state change at once
        elif self.contactor != self._contactor(now_ms):
            self._drive(now_ms)

    def measure(self, m1, m2, m3, energy_wh):
        self.metered = True  # a board without a meter: a switch waits the whole stop time
        rep = self._reported
        if _moved(m1, rep[0]) or _moved(m2, rep[1]) or _moved(m3, rep[2]):
            self._changed = True
        self.meas[0], self.meas[1], self.meas[2] = m1, m2, m3
        self.energy_wh = energy_wh

    def command(self, now_ms, cur, fb, phases, flags):
        """The leader's authentic, fresh COMMAND: current and fallback (mA), phases, flags."""
        self.heard = True
        self.last_cmd = now_ms
        self.target = min(cur, self.nameplate)
        self.fallback = min(fb, self.target)
        self.uncounted = flags >> link.UNCOUNTED_SHIFT & 7
        if self._new_car and not self.uncounted & self._live():
            self._new_car = False
            self._changed = True
        if flags & link.IDENTIFY:
            self.identify_until = ticks_add(now_ms, IDENTIFY_MS)
        self._want_one = self.can_switch and phases == 1
        if self.switch == _SW_IDLE and self._want_one != self.one_phase:
            self.switch = _SW_STOPPING
            self._switch_at = now_ms
            self._changed = True
        if self.at_fallback:
            self.at_fallback = False
            self._changed = True
        self._drive(now_ms)

    def paired_now(self):
        """A PAIR was accepted (wire/follower.py): one pairing per window."""
        self.paired = True
        self.window_open = False
        self._changed = True

    def tick(self, now_ms):
        """Timers; returns what to send the leader now: REPORT, HELLO or 0."""
        self._age(now_ms)
        if self.heard or self.paired:
            if not self.at_fallback and ticks_diff(now_ms, self.last_cmd) >= WATCHDOG_MS:
                self.at_fallback = True
                self._fallen_at = now_ms
                self._changed = True
        self._drive(now_ms, True)
        if not self.paired:
            if ticks_diff(now_ms, self._last_report) >= _HELLO_MS:
                self._last_report = now_ms
                return HELLO
            return 0
        if self._changed or ticks_diff(now_ms, self._last_report) >= REPORT_MS:
            self._last_report = now_ms
            self._changed = False
            return REPORT
        if self.at_fallback and ticks_diff(now_ms, self._last_claim) >= _CLAIM_MS:
            self._last_claim = now_ms
            return HELLO
        return 0

    def _age(self, now_ms):
        # Times are kept only while they decide something: past that they are closed or moved
        # up, so no difference ever nears half the ticks period (6 days on the ESP32). Once
        # a second is often enough, and keeps the 10 Hz tick cheap.
        if ticks_diff(now_ms, self._up_at) < 1000:
            return
        if self.window_open and ticks_diff(now_ms, self.window_until) >= 0:
            self.window_open = False
        if self.identify_until is not None and ticks_diff(now_ms, self.identify_until) >= 0:
            self.identify_until = None
        if self._fallen_at is not None and ticks_diff(now_ms, self._fallen_at) >= FALLBACK_RISE_MS:
            self._fallen_at = None
        if ticks_diff(now_ms, self.last_increase) > pilot.INCREASE_GAP_MS:
            self.last_increase = ticks_add(now_ms, -pilot.INCREASE_GAP_MS)
        if not self.at_fallback:
            self._last_claim = now_ms  # the first claim comes _CLAIM_MS into a fallback
        if self.paused_at is not None and not self.contactor and \
                ticks_diff(now_ms, self.paused_at) >= MIN_PAUSE_MS:
            self.paused_at = None
        while ticks_diff(now_ms, self._up_at) >= 1000:
            self._up_at = ticks_add(self._up_at, 1000)
            self.uptime_s += 1

    # ---- the pilot's offer and the contactor ----------------------------------------

    def allowed(self):
        """What the leader allows now: its command, or the fallback once it went silent."""
        if self.switch != _SW_IDLE:
            return 0  # switching phases: nothing until the relay has moved and settled
        if self.at_fallback:
            return self.fallback if self.heard else 0
        if self._new_car:
            return 0  # the leader counts this charger on fewer phases than a new car may use
        return self.target

    def _live(self):
        # The charger's own phases a car may draw on now: L1 alone behind a 1-phase relay.
        return 1 if self.one_phase else (1 << self.phases) - 1

    def _drive(self, now_ms, settled_ok=False):
        if self.switch != _SW_IDLE:
            self._switching(now_ms)
            settled_ok = False
        want = self.allowed()
        if want < pilot.MIN_MA or self.errors & link.ERR_PILOT:
            want = 0
        if settled_ok and want == self.offered and not (self.contactor and not want):
            return  # nothing to change and no pause timer running: the common tick
        car = pilot.B <= self.state <= pilot.D
        if want < self.offered:
            self._offer(now_ms, want)  # a decrease at once
        elif want > self.offered and self._may_increase(now_ms):
            self._offer(now_ms, want)
            self.last_increase = now_ms
        self.duty = pilot.duty_for(self.offered) if car else pilot.DUTY_FULL
        closed = self._contactor(now_ms)
        if closed != self.contactor:
            self.contactor = closed
            self._changed = True
        if closed:
            self._session_closed = True

    def _switching(self, now_ms):
        waited = ticks_diff(now_ms, self._switch_at)
        if self.switch == _SW_STOPPING:
            if waited < _SWITCH_STOP_MS and self.contactor and (not self.metered or self.in_use() or not waited):
                return  # the car may still draw: it has until the stop time (all of it, unmetered)
            self.contactor = False  # opens first; the relay never moves under load
            self._next_step(now_ms, _SW_OPENING)
        elif self.switch == _SW_OPENING:
            if waited >= _CONTACTOR_DROP_MS:
                self.one_phase = self._want_one
                self._next_step(now_ms, _SW_WAITING)
        elif not self._session_closed or waited >= SWITCH_PAUSE_MS:
            # A car that has not charged in this session knows no phase count yet: no pause.
            if self._want_one != self.one_phase:
                self._next_step(now_ms, _SW_OPENING)  # asked back meanwhile: the contactor is open
                return
            self.switch = _SW_IDLE
            self.diode = False  # the car must ask again, on an oscillating pilot
            self._changed = True

    def _next_step(self, now_ms, step):
        self.switch = step
        self._switch_at = now_ms
        self._changed = True

    def _may_increase(self, now_ms):
        if ticks_diff(now_ms, self.last_increase) < pilot.INCREASE_GAP_MS:
            return False
        if self._fallen_at is not None and ticks_diff(now_ms, self._fallen_at) < FALLBACK_RISE_MS:
            return False  # also when a new leader's first COMMAND comes meanwhile
        return self.paused_at is None or ticks_diff(now_ms, self.paused_at) >= MIN_PAUSE_MS

    def _offer(self, now_ms, ma):
        if ma == 0 and self.offered and self.state != pilot.A:
            self.paused_at = now_ms  # a car's session paused: it owes the minimum pause
        self.offered = ma
        self._changed = True

    def _contactor(self, now_ms):
        if self.state == pilot.A:
            self._session_closed = False
        if not pilot.C <= self.state <= pilot.D or self.errors or self.switch >= _SW_OPENING:
            return False  # the car went back to B or A, or a fault: open now
        if self.offered == 0:
            # Paused: the car should stop within 5 s; open after 6 s even if it does not.
            if not self.contactor:
                return False
            return self.paused_at is not None and ticks_diff(now_ms, self.paused_at) < _PAUSE_OPEN_MS
        return self.contactor or self.diode

    def _flag(self, bit, on):
        old = self.errors
        self.errors = (old | bit) if on else (old & ~bit)
        if self.errors != old:
            self._changed = True

    # ---- outgoing -------------------------------------------------------------------

    def in_use(self):
        n = 0
        for k in range(3):
            if self.meas[k] > pilot.IN_USE_MA:
                n += 1
        return n

    def identifying(self):
        return self.identify_until is not None

    def reported(self):
        """What a STATE says (wire/follower.py reads it), as it goes out: the measurement it
        carries is the one a later change is measured from."""
        for k in range(3):
            self._reported[k] = self.meas[k]

    def status_flags(self):
        return (link.AT_FALLBACK if self.at_fallback else 0) | (link.CONTACTOR if self.contactor else 0) | \
            (link.ONE_PHASE if self.one_phase else 0) | (link.SWITCHING if self.switch != _SW_IDLE else 0) | \
            (link.FLASH_FAILED if self.flash_failed else 0) | (link.UNMEASURED if self.meas[0] < 0 else 0)

    def held(self):
        """What it may offer: its offer, or the command it holds if higher (an increase
        waiting out its gap). A decrease counts as followed only once this is down."""
        held = self.allowed()
        return held if held > self.offered else self.offered

    def held_fallback(self):
        return self.fallback if self.heard else 0


def _moved(now, reported):
    return now - reported >= _REPORT_DELTA_MA or reported - now >= REPORT_FALL_MA
