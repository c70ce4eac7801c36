# The Modbus RTU master's shell: one request at a time on a serial line, awaited without
# blocking the event loop. It keeps the line's rules: the inter-frame silence before a
# request, the RS485 driver enabled only while sending, and a timeout for the answer.
import time

import asyncio
from micropython import const

from ampshare.meter import modbus as M

_BITS_PER_CHAR = const(11)  # RTU frames a byte in 11 bits (start, 8 data, parity or 2nd stop, stop)
_FAST_SILENCE_US = const(1750)  # above 19200 baud the silences are fixed (Modbus over serial 2.5.1.1)
_POLL_MS = const(2)  # how often a partial answer is looked at: 2 characters at 9600 baud
# A meter answers within tens of ms (Eastron: under 100 ms); a missing one must not hold the
# line: 200 ms past the answer's own transmission time.
_TURNAROUND_MS = const(200)


class Master:
    def __init__(self, port):
        self.port = port
        self.char_us = _BITS_PER_CHAR * 1_000_000 // port.baud
        self.silence_us = _FAST_SILENCE_US if port.baud > 19200 else self.char_us * 35 // 10
        self.req = bytearray(8)
        self.frame = bytearray(M.answer_len(M.REGS_MAX))
        self._mv = memoryview(self.frame)
        self._quiet_at = time.ticks_ms()

    async def read(self, unit, fc, start, count):
        """The checked answer (a buffer: words via modbus.word) or ModbusError."""
        M.read_request(self.req, unit, fc, start, count)
        wait = self.silence_us // 1000 + 1 - time.ticks_diff(time.ticks_ms(), self._quiet_at)
        if wait > 0:
            await asyncio.sleep_ms(wait)
        p = self.port
        while p.readinto(self._mv):
            pass  # a late answer to an earlier request: not this one's
        p.send(self.req)
        n, whole = await self._collect(unit, count)
        self._quiet_at = time.ticks_ms()
        if not whole:
            raise M.ModbusError(M.E_TIMEOUT, "%d bytes in time" % n)
        M.check_answer(self.frame, n, unit, fc, count)
        return self.frame

    async def _collect(self, unit, count):
        need = M.answer_len(count)
        deadline = time.ticks_add(time.ticks_ms(), _TURNAROUND_MS + need * self.char_us // 1000)
        n = 0
        frame = self.frame
        view = self._mv[0:need]  # made again only when bytes arrive, not every poll
        while n < need and time.ticks_diff(deadline, time.ticks_ms()) > 0:
            got = self.port.readinto(view)
            if got:
                n += got
                while n and frame[0] != unit:
                    # A stray byte ahead of the answer (the line settling as a driver
                    # switches): the answer starts at its unit's address.
                    frame[0:n - 1] = frame[1:n]
                    n -= 1
                if n >= 2:
                    need = M.expected(self.frame, count)
                view = self._mv[n:need]
            if n < need:
                await asyncio.sleep_ms(_POLL_MS)
        return n, n >= need
