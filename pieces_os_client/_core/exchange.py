"""Rules for one HTTP exchange on a connection, shared by the sync and async transports.

* **Interim answers.** A ``1xx`` answer other than ``101`` is never the answer to a request:
  the transport skips it (headers and all) and waits for the final one. A ``101`` to a request
  that asked for no protocol switch leaves the connection unusable: it is closed.
* **The head's deadline.** The status line and headers of the final answer, interim answers
  included, must arrive within the read timeout, or within what is left of the attempt's
  ``_request_timeout`` when that is shorter. A server that trickles its head one byte at a
  time cannot hold a call past it.
* **One exchange at a time.** A connection goes back to the pool only once its response was
  read to the end; otherwise it is closed, and its pool slot is given back.
* **Stale keep-alive connections.** A request sent on a *reused* connection that failed before
  any byte of an answer arrived (the server had closed the idle connection, or closed it on
  seeing the request) is sent again on another connection, for every method, as browsers do:
  the server never read it. Each such failure discards one pooled connection, so the resends
  are bounded by the pool's size; a request on a fresh connection is never resent this way.
  The one case this could duplicate is a server that reads a request, acts on it and then
  drops the connection without a single byte of answer, which no HTTP server does on purpose.
"""

from __future__ import annotations

import math
from typing import Optional

__all__ = [
    "MAX_INTERIM_HEADER_LINES",
    "MAX_LINE",
    "head_deadline",
    "is_interim",
    "may_resend_stale",
]

#: the longest status or header line read (as http.client)
MAX_LINE = 65536
#: header lines of one interim answer before it is refused (as http.client's header limit)
MAX_INTERIM_HEADER_LINES = 100


def is_interim(status: int) -> bool:
    """True for an informational answer to skip: ``1xx`` except ``101 Switching Protocols``."""
    return 100 <= status < 200 and status != 101


def head_deadline(now: float, read_timeout: Optional[float]) -> Optional[float]:
    """When the response head must be complete, for a read timeout (already cut to what is left
    of the attempt's deadline by the caller) measured from ``now``; None: no bound."""
    if read_timeout is None or not math.isfinite(read_timeout):
        return None
    return now + read_timeout


def may_resend_stale(*, reused: bool, response_bytes: int, resends: int, pool_size: int) -> bool:
    """Whether a request whose connection failed may be sent again on another connection."""
    return reused and response_bytes == 0 and resends < max(1, pool_size)
