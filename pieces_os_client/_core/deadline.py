"""Deadlines: when a wait must end, and how much of it is left.

A wait on the network is bounded twice over: each step (one health probe, one request) has
its own allowance, and a whole search (every probe of discovery) has one too. A step may never
outlast the whole it belongs to, so its deadline is the sooner of the two. The caller reads
the clock (``time.monotonic()``) and hands the value in; nothing here reads it.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

__all__ = ["Deadline", "OutOfTime", "seconds_text"]


class OutOfTime(TimeoutError):
    """A deadline passed before the wait it bounds could start."""


class Deadline(NamedTuple):
    """The moment a wait must be over (a ``time.monotonic()`` value), or ``None``: no end.

    ``allowed`` is how long the wait was given in all, for messages ("within 0.5 s").
    """

    end: Optional[float]
    allowed: Optional[float]

    @classmethod
    def after(cls, now: float, seconds: Optional[float]) -> Deadline:
        """``seconds`` from ``now``; ``None`` (or infinity): no end."""
        if seconds is None or not math.isfinite(seconds):
            return cls(None, None)
        seconds = max(0.0, seconds)
        return cls(now + seconds, seconds)

    def left(self, now: float) -> Optional[float]:
        """Seconds left at ``now`` (never below 0), or ``None`` when there is no end."""
        return None if self.end is None else max(0.0, self.end - now)

    def expired(self, now: float) -> bool:
        return self.end is not None and now >= self.end

    def wait(self, now: float) -> Optional[float]:
        """How long the next single wait may block: what is left, or ``None`` for no bound.

        :raises OutOfTime: nothing is left, so the wait must not start.
        """
        left = self.left(now)
        if left is not None and left <= 0:
            raise OutOfTime(f"the {seconds_text(self.allowed)} allowed were used up")
        return left

    def within(self, now: float, seconds: Optional[float]) -> Deadline:
        """A step that may take ``seconds`` from ``now``, and never past this deadline."""
        step = Deadline.after(now, seconds)
        if self.end is None or (step.end is not None and step.end <= self.end):
            return step
        return Deadline(self.end, max(0.0, self.end - now))


def seconds_text(seconds: Optional[float]) -> str:
    """``0.5`` -> ``"0.5 s"``, ``0.3333`` -> ``"0.333 s"``, ``None`` -> ``"no limit"``."""
    if seconds is None:
        return "no limit"
    return f"{seconds:.3g} s"
