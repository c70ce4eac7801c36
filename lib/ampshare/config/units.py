# Amps as they come from JSON (int or float) to integer milliamps, and back to text.
# This is the one place a float from a JSON document is touched: cores see milliamps only.
from micropython import const

_MA_PER_A = const(1000)


class ConfigError(ValueError):
    """A refused input: `field` names where, the message says why."""

    def __init__(self, field, reason):
        super().__init__(field + ": " + reason)
        self.field = field
        self.reason = reason


def whole(value, where, lo, hi):
    """A whole number within lo..hi, or a ConfigError naming where."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, "must be a whole number")
    if value < lo or value > hi:
        raise ConfigError(where, "%d is outside %d..%d" % (value, lo, hi))
    return value


def ma(value, field, lo_a, hi_a, decimals=1):
    # Configured amps carry at most one decimal (DESIGN.md); readings may carry three.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, "must be a number of amps")
    if value < lo_a or value > hi_a:
        raise ConfigError(field, "%s A is outside %d..%d A" % (value, lo_a, hi_a))
    if isinstance(value, int):
        return value * _MA_PER_A
    step = 10 ** (3 - decimals)
    scaled = value * _MA_PER_A / step
    units = int(scaled + 0.5) if scaled >= 0 else -int(-scaled + 0.5)
    if abs(scaled - units) > 1e-6:
        raise ConfigError(field, "%s A has more than %d decimal(s)" % (value, decimals))
    return units * step


def fmt_a(milliamps):
    # Exact decimal text for JSON: 20000 -> "20.0", 15370 -> "15.37", -250 -> "-0.25".
    sign = "-" if milliamps < 0 else ""
    m = -milliamps if milliamps < 0 else milliamps
    frac = "%03d" % (m % _MA_PER_A)
    frac = frac.rstrip("0") or "0"
    return "%s%d.%s" % (sign, m // _MA_PER_A, frac)
