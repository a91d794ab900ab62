"""Retries: which failures and statuses are sent again, and how long to wait first.

Both transports drive the same ``urllib3.Retry`` object (``Configuration.retry_policy()``),
so the budgets, the methods retried (GET/HEAD/OPTIONS; a create is never re-sent unless the
connection itself failed), the statuses retried, ``Retry-After`` (capped at ``backoff_max``
by the SDK's policy) and the backoff with jitter are one rule. These functions only decide;
the caller sleeps (``time.sleep`` or ``asyncio.sleep``).
"""

from __future__ import annotations

import random
from typing import Any, Optional, Tuple

from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

__all__ = ["after_error", "after_status", "backoff", "body_retries", "may_retry_status"]

_IS_RETRY = Retry.is_retry


def body_retries(retries: Retry, method: str) -> int:
    """How many times a request whose response body broke off may be sent again."""
    allowed = retries.allowed_methods
    if allowed is not None and method not in allowed:
        return 0
    budgets = [b for b in (retries.total, retries.read) if isinstance(b, int) and not isinstance(b, bool)]
    return max(0, min(budgets)) if budgets else 0


def backoff(retries: Retry, attempt: int) -> float:
    """The wait before re-sending a request whose body broke off (``attempt`` from 0): never
    longer than ``backoff_max``, jitter included, as urllib3 bounds the other retries' waits."""
    longest = float(retries.backoff_max)
    delay = min(longest, float(retries.backoff_factor) * (2.0**attempt))
    jitter = float(getattr(retries, "backoff_jitter", 0.0))
    return min(longest, delay + (random.uniform(0, jitter) if jitter else 0.0))


def _delay(retries: Retry, response: Any) -> float:
    if retries.respect_retry_after_header and response is not None:
        seconds = retries.get_retry_after(response)
        if seconds:
            return float(seconds)
    return float(retries.get_backoff_time())


def may_retry_status(retries: Retry, status: int) -> bool:
    """False when ``retries`` surely sends no response of this status again, whatever its method
    and headers; True when :func:`after_status` has to decide.

    For urllib3's own ``Retry.is_retry``: only a status in ``status_forcelist``, or one that
    may carry ``Retry-After`` (413, 429, 503), is ever retried. A subclass that changes
    ``is_retry`` always goes to :func:`after_status`.
    """
    if type(retries).is_retry is not _IS_RETRY:
        return True
    forcelist = retries.status_forcelist
    return bool(forcelist and status in forcelist) or status in retries.RETRY_AFTER_STATUS_CODES


def after_status(retries: Retry, method: str, url: str, response: Any) -> Optional[Tuple[Retry, float]]:
    """For a response: ``None`` to hand it to the caller, else the next policy and the delay.

    ``response`` needs ``status``, ``headers`` (with ``Retry-After``), ``get_redirect_location()``
    and ``close()`` (the SDK's policy closes a response it retries), as urllib3's response has.
    """
    if not retries.is_retry(method, response.status, bool(response.headers.get("Retry-After"))):
        return None
    try:
        following = retries.increment(method, url, response=response)
    except MaxRetryError:
        return None  # out of retries: the answer itself goes to the caller (raise_on_status=False)
    return following, _delay(following, response)


def after_error(retries: Retry, method: str, url: str, error: Exception) -> Tuple[Retry, float]:
    """For a failed attempt (``error`` a urllib3 exception): the next policy and the delay.

    :raises MaxRetryError: or ``error`` itself, when it may not be retried.
    """
    following = retries.increment(method, url, error=error)
    return following, _delay(following, None)
