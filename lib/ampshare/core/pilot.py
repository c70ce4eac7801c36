# Control-pilot rules of IEC 61851-1, in integers. Duty cycles are in 0.01 % (0..10000),
# voltages in millivolts, currents in milliamps.
from micropython import const

DUTY_FULL = const(10000)  # 100 %: a steady +12 V, no current offered (pause)
MIN_MA = const(6000)  # IEC 61851-1: the least current a pilot may offer
_MAX_MA = const(80000)  # and the most
_KNEE_MA = const(51000)  # 6-51 A: duty = A / 0.6 %; 51-80 A: duty = A / 2.5 + 64 %
_KNEE_DUTY = const(8500)
# The standard's second range starts at 85 % = 52.5 A: between 51 and 52.5 A the best duty
# that offers no more than asked is 85 % (51 A).
_GAP_END_MA = const(52500)

# Pilot states by the level of the positive half, with the nominal level between bands.
A = const(65)  # ord("A"): +12 V, no vehicle
B = const(66)  # +9 V, vehicle connected, not ready
C = const(67)  # +6 V, charging
D = const(68)  # +3 V, charging with ventilation
E = const(69)  # 0 V, short or no supply
F = const(70)  # -12 V, EVSE not available
LETTERS = b"ABCDEF"
PLUGGED = b"BCD"  # a car plugged in: it may want current
CHARGING = b"CD"
# IEC 61851-1 gives a car up to 5 s to follow a change of its pilot; an offer is raised at most
# this often (DESIGN.md), so each step is followed before the next.
EV_FOLLOW_MS = const(5_000)
INCREASE_GAP_MS = const(5_000)
# A phase drawing more than this is in use: above a charger meter's noise, below any car's
# minimum.
IN_USE_MA = const(1_000)
_NOMINAL_MV = ((12000, A), (9000, B), (6000, C), (3000, D), (0, E), (-12000, F))
_BAND_MV = const(1500)  # half the distance between neighbouring levels
# Hysteresis: a level must pass its band's edge by this much before the state changes, so
# noise near an edge cannot make the contactor chatter.
_HYSTERESIS_MV = const(400)
# Diode check: the negative half must be near -12 V. A missing diode (or a short) gives a
# negative half near the positive one; IEC 61851-1 expects -12 V +-1 V with the diode.
_DIODE_MAX_MV = const(-10500)


def duty_for(ma):
    """The duty that offers at most `ma`; anything below the minimum is a pause."""
    if ma < MIN_MA:
        return DUTY_FULL
    if ma > _MAX_MA:
        ma = _MAX_MA
    if ma < _GAP_END_MA:
        # A / 0.6 %, in 0.01 %: mA * 10000 / 60000, rounded down so it never offers more.
        return min(ma // 6, _KNEE_DUTY)
    # A / 2.5 + 64 %. Just above 51 A this gives a duty a car reads as a little under 51 A:
    # the standard's two ranges do not meet, and reading less is the safe side.
    return ma // 25 + 6400


def offered_by(duty):
    """The current a car reads from a duty (the inverse, rounded down); 0 for a pause."""
    if duty >= DUTY_FULL or duty < 1000:
        return 0  # 100 % is no offer; below 10 % is not a current offer at all
    if duty <= _KNEE_DUTY:
        return duty * 6
    if duty > 9600:
        duty = 9600
    return (duty - 6400) * 25


def nominal_mv(letter):
    # A..E step down from +12 V by 3 V; F is -12 V.
    return -12000 if letter == F else 12000 - 3000 * (letter - A)


def classify(high_mv, prev):
    """The pilot state for the positive level, keeping `prev` while inside its widened band."""
    if prev:
        nominal = nominal_mv(prev)
        if nominal - _BAND_MV - _HYSTERESIS_MV < high_mv < nominal + _BAND_MV + _HYSTERESIS_MV:
            return prev
    for nominal, letter in _NOMINAL_MV:
        if high_mv > nominal - _BAND_MV:
            return letter
    return F


def diode_ok(low_mv):
    return low_mv <= _DIODE_MAX_MV
