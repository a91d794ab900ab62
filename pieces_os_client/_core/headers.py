"""Header rules shared by every request the SDK sends: HTTP calls and the WebSocket handshake."""

from __future__ import annotations

import re
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

__all__ = ["REDACTED_HEADERS", "accepted_codings", "check_header", "check_headers", "header_value", "redact_headers"]

#: headers whose values are credentials: masked wherever headers are logged or shown
REDACTED_HEADERS = frozenset({"x-application-id", "authorization", "cookie", "proxy-authorization", "x-api-key"})
# RFC 9110 token characters for header names; values may not hold CR, LF or NUL.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
_Q_ZERO = re.compile(r";\s*q\s*=\s*0(?:\.0*)?\s*$")

#: header sets (all values text) already found valid: a client sends the same few again and again
_VALID_HEADER_SETS: Dict[Tuple[Tuple[Any, Any], ...], None] = {}
_VALID_HEADER_SETS_MAX = 256


def redact_headers(headers: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of ``headers`` with credentials masked, safe to log."""
    return {k: ("***" if k.lower() in REDACTED_HEADERS else v) for k, v in headers.items()}


def header_value(headers: Mapping[str, Any], name: str) -> Optional[str]:
    """The value of header ``name`` (lower case) in a plain dict, whatever the case of its key."""
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def check_headers(headers: Mapping[str, Any]) -> None:
    """Refuse headers that HTTP forbids or that could smuggle extra header lines.

    :raises ApiValueError: naming the header: a name that is not an HTTP token, a value with
        CR, LF or NUL, or a value that is not Latin-1.
    """
    key = tuple(headers.items())
    try:
        if key in _VALID_HEADER_SETS:
            return
    except TypeError:  # an unhashable value: check it, never remember it
        key = ()
    for name, value in headers.items():
        check_header(name, value)
    if key and all(type(value) is str for _, value in key):
        if len(_VALID_HEADER_SETS) >= _VALID_HEADER_SETS_MAX:
            _VALID_HEADER_SETS.clear()
        _VALID_HEADER_SETS[key] = None


def check_header(name: Any, value: Any) -> None:
    """One header; see :func:`check_headers`."""
    from pieces_os_client.exceptions import ApiValueError

    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise ApiValueError(f"{name!r} is not a valid HTTP header name")
    text = value if isinstance(value, str) else str(value)
    if _HEADER_VALUE_FORBIDDEN.search(text):
        raise ApiValueError(f"the value of header {name!r} contains a line break or NUL, which HTTP forbids")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ApiValueError(
            f"the value of header {name!r} has characters HTTP headers cannot carry (Latin-1 only)"
        ) from exc


def accepted_codings(accept_encoding: Optional[str]) -> FrozenSet[str]:
    """The content codings an ``Accept-Encoding`` value allows (identity unless refused)."""
    accepted = {"identity"}
    for item in (accept_encoding or "").split(","):
        name = item.split(";", 1)[0].strip().lower()
        if not name:
            continue
        if _Q_ZERO.search(item):
            accepted.discard(name)
        else:
            accepted.add(name)
    return frozenset(accepted)
