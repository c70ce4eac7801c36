# The board's tick arithmetic, in one place: the cores take it from here, so a test can give
# them a clock with the ESP32's 2**30 period (the unix port's runs to 2**62). Differences are
# only valid below half the period (about 6 days on the ESP32): a core never keeps a time
# older than that, it ages it instead.
from time import ticks_add, ticks_diff  # noqa: F401
