"""When a stream reconnects, and when it gives up: backoff and connection health, free of I/O.

A connection counts as *healthy* once its first message (the snapshot) has arrived whole and
parsed, or once it has stayed up for :data:`HEALTHY_AFTER` seconds. Only a healthy connection
resets the backoff. A server that accepts the WebSocket and drops it at once therefore meets
the same growing delay as one that refuses connections, and each such short-lived connection
counts as a failed attempt against ``max_attempts``.

The transport tells a :class:`ReconnectPolicy` what happened (:meth:`~ReconnectPolicy.connected`,
:meth:`~ReconnectPolicy.healthy`, :meth:`~ReconnectPolicy.dropped`,
:meth:`~ReconnectPolicy.failed`), passing clock values it read itself, and asks it for the next
delay (:meth:`~ReconnectPolicy.next_delay`); the policy never sleeps or reads a clock.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["HEALTHY_AFTER", "ReconnectPolicy", "backoff_delay"]

#: seconds a connection must stay up to count as healthy even without a message
HEALTHY_AFTER = 10.0


def backoff_delay(attempt: int, initial: float, maximum: float, jitter: float, rand: float) -> float:
    """The delay before attempt ``attempt`` (1-based): doubling from ``initial``, capped at
    ``maximum``, with the fraction ``jitter`` of it random (``rand`` in [0, 1)).

    >>> backoff_delay(3, 0.25, 10.0, 0.0, 0.5)
    1.0
    """
    delay: float = min(maximum, initial * (2 ** min(max(attempt, 1) - 1, 30)))
    return delay * (1 - jitter * rand)


class ReconnectPolicy:
    """Backoff and giving up for one stream.

    :param initial_backoff: the delay before the first attempt after a healthy connection.
    :param max_backoff: the largest delay.
    :param jitter: the random fraction (0..1) of each delay.
    :param max_attempts: attempts without reaching a healthy connection before giving up;
        ``None``: never give up.
    :param healthy_after: seconds after which a connection counts as healthy without a message.
    """

    def __init__(
        self,
        *,
        initial_backoff: float,
        max_backoff: float,
        jitter: float,
        max_attempts: Optional[int],
        healthy_after: float = HEALTHY_AFTER,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.max_attempts = max_attempts
        self.healthy_after = healthy_after
        #: attempts made since the last healthy connection
        self.attempts = 0
        #: of those, how many opened a WebSocket that dropped before it became healthy
        self.unhealthy_drops = 0
        #: of those, how many did not open a connection at all
        self.connect_failures = 0
        self._connected_at: Optional[float] = None
        self._healthy = False

    @property
    def is_healthy(self) -> bool:
        """The current (or last) connection became healthy."""
        return self._healthy

    def connected(self, now: float) -> None:
        """A connection was opened (handshake done) at ``now``."""
        self._connected_at = now
        self._healthy = False

    def healthy(self) -> None:
        """The connection delivered its first message whole and parsed: the backoff starts over."""
        self._healthy = True
        self.attempts = 0
        self.unhealthy_drops = 0
        self.connect_failures = 0

    def dropped(self, now: float) -> None:
        """The connection ended at ``now``; one that lived ``healthy_after`` seconds counts as healthy."""
        if self._connected_at is None:
            return
        if not self._healthy and now - self._connected_at >= self.healthy_after:
            self.healthy()
        elif not self._healthy and self.attempts:
            # this connection came from an attempt that did not end in health: it failed
            self.unhealthy_drops += 1
        self._connected_at = None

    def failed(self) -> None:
        """An attempt did not open a connection."""
        self.connect_failures += 1

    def next_delay(self, rand: float) -> Optional[float]:
        """Count a new attempt and answer how long to wait before it; ``None``: give up.

        :param rand: a random number in [0, 1) for the jitter.
        """
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            return None
        self.attempts += 1
        return backoff_delay(self.attempts, self.initial_backoff, self.max_backoff, self.jitter, rand)

    def give_up_reason(self) -> str:
        """Why the attempts since the last healthy connection failed, as a clause ("" if none opened)."""
        count, drops, failures = self.attempts, self.unhealthy_drops, self.connect_failures
        if count and drops == count:
            each = " each time" if count > 1 else ""
            return f"the server accepted the WebSocket but dropped it before the first snapshot{each}"
        if drops:
            return (f"{drops} of them opened the WebSocket, which was dropped before the first snapshot; "
                    f"{failures} could not connect")
        return ""
