"""Waiting for an event instead of for a stretch of time, and seeing what a client waited for.

:func:`until` is the synchronous twin of :func:`testkit.aio.until`: a test that needs something
to have happened (a request to arrive, a thread to block, a child to print) waits for that
thing, bounded, rather than sleeping and hoping. :class:`SleepLog` records the waits a thread
asks ``time.sleep`` for (and still sleeps them), so a test checks the backoff a client chose
from the numbers it chose, not from a wall clock that a busy machine stretches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import List, Optional

#: how long :func:`until` waits by default: far longer than any event a test waits for takes,
#: even on a loaded machine, and short enough that a test that went wrong still ends
DEFAULT_TIMEOUT = 30.0

_real_sleep = time.sleep


def until(condition: Callable[[], object], timeout: float = DEFAULT_TIMEOUT, what: Optional[str] = None) -> None:
    """Poll ``condition()`` every 10 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what or 'condition'} not met within {timeout} s"
        _real_sleep(0.01)


class SleepLog:
    """Stands in for ``time.sleep`` (install with ``monkeypatch.setattr(time, "sleep", log)``):
    every call sleeps as asked, and those made on the thread that built the log are recorded."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.seconds: List[float] = []

    def __call__(self, seconds: float) -> None:
        if threading.get_ident() == self.thread:
            self.seconds.append(float(seconds))
        _real_sleep(seconds)
