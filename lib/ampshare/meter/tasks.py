# The leader's own meters, where the board has them: the Modbus meters on its RS485 line and
# its CT clamps. Loaded only on a leader whose settings name a line or clamps. The folder holds
# pure decoders (modbus.py frames, maps.py register maps, ct.py RMS) beside their shells (rtu.py
# the RTU master, poll.py polling, and this file).
import time

import asyncio
from array import array
from micropython import const

from ampshare.core.ints import count

METER_MS = const(1000)  # DESIGN.md: meters are read every second


_CT_RATE_HZ = const(2000)  # frames a second: 40 a mains cycle, the design's aim (docs/metering.md)


def implausible_ma(site, m):
    # A meter reading more than twice the largest fuse it measures is broken, not loaded:
    # twice its rating trips a fuse within seconds.
    most = 0
    for g, gm in enumerate(site.gmeter):
        if gm == m:
            for p in range(3):
                most = max(most, site.limit[g * 3 + p])
    return 2 * most if most else 2 * 1000 * 1000  # unnamed: a 1000 A site's


def modbus_line(rs, site, board, feed):
    """The site's Modbus meters on the board's RS485 line, read by one task (line.run())."""
    from ampshare.meter.poll import MeterLine, ModbusMeter
    from ampshare.meter.rtu import Master
    line = MeterLine(feed, METER_MS)
    master = Master(board.serial(rs))
    for m, source in enumerate(site.meter_source):
        if source == "modbus":
            line.add(m, ModbusMeter(master, site.meter_model[m], site.meter_addr[m], implausible_ma(site, m),
                                    site.meter_phase[m] or 0))
    return line


class Clamps:
    """The board's CT clamps, measuring the site's (first) "ct" meter."""

    def __init__(self, cfg, site, board, feed):
        from ampshare.meter import ct
        from ampshare.config.units import ConfigError
        meter = ct.Ct(cfg["phases"], cfg.get("mode", ct.IMPORT_ONLY), cfg.get("voltages"))
        if meter.n_phases != 3:
            # The site's meters read three phases (a 1-phase CT meter has no site phase to name):
            # fewer would leave the others unmeasured, as 0 A of load.
            raise ConfigError("settings.ct.phases", "the site's ct meter measures three phases; list three")
        if len(cfg["pins"]) != meter.width:
            raise ConfigError("settings.ct.pins", "%d pins for a frame of %d channels" % (len(cfg["pins"]), meter.width))
        rate = cfg.get("rate_hz", _CT_RATE_HZ)
        self.n = ct.samples_for(rate)
        self.m = site.meter_source.index("ct")
        self.meter = meter
        self.sampler = board.ct_sampler(cfg["pins"], rate)
        self.buf = array("H", bytes(2 * self.n * meter.width))
        self.feed = feed
        self.good = 0
        self.reasons = ct.REASONS
        self.failed = array("i", [0] * len(ct.REASONS))  # windows without a reading, by ct's reason
        self.last_error = None

    async def run(self):
        from ampshare.meter import ct
        meter, n = self.meter, self.n
        while True:
            began = time.ticks_ms()
            await self.sampler.window(self.buf, n, max(1, n // ct.CYCLES))  # a mains cycle per turn
            err = meter.read(self.buf, n)
            if err == ct.OK:
                self.feed(self.m, meter.ma[0], meter.ma[1], meter.ma[2])
                self.good = count(self.good)
            else:  # no reading, and in 5 s the meter is silent
                self.failed[err] = count(self.failed[err])
                self.last_error = (err, meter.fault)  # its phase now: a good window clears fault
            wait = METER_MS - time.ticks_diff(time.ticks_ms(), began)
            await asyncio.sleep_ms(wait if wait > 0 else 0)
