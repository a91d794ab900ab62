"""Fault rules: what the emulator should do wrong, for which requests, and how many times.

A rule matches a request by method and path and is used up after ``count`` matching
requests (``count=None`` keeps it until :meth:`FaultBook.clear`). Two kinds of rules are
kept apart so they combine: a *delay* rule postpones the answer, a *response* rule (a status
or a broken response) replaces it. For each request the first matching rule of each kind is
consumed. Control endpoints (``/__emulator__/...``) are never subject to faults.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, TypeVar, Union
from urllib.parse import unquote

__all__ = ["BREAK_MODES", "Break", "Delay", "Fail", "FaultBook", "Rule"]

BREAK_MODES = ("malformed_json", "truncated", "disconnect", "reset_before_response", "html", "hang")


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


Rule = Union[Delay, Fail, Break]
_R = TypeVar("_R", bound=_Match)


def _check_count(count: Optional[int]) -> None:
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer, or None for 'until cleared'")


def _norm_method(method: Optional[str]) -> Optional[str]:
    return method.upper() if method else None


class FaultBook:
    """The pending fault rules, safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delays: List[Delay] = []
        self._responses: List[Union[Fail, Break]] = []

    def __bool__(self) -> bool:
        # Read without the lock: a stale answer only means one extra locked look-up.
        return bool(self._delays or self._responses)

    def add_delay(self, seconds: float, count: Optional[int], method: Optional[str], path: Optional[str]) -> None:
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        _check_count(count)
        with self._lock:
            self._delays.append(Delay(_norm_method(method), path, count, seconds=float(seconds)))

    def add_fail(
        self,
        status: int,
        count: Optional[int],
        body: Optional[str],
        retry_after: Optional[Union[int, float, str]],
        method: Optional[str],
        path: Optional[str],
    ) -> None:
        if not 100 <= int(status) <= 599:
            raise ValueError("status must be an HTTP status code (100-599)")
        _check_count(count)
        with self._lock:
            self._responses.append(
                Fail(_norm_method(method), path, count, status=int(status), body=body, retry_after=retry_after)
            )

    def add_break(self, mode: str, count: Optional[int], method: Optional[str], path: Optional[str]) -> None:
        if mode not in BREAK_MODES:
            raise ValueError(f"unknown break mode {mode!r}; expected one of {', '.join(BREAK_MODES)}")
        _check_count(count)
        with self._lock:
            self._responses.append(Break(_norm_method(method), path, count, mode=mode))

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

    def take(self, method: str, raw_path: str) -> Tuple[Optional[Delay], Optional[Union[Fail, Break]]]:
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
