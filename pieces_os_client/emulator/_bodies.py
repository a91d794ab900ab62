"""Strict JSON for request bodies a client may have crafted to hurt the emulator.

:func:`load_json` accepts RFC 8259 JSON in UTF-8 and nothing the emulator could not store
and serve back safely: no ``NaN``/``Infinity`` (nor a number that overflows to infinity),
no number literal longer than :data:`MAX_NUMBER_CHARS` (turning a huge digit string into an
int takes quadratic time on Python 3.10), and no nesting deeper than :data:`MAX_JSON_DEPTH`
(deep nesting exhausts the recursion limit of the parser, ``copy.deepcopy`` and
``json.dumps``). The depth is measured on the raw bytes before parsing, so a hostile body
costs one linear scan. The body must be UTF-8 (RFC 8259): no UTF-16, no byte-order mark.
Every refusal is a :class:`ValueError` whose message says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

__all__ = ["MAX_JSON_DEPTH", "MAX_NUMBER_CHARS", "load_json"]

MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 1000

# A complete JSON string literal; what it holds cannot open or close a container.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENERS = frozenset(b"[{")


def _too_deep(body: bytes, limit: int) -> bool:
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number (only finite numbers are)")


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text)} digits (the limit is {MAX_NUMBER_CHARS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text)} characters (the limit is {MAX_NUMBER_CHARS})")
    return float(text)


def _parse_finite_float(text: str) -> float:
    value = _parse_float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def load_json(body: bytes, *, finite: bool = True) -> Any:
    """Parse a request body as strict JSON; :class:`ValueError` says why a body is refused.

    ``finite=False`` lets ``NaN``, ``Infinity`` and overflowing numbers through as floats, for
    a caller that validates every number itself and can then name the offending field.
    """
    if _too_deep(body, MAX_JSON_DEPTH):
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        if finite:
            return json.loads(
                text, parse_int=_parse_int, parse_float=_parse_finite_float, parse_constant=_reject_constant
            )
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    except RecursionError:  # defence in depth: the scan above already refuses deep nesting
        raise ValueError("JSON nested too deeply") from None
