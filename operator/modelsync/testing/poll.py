"""Waiting for a state in tests by looking at it, not by sleeping a fixed time.

``eventually(probe)`` calls ``probe`` until it returns something truthy and returns that: a test
goes on as soon as the state is there, and a slow machine only makes it wait longer, never fail.
A fixed sleep stays only where a test checks that *nothing* happens for a while (a quiet period:
resyncs that must not write); such sleeps say so where they are.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], what: str = "the expected state", timeout: float = 30,
               interval: float = 0.2) -> T:
    """``probe()``'s first truthy result, looked for every ``interval`` seconds for ``timeout``
    seconds; :class:`TimeoutError` naming ``what`` and the last result otherwise. An exception
    from ``probe`` is not caught."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no {what} after {timeout:g}s (last: {value!r})"[:2000])
        time.sleep(interval)
