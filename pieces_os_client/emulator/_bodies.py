"""Strict JSON for request bodies a client may have crafted to hurt the emulator.

:func:`load_json` accepts RFC 8259 JSON in UTF-8 and nothing the emulator could not store
and serve back safely: no ``NaN``/``Infinity`` (nor a number that overflows to infinity),
no number literal longer than :data:`MAX_NUMBER_CHARS` (turning a huge digit string into an
int takes quadratic time on Python 3.10), and no nesting deeper than :data:`MAX_JSON_DEPTH`
(deep nesting exhausts the recursion limit of the parser, ``copy.deepcopy`` and
``json.dumps``). The depth is measured on the raw bytes before parsing, in linear time.
The body must be UTF-8 (RFC 8259): no UTF-16, no byte-order mark.
Every refusal is a :class:`ValueError` whose message says what was wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

__all__ = ["MAX_JSON_DEPTH", "MAX_NUMBER_CHARS", "load_json"]

MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 1000

_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPEN = ord("(")


def _nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays and objects more than ``limit`` deep (outside strings).

    Escaped backslashes and quotes are dropped first, so every remaining quote opens or closes
    a string and the text outside strings is every other piece of a split on quotes. What is
    left is reduced to its brackets; only those are walked in Python, and a run of more than
    ``limit`` openers in a row (the usual shape of a nesting attack) is found by a C search.
    For text that is not valid JSON the answer may be off after the first error, where the
    parser stops anyway.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(_PARENS, _NOT_BRACKETS)
    if b"(" * (limit + 1) in brackets:
        return True
    depth = 0
    for byte in brackets:
        if byte == _OPEN:
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
    if _nested_deeper_than(body, MAX_JSON_DEPTH):
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
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
