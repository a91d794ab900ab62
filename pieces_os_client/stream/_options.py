"""Checking a stream's options where they come in, with errors that name the option."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional

from pieces_os_client.exceptions import ApiTypeError, ApiValueError, unknown_names_message

__all__ = ["check_callback", "check_number", "reject_taken", "reject_unknown"]


def reject_unknown(unknown: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise ``ApiTypeError`` listing the names in ``unknown`` against the ``valid`` ones."""
    if unknown:
        raise ApiTypeError(unknown_names_message("identifiers stream option", list(unknown), list(valid)))


def reject_taken(options: Mapping[str, Any], taken: Mapping[str, str], where: str) -> None:
    """Raise ``ApiTypeError`` for an option that ``where`` sets itself (``taken``: name -> advice)."""
    for name in sorted(taken.keys() & options.keys()):
        raise ApiTypeError(f"{where} does not take the stream option {name}: {taken[name]}")


def check_callback(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ApiTypeError(f"{name} must be callable or None, not {type(value).__name__} ({_short(value)})")


def check_number(
    name: str,
    value: object,
    *,
    low: float = 0.0,
    strict: bool = False,
    high: Optional[float] = None,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """``value`` must be a finite number ``>= low`` (``> low`` when ``strict``) and ``<= high``.

    ``optional`` admits ``None``; ``integer`` demands an ``int``. ``bool`` is never a number here.
    """
    if value is None and optional:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = "an int" if integer else "a number"
        raise ApiTypeError(
            f"{name} must be {wanted}{' or None' if optional else ''}, not {type(value).__name__} ({_short(value)})"
        )
    number = float(value)
    too_low = number <= low if strict else number < low
    if not math.isfinite(number) or too_low or (high is not None and number > high):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        if high is not None:
            bound += f" and <= {high:g}"
        raise ApiValueError(f"{name} must be finite and {bound}, not {value!r}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
