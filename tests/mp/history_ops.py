# Helpers for tests/test_history.py's scripts, which run in the unix port: feed a History
# known values under a clock the test steps, read back what it keeps, print JSON.
import json
import sys
from array import array


def esp32_clock():
    """ampshare.core.clock on the ESP32's ticks (period 2**30) for what is imported after:
    call before importing ampshare.run.history (as tests/mp/esp32_clock.py does)."""
    period, half = 1 << 30, 1 << 29

    class Esp32Clock:
        @staticmethod
        def ticks_add(t, delta):
            return (t + delta) % period

        @staticmethod
        def ticks_diff(a, b):
            return ((a - b + half) % period) - half

    saved = sys.modules.get("time")
    sys.modules["time"] = Esp32Clock
    import ampshare.core.clock  # noqa: F401
    if saved is not None:
        sys.modules["time"] = saved
    else:
        del sys.modules["time"]
    return Esp32Clock


def feed(h, t, seconds, fn, step_ms=1000, add=None):
    """seconds samples, one per step_ms from ticks t; fn(k, i) the value of series i at the
    k-th sample (k counts from 0). Returns the ticks after the last one."""
    vals = array("i", [0] * h.n)
    for k in range(seconds):
        for i in range(h.n):
            vals[i] = fn(k, i)
        h.sample(t, vals)
        t = add(t, step_ms) if add else t + step_ms
    return t


def rows(h, i):
    return [[s, int(flag), v] for s, flag, v in h.series(i)]


def doc(h, i_first, names, now_ms=None):
    return json.loads("".join(h.chunks(i_first, names, now_ms)))


def state(h):
    return {"seq": h.seq, "errors": h.errors, "error": h.error, "off": h.off, "new": h.new, "size": h.size}


def out(obj):
    print(json.dumps(obj))


def seg(p, k):
    """The name of segment k of the history at path p."""
    return "%s.%02d" % (p, k)


def segments(h):
    """Every segment's bytes (None for a file that is not there), in order."""
    got = []
    for k in range(h.slots // h.per):
        try:
            with open(seg(h.path, k), "rb") as f:
                got.append(f.read())
        except OSError:
            got.append(None)
    return got


def spy(fail=None):
    """Replaces open() in ampshare.run.history by one that logs each call as [segment number
    (or the name, for another file), mode] to the list it returns, and raises OSError(EIO)
    for a call fail(name, mode) is true of."""
    import ampshare.run.history as mod
    log = []

    def spied(name, mode="r"):
        log.append([int(name[-2:]) if name[-3] == "." else name, mode])
        if fail and fail(name, mode):
            raise OSError(5)
        return open(name, mode)
    mod.open = spied
    return log


def writes(log):
    """log's entries that open a file for writing."""
    return [e for e in log if e[1] != "rb"]
