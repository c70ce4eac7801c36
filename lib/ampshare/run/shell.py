# What both roles' shells share: a control loop at a fixed period that alone feeds the
# watchdog, and side tasks whose failure stops that feeding (so the board resets).
import sys
import time

import asyncio
from micropython import const

from ampshare.core.ints import count

# The control loop's timing, for the live view and make bench-mqtt: the longest interval
# between two control steps, over windows of this length (the last whole one and the current).
_GAP_WINDOW_MS = const(5000)


class Shell:
    period_ms = 100
    watchdog_ms = 2000

    def __init__(self, settings, board, now_ms):
        self.s = settings
        self.board = board
        self.started = now_ms
        self.failed = None
        self.flash_errors = 0  # failed writes to flash, shown in the live view
        self.flash_error = None  # the last one's message
        # The longest interval between two control steps (ms): in the current window, the
        # last one, and since start. A period is period_ms; anything that blocks the event
        # loop (a socket, a slow handler) shows here.
        self.gap_now = self.gap_last = self.gap_max = 0

    def persist(self, save, *args):
        """A write to flash: True when it took. One that fails (a full or worn flash) is
        counted and shown, and the board goes on controlling with what it holds in RAM: a
        reset would only meet the same flash again, in a loop."""
        try:
            save(*args)
            return True
        except OSError as e:
            self.flash_errors = count(self.flash_errors)
            self.flash_error = str(e)
            print("ampshare: flash write failed:", e)
            return False

    def step(self, now_ms):
        raise NotImplementedError

    def gap_recent(self):
        """The longest interval between two control steps in the last 5 to 10 s (ms)."""
        return max(self.gap_now, self.gap_last)

    def tasks(self):
        """The side tasks' coroutines (receiving, polling)."""
        return ()

    async def _guard(self, coro):
        try:
            await coro
        except Exception as e:  # a dead side task is as fatal as a dead loop
            sys.print_exception(e)
            self.failed = e

    async def control(self):
        b = self.board
        b.start_watchdog(self.watchdog_ms)
        due = last = window = time.ticks_ms()
        while self.failed is None:
            now = time.ticks_ms()
            gap = time.ticks_diff(now, last)
            last = now
            if gap > self.gap_now:
                self.gap_now = gap
                if gap > self.gap_max:
                    self.gap_max = gap
            if time.ticks_diff(now, window) >= _GAP_WINDOW_MS:
                window = now
                self.gap_last, self.gap_now = self.gap_now, 0
            self.step(now)
            b.keepalive()
            b.feed()
            due = time.ticks_add(due, self.period_ms)
            wait = time.ticks_diff(due, time.ticks_ms())
            if wait < 0:  # overran: start a fresh period rather than run several at once
                due = time.ticks_ms()
                wait = 0
            await asyncio.sleep_ms(wait)
        raise self.failed

    async def main(self):
        for coro in self.tasks():
            asyncio.create_task(self._guard(coro))
        asyncio.create_task(self._guard(self.board.run()))
        await self.control()
