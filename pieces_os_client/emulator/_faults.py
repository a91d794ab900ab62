"""Fault rules: what the emulator should do wrong, for which requests, and how many times.

A rule matches a request by method and path and is used up after ``count`` matching
requests (``count=None`` keeps it until :meth:`FaultBook.clear`). Two kinds of rules are
kept apart so they combine: a *delay* rule postpones the answer, a *response* rule (a status,
a broken response, or a body that stalls part way) replaces or changes it. For each request
the first matching rule of each kind is consumed. Control endpoints (``/__emulator__/...``) are never subject to faults.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, TypeVar, Union
from urllib.parse import unquote

__all__ = [
    "BREAK_MODES",
    "MAX_COUNT",
    "MAX_DELAY_SECONDS",
    "MAX_PENDING_FAULTS",
    "MAX_RETRY_AFTER_SECONDS",
    "Break",
    "Delay",
    "Fail",
    "FaultBook",
    "Response",
    "Rule",
    "Stall",
    "short_repr",
]

BREAK_MODES = ("malformed_json", "truncated", "disconnect", "reset_before_response", "html", "hang")

#: Upper bounds on fault settings (documented under "Hostile input and limits" in docs/emulator.md).
MAX_DELAY_SECONDS = 3600.0
MAX_RETRY_AFTER_SECONDS = 366 * 86400
MAX_COUNT = 1_000_000_000
MAX_PENDING_FAULTS = 10_000
_MAX_HEADER_TEXT = 1024
_MAX_PATH = 8192
_MAX_BODY = 64 * 1024 * 1024
_MAX_METHOD = 32

# Characters no header value or path filter may hold: C0 controls (tab excepted) and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# An HTTP method is a token (RFC 9110, section 5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def short_repr(value: object) -> str:
    """A short repr of a rejected value (a hostile one may be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(name: str, value: object, upper: float) -> float:
    """A finite real number in [0, upper]; ``name`` is the setting named in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__} ({short_repr(value)})")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {short_repr(value)}")
    if not 0 <= number <= upper:
        bound = int(upper) if float(upper).is_integer() else upper
        raise ValueError(f"{name} must be between 0 and {bound} seconds, got {short_repr(value)}")
    return number


def _integer(name: str, value: object, lower: int, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} ({short_repr(value)})")
    if not lower <= value <= upper:
        raise ValueError(f"{name} must be between {lower} and {upper}, got {short_repr(value)}")
    return value


def _text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__} ({short_repr(value)})")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters long; the limit is {limit}")
    return value


def _header_text(name: str, value: object) -> str:
    """A string that is safe as an HTTP header value: ASCII, no CR, LF, NUL or other controls."""
    text = _text(name, value, _MAX_HEADER_TEXT)
    if _CONTROL.search(text):
        raise ValueError(f"{name} must not contain control characters such as CR, LF or NUL, got {short_repr(text)}")
    if not text.isascii():
        # Latin-1 is what HTTP allows, but aiohttp writes header values as UTF-8: anything
        # beyond ASCII would not reach the client as given.
        raise ValueError(f"{name} must be ASCII text to fit in a header, got {short_repr(text)}")
    return text


def _check_count(count: object) -> Optional[int]:
    if count is None:
        return None
    return _integer("count", count, 1, MAX_COUNT)


def _norm_method(method: object) -> Optional[str]:
    if method is None:
        return None
    text = _text("method", method, _MAX_METHOD)
    if not _TOKEN.fullmatch(text):
        raise ValueError(f"method must be an HTTP method such as GET or POST, got {short_repr(text)}")
    return text.upper()


def _check_path(path: object) -> Optional[str]:
    if path is None:
        return None
    text = _text("path", path, _MAX_PATH)
    if _CONTROL.search(text):
        raise ValueError(f"path must not contain control characters, got {short_repr(text)}")
    return text


def check_retry_after(value: object) -> Optional[Union[int, float, str]]:
    """Validate a ``retry_after`` setting: None, seconds (finite, >= 0) or header-safe text."""
    if value is None:
        return None
    if isinstance(value, str):
        return _header_text("retry_after", value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _number("retry_after", value, MAX_RETRY_AFTER_SECONDS)
        return value
    raise TypeError(f"retry_after must be a number of seconds or a string, not {type(value).__name__}")


@dataclass
class _Match:
    method: Optional[str]
    path: Optional[str]
    remaining: Optional[int]

    def matches(self, method: str, raw_path: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.path is None:
            return True
        if self.path.endswith("*"):
            prefix = self.path[:-1]
            return raw_path.startswith(prefix) or path.startswith(prefix)
        return self.path in (raw_path, path)


@dataclass
class Delay(_Match):
    seconds: float = 0.0


@dataclass
class Fail(_Match):
    status: int = 500
    body: Optional[str] = None
    retry_after: Optional[Union[int, float, str]] = None


@dataclass
class Break(_Match):
    mode: str = "disconnect"


@dataclass
class Stall(_Match):
    seconds: float = 0.0
    after_bytes: int = 0


Response = Union[Fail, Break, Stall]
Rule = Union[Delay, Fail, Break, Stall]
_R = TypeVar("_R", bound=_Match)


class FaultBook:
    """The pending fault rules, safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delays: List[Delay] = []
        self._responses: List[Response] = []

    def __bool__(self) -> bool:
        # Read without the lock: a stale answer only means one extra locked look-up.
        return bool(self._delays or self._responses)

    def add_delay(self, seconds: float, count: Optional[int], method: Optional[str], path: Optional[str]) -> None:
        rule = Delay(
            _norm_method(method), _check_path(path), _check_count(count), _number("seconds", seconds, MAX_DELAY_SECONDS)
        )
        self._add(self._delays, rule)

    def add_fail(
        self,
        status: int,
        count: Optional[int],
        body: Optional[str],
        retry_after: Optional[Union[int, float, str]],
        method: Optional[str],
        path: Optional[str],
    ) -> None:
        rule = Fail(
            _norm_method(method),
            _check_path(path),
            _check_count(count),
            status=_integer("status", status, 100, 599),
            body=None if body is None else _text("body", body, _MAX_BODY),
            retry_after=check_retry_after(retry_after),
        )
        self._add(self._responses, rule)

    def add_break(self, mode: str, count: Optional[int], method: Optional[str], path: Optional[str]) -> None:
        if not isinstance(mode, str) or mode not in BREAK_MODES:
            raise ValueError(f"unknown break mode {short_repr(mode)}; expected one of {', '.join(BREAK_MODES)}")
        self._add(self._responses, Break(_norm_method(method), _check_path(path), _check_count(count), mode=mode))

    def add_stall(
        self, seconds: float, after_bytes: int, count: Optional[int], method: Optional[str], path: Optional[str]
    ) -> None:
        rule = Stall(
            _norm_method(method),
            _check_path(path),
            _check_count(count),
            seconds=_number("seconds", seconds, MAX_DELAY_SECONDS),
            after_bytes=_integer("after_bytes", after_bytes, 0, _MAX_BODY),
        )
        self._add(self._responses, rule)

    def _add(self, rules: List[_R], rule: _R) -> None:
        with self._lock:
            if len(self._delays) + len(self._responses) >= MAX_PENDING_FAULTS:
                raise ValueError(f"too many pending faults (the limit is {MAX_PENDING_FAULTS}); clear some first")
            rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._delays.clear()
            self._responses.clear()

    def pending(self) -> List[Dict[str, object]]:
        """A description of every pending rule, for the control endpoint and debugging."""
        with self._lock:
            rules: List[Rule] = [*self._delays, *self._responses]
            out: List[Dict[str, object]] = []
            for rule in rules:
                entry: Dict[str, object] = {"kind": type(rule).__name__.lower()}
                entry.update({k: v for k, v in vars(rule).items() if v is not None})
                out.append(entry)
            return out

    def take(self, method: str, raw_path: str) -> Tuple[Optional[Delay], Optional[Response]]:
        """Consume and return the first matching delay and response rule for a request."""
        path = unquote(raw_path)
        with self._lock:
            delay = self._consume(self._delays, method, raw_path, path)
            response = self._consume(self._responses, method, raw_path, path)
        return delay, response

    @staticmethod
    def _consume(rules: List[_R], method: str, raw_path: str, path: str) -> Optional[_R]:
        for index, rule in enumerate(rules):
            if rule.matches(method, raw_path, path):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del rules[index]
                return rule
        return None
