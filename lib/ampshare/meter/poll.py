# One Modbus meter on a line: each poll reads its register blocks, decodes them and checks
# that the currents are ones a healthy meter at this fuse could report. Failures are counted
# by kind; the caller feeds only good readings to the leader core, whose own timer makes a
# meter without one for 5 s silent (DESIGN.md).
import time

import asyncio
from array import array
from micropython import const

from ampshare.core.ints import count
from ampshare.meter import maps as meters
from ampshare.meter import modbus as M

# The total power and the energy registers are read every 10th poll (10 s at a poll a second):
# they move slowly and nothing in the control stands on them (a reading keeps them for whoever
# shows a meter; make meter-read reads the whole map at once). The currents, and the voltages
# and powers that sign them, are read every poll, and a failed slow read (a meter without those
# registers, say) costs them nothing: at 9600 baud each read is some 30 ms of the line.
_SLOW_EVERY = const(10)


class ModbusMeter:
    def __init__(self, master, model, unit, max_ma, phase=0):
        if model not in meters.MODELS:
            raise ValueError("unknown meter model '%s'" % model)
        self.fc, self.phases, self.fields = meters.MODELS[model]
        self.blocks = meters.blocks([f for f in self.fields if f[0] < meters.PT])
        self.slow_blocks = meters.blocks([f for f in self.fields if f[0] >= meters.PT])
        self._slow_bits = (1 << (meters.E_EXP + 1)) - (1 << meters.PT)
        self._polls = 0
        self.master = master
        self.unit = unit
        # Beyond this a reading is a fault, not a load: twice the fuse trips it within seconds.
        self.max_ma = max_ma
        self.phase = phase  # a 1-phase meter's site phase (0..2)
        self.reading = meters.Reading()
        self.errors = array("i", [0] * len(M.ERRORS))
        self.kinds = M.ERRORS  # the names of errors' kinds, for whoever shows the counts
        self.good = 0
        self.last_error = None

    async def poll(self, everything=False):
        """The fresh Reading, or ModbusError (counted). Its total power and energy are as fresh
        as the last slow read (every _SLOW_EVERY polls, or with everything, when a failed one
        fails the poll)."""
        r = self.reading
        r.present &= self._slow_bits
        try:
            for start, n in self.blocks:
                await self._block(start, n)
            r.signed_currents()
            for k in range(self.phases):
                if abs(r.values[meters.I1 + k]) > self.max_ma:
                    raise M.ModbusError(M.E_IMPLAUSIBLE, "L%d beyond twice the fuse" % (k + 1))
        except M.ModbusError as e:
            self._count(e)
            raise
        self.good = count(self.good)
        if everything or self._polls == 0:
            await self._slow(everything)
        self._polls = (self._polls + 1) % _SLOW_EVERY
        return r

    async def _slow(self, everything):
        self.reading.present &= ~self._slow_bits
        for start, n in self.slow_blocks:
            try:
                await self._block(start, n)
            except M.ModbusError as e:
                self._count(e)
                if everything:
                    raise

    async def _block(self, start, n):
        # One read, decoded into the reading; ModbusError for a failed one.
        try:
            frame = await self.master.read(self.unit, self.fc, start, n)
        except OSError as e:  # the line itself failed (a USB adapter unplugged): no answer
            raise M.ModbusError(M.E_TIMEOUT, "serial line: %s" % e)
        meters.decode(self.fields, start, n, frame, self.reading)

    def _count(self, e):
        self.errors[e.kind] = count(self.errors[e.kind])
        self.last_error = e

    def currents(self):
        """(l1, l2, l3) mA of the last good reading. A 1-phase meter's reading is on its site
        phase, 0 on the others (config/site.py refuses it unless their limits are 0)."""
        return meters.site_currents(self.reading.values, self.phases, self.phase)


class MeterLine:
    """The Modbus meters on one RS485 line, read in turn once a period. A good reading goes to
    feed(meter index, l1, l2, l3); a failed one is only counted, so the leader core's own
    timer turns a meter without a good reading for 5 s into a silent one."""

    def __init__(self, feed, period_ms):
        self.feed = feed
        self.period_ms = period_ms
        self.meters = []  # (site meter index, ModbusMeter)

    def add(self, m, meter):
        self.meters.append((m, meter))

    async def run(self):
        while True:
            began = time.ticks_ms()
            for m, meter in self.meters:
                try:
                    await meter.poll()
                except M.ModbusError:
                    continue
                l1, l2, l3 = meter.currents()
                self.feed(m, l1, l2, l3)
            wait = self.period_ms - time.ticks_diff(time.ticks_ms(), began)
            await asyncio.sleep_ms(wait if wait > 0 else 0)
