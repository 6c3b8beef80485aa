"""A clock whose time moves only when a test moves it, for :class:`modelsync.controller.WorkQueue`
(and anything else that takes a :class:`modelsync.controller.Clock`): a test of timing then waits
for nothing and cannot be late on a busy machine.
"""
from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
from typing import Callable


@dataclasses.dataclass
class ManualTimer:
    """One pending callback of a :class:`ManualClock`."""

    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """``now()`` is ``start`` until :meth:`advance` moves it; :meth:`call_later` callbacks run,
    in time order, when an advance reaches them (those due together in the order they were set)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(self._now + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    @property
    def pending(self) -> list[ManualTimer]:
        """The timers set and neither run nor cancelled, earliest first."""
        return [t for _, _, t in sorted(self._timers) if not t.cancelled]

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running each timer it reaches at its own time, and let
        the event loop run what they woke before the next one (and after the last)."""
        end = self._now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
            await settle()
        self._now = end
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every task that can run without time passing run (a few rounds of the event loop)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
