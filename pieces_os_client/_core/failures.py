"""Transport failures as SDK errors: one classification and one set of messages for both clients.

A transport turns what its library raised into the urllib3 exception of the same meaning
(``NewConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``, ``ProtocolError``,
``SSLError``, ``ProxyError``) and :func:`translate` makes the ``ApiConnectionError`` or
``ApiTimeoutError`` the caller sees. The pool wait, the body read and ``_request_timeout``
values have their own functions here.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Tuple, TypeVar

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
    TimeoutStateError,
)

from pieces_os_client.exceptions import ApiConnectionError, ApiTimeoutError, ApiValueError

__all__ = [
    "HeadTimeout",
    "body_broken_error",
    "body_timeout_error",
    "cause_of_type",
    "head_read_timeout",
    "parse_request_timeout",
    "pool_timeout_error",
    "reason_text",
    "timeout_parts",
    "translate",
]

_E = TypeVar("_E", bound=BaseException)
# "HTTPConnection(host='127.0.0.1', port=39300): " at the start of urllib3 2 messages
_CONNECTION_PREFIX = re.compile(r"^\w+\(host=[^)]*\): ")


class HeadTimeout(TimeoutError):
    """The response head (or the body, under an attempt deadline) did not arrive in time."""

    def __init__(self, phase: str, received: int) -> None:
        super().__init__(f"timed out reading the response {phase}")
        self.phase = phase
        self.received = received


def head_read_timeout(url: str, received: int) -> ReadTimeoutError:
    """What a transport reports when the response head did not come in time.

    ``received``: the bytes of an answer that had arrived (interim answers included). With
    none, a plain read timeout ("sent no response"); with some, one caused by the
    :class:`HeadTimeout` that :func:`translate` reports as a head begun but not finished, as
    the sync client's head reader raises it.
    """
    error = ReadTimeoutError(None, url, "Read timed out.")  # type: ignore[arg-type]
    if received:
        error.__cause__ = HeadTimeout("head", received)
    return error


def cause_of_type(exc: Optional[BaseException], kind: type[_E]) -> Optional[_E]:
    """``exc`` or the first exception of type ``kind`` in its chain of causes."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, kind):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def reason_text(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    args = inner.args
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], BaseException):
        # ProtocolError("Connection aborted.", ConnectionResetError(...)): a sentence, then its cause
        head, cause = args
        text = head if str(cause) in head else f"{head} ({type(cause).__name__}: {cause})"
    else:
        text = str(inner)
    # urllib3 prefixes messages with the connection: keep the human part.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    text = _CONNECTION_PREFIX.sub("", text)
    return text or type(inner).__name__


def seconds_text(timeout: urllib3.Timeout, which: str) -> str:
    """Describe a timeout without touching urllib3's timer (which raises for total timeouts)."""
    if timeout.total is not None:
        return f"{timeout.total} s in total per attempt"
    value = timeout.connect_timeout if which == "connect" else timeout.read_timeout
    return f"{value} s"


def timeout_parts(timeout: urllib3.Timeout) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """``timeout``'s (connect, read, total) seconds, ``None`` for a part it leaves to the default.

    Through urllib3's public properties only, on a fresh clone (whose clock has not started).
    With a total, a connect timeout no shorter than the total is reported as ``None``: the
    total bounds the connection anyway. A read timeout left to the default with a total makes
    urllib3's ``read_timeout`` raise ``TimeoutStateError`` on an unstarted clock: ``None``.
    """
    fresh = timeout.clone()
    total = float(fresh.total) if isinstance(fresh.total, (int, float)) else None
    connect: Any = fresh.connect_timeout
    try:
        read: Any = fresh.read_timeout
    except TimeoutStateError:
        read = None
    if total is not None and connect == total:
        connect = None
    return (float(connect) if isinstance(connect, (int, float)) else None,
            float(read) if isinstance(read, (int, float)) else None, total)


def parse_request_timeout(value: Any) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """A ``_request_timeout`` as (connect, read, total); ``None`` parts: the configured ones.

    Seconds bound the whole attempt; a (connect, read) pair replaces both settings.
    """
    if isinstance(value, urllib3.Timeout):
        return timeout_parts(value)
    if isinstance(value, bool):
        raise ApiValueError(f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}")
    if isinstance(value, (int, float)):
        if not value > 0 or not math.isfinite(value):
            raise ApiValueError(f"_request_timeout must be positive, not {value!r}")
        return None, None, float(value)
    if isinstance(value, tuple) and len(value) == 2:
        for part in value:
            if isinstance(part, bool) or not isinstance(part, (int, float)) or not 0 < part < math.inf:
                raise ApiValueError(f"_request_timeout pair must hold two positive numbers, not {value!r}")
        return float(value[0]), float(value[1]), None
    raise ApiValueError(f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}")


def pool_timeout_error(method: str, url: str, host: str, pool_timeout: float, pool_size: int) -> ApiTimeoutError:
    return ApiTimeoutError(
        f"{method} {url}: no connection became free within "
        f"pool_timeout={pool_timeout:g} s "
        f"(all connection_pool_maxsize={pool_size} connections were busy); "
        "raise Configuration.pool_timeout or connection_pool_maxsize, or make fewer calls at once",
        host=host, url=url, method=method,
    )


def body_timeout_error(host: str, status: int, request_timeout: Optional[float]) -> ApiTimeoutError:
    if request_timeout is not None:
        return ApiTimeoutError(
            f"Pieces OS at {host} did not send the whole response body (status "
            f"{status}) within _request_timeout={request_timeout:g} s, which bounds the "
            "whole attempt, body included",
            host=host,
        )
    return ApiTimeoutError(
        f"Pieces OS at {host} stopped sending the response body before the read timeout", host=host,
    )


def body_broken_error(host: str, status: int, exc: BaseException) -> ApiConnectionError:
    return ApiConnectionError(
        f"The connection to {host} broke while reading the response body (status {status}): {reason_text(exc)}",
        host=host,
    )


def translate(
    exc: BaseException, method: str, url: str, host: str, timeout: urllib3.Timeout, *, searched: bool = False
) -> ApiConnectionError:
    """The SDK error for a transport failure; ``searched``: the host came from discovery."""
    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test for it first, so a
    # refused connection is not reported as a timeout.
    if isinstance(reason, (NewConnectionError, ConnectionRefusedError)):
        if searched:
            from pieces_os_client.discovery import searched_places

            advice = (
                f"No running Pieces OS was found either (looked at {searched_places()}). Start Pieces OS, or "
                "`python -m pieces_os_client.emulator` for a local stand-in, or pass `host=` if it listens elsewhere."
            )
        else:
            advice = (
                "Start Pieces OS (or `python -m pieces_os_client.emulator` for a local stand-in) "
                "and check the host: Pieces OS 11 and later listen on a port in 39300-39333; "
                "leave `host` unset to let the client find it."
            )
        return ApiConnectionError(
            f"Could not connect to Pieces OS at {host}: {reason_text(reason)}. {advice}",
            host=host, url=url, method=method,
        )
    if isinstance(reason, ConnectTimeoutError):
        return ApiTimeoutError(
            f"Timed out connecting to Pieces OS at {host} (connect timeout {seconds_text(timeout, 'connect')}). "
            "Is Pieces OS running and is this the right host?",
            host=host, url=url, method=method,
        )
    head = cause_of_type(reason, HeadTimeout)
    if head is not None and head.received:
        limit = (f"_request_timeout={timeout.total:g} s, which bounds the whole attempt" if timeout.total is not None
                 else f"the read timeout ({seconds_text(timeout, 'read')}; it bounds the whole response head)")
        return ApiTimeoutError(
            f"Pieces OS at {host} began answering {method} {url} but did not finish the status line and "
            f"headers within {limit} ({head.received} bytes arrived)",
            host=host, url=url, method=method,
        )
    if isinstance(reason, ReadTimeoutError):
        return ApiTimeoutError(
            f"Pieces OS at {host} accepted the connection but sent no response to {method} {url} "
            f"within the read timeout ({seconds_text(timeout, 'read')})",
            host=host, url=url, method=method,
        )
    if isinstance(reason, SSLError):
        return ApiConnectionError(
            f"TLS handshake with {host} failed: {reason_text(reason)}. Check verify_ssl / ssl_ca_cert.",
            host=host, url=url, method=method,
        )
    if isinstance(reason, ProxyError):
        return ApiConnectionError(
            f"Could not reach {host} through the proxy: {reason_text(reason)}",
            host=host, url=url, method=method,
        )
    if isinstance(reason, (ProtocolError, OSError)):
        return ApiConnectionError(
            f"The connection to {host} broke during {method} {url}: {reason_text(reason)}",
            host=host, url=url, method=method,
        )
    return ApiConnectionError(
        f"Request {method} {url} to {host} failed: {reason_text(reason)}",
        host=host, url=url, method=method,
    )
