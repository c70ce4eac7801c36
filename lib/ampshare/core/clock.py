# The board's tick arithmetic, in one place: the cores take it from here, so a test can give
# them a clock with the ESP32's 2**30 period (the unix port's runs to 2**62). Differences are
# only valid below half the period (about 6 days on the ESP32): a core never keeps a time
# older than that, it ages it instead.
from time import ticks_add, ticks_diff  # noqa: F401


def aged(now_ms, t, keep_ms):
    """t, or now_ms - keep_ms when t is older: a timer that has run out stays run out, and no
    kept difference grows towards half the ticks period."""
    return t if ticks_diff(now_ms, t) <= keep_ms else ticks_add(now_ms, -keep_ms)
