"""Waiting for an event instead of for a stretch of time, and seeing what a client waited for.

:func:`until` is the synchronous twin of :func:`testkit.aio.until`: a test that needs something
to have happened (a request to arrive, a thread to block, a child to print) waits for that
thing, bounded, rather than sleeping and hoping. :func:`before_call` tells when a thread has
reached a blocking call (a socket's ``recv``), which no sleep can. :class:`SleepLog` records the waits a thread
asks ``time.sleep`` for (and still sleeps them), so a test checks the backoff a client chose
from the numbers it chose, not from a wall clock that a busy machine stretches.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, List, Optional

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


@contextlib.contextmanager
def before_call(name: str, action: Optional[Callable[[], object]] = None) -> Iterator[threading.Event]:
    """Within the block, the first time this thread is about to call a built-in function or
    method called ``name`` (``"recv"``: the read a stream blocks in), run ``action`` and set the
    event this yields. Built on ``sys.setprofile``, the documented profiling hook, which sees the
    call as it begins: another thread waiting on the event acts once this one is in the call
    (or, at worst, on the instant before it, which is the same for a socket shut down meanwhile).
    """
    reached = threading.Event()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call" and getattr(arg, "__name__", None) == name and not reached.is_set():
            sys.setprofile(None)
            if action is not None:
                action()
            reached.set()

    sys.setprofile(profile)
    try:
        yield reached
    finally:
        sys.setprofile(None)


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
