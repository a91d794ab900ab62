"""Checking a stream's options where they come in, with errors that name the option."""

from __future__ import annotations

import inspect
import math
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from pieces_os_client.exceptions import ApiTypeError, ApiValueError, unknown_names_message

__all__ = ["CALLBACK_SIGNATURES", "callback_style", "check_callback", "check_number", "reject_taken", "reject_unknown"]

#: the arguments each callback is called with: (this SDK's style, the official style or None)
CALLBACK_SIGNATURES: Dict[str, Tuple[Tuple[str, ...], Optional[Tuple[str, ...]]]] = {
    "on_message": (("message",), ("stream", "message")),
    "on_event": (("event",), None),
    "on_error": (("error",), ("stream", "error")),
    "on_close": ((), ("stream", "code", "reason")),
}


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


def callback_style(name: str, value: object) -> Optional[str]:
    """How callback ``name`` will be called: ``"sdk"``, ``"official"``, or ``None`` when not given.

    A callback that accepts this SDK's arguments gets them; one that accepts only the official
    (websocket-client ``WebSocketApp``) arguments gets those, the stream standing in for ``ws``.
    A callable whose signature cannot be read is called in this SDK's style.

    :raises ApiTypeError: not callable, or it can take neither set of arguments.
    """
    check_callback(name, value)
    if value is None:
        return None
    assert callable(value)
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # some builtins: nothing to check
        return "sdk"
    sdk, official = CALLBACK_SIGNATURES[name]
    for style, params in (("sdk", sdk), ("official", official)):
        if params is None:
            continue
        try:
            signature.bind(*params)
        except TypeError:
            continue
        return style
    wanted = f"{name}({', '.join(sdk)})"
    if official is not None:
        wanted += f" or, in the official style, {name}({', '.join(official)})"
    raise ApiTypeError(
        f"{name} must take the arguments the stream passes: {wanted}; "
        f"{_short(value)} has the signature {signature}"
    )


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
