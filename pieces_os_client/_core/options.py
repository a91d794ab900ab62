"""Checking a stream's options where they come in, with errors that name the option."""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from pieces_os_client._core.identifiers import MAX_SIZE_SETTING
from pieces_os_client.exceptions import ApiTypeError, ApiValueError, unknown_names_message

__all__ = [
    "CALLBACK_SIGNATURES", "callback_style", "check_callback", "check_number", "check_stream_options",
    "keyword_options",
    "reject_taken", "reject_unknown",
]

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


def check_stream_options(
    config_max_message_size: Optional[int],
    *,
    path: object,
    headers: object,
    reconnect: object,
    max_reconnect_attempts: object,
    initial_backoff: object,
    max_backoff: object,
    backoff_jitter: object,
    ping_interval: object,
    ping_timeout: object,
    connect_timeout: object,
    close_timeout: object,
    close_read_limit: object,
    max_message_size: object,
) -> Optional[int]:
    """The checks every identifiers stream (sync or asyncio) makes of its options.

    Returns the message size bound in force: ``max_message_size``, or the configuration's
    ``config_max_message_size`` when it was left out (``...``).
    """
    if not isinstance(path, str):
        raise ApiTypeError(f"path must be a str, not {type(path).__name__}")
    if headers is not None and not isinstance(headers, Mapping):
        raise ApiTypeError(f"headers must be a mapping or None, not {type(headers).__name__}")
    if not isinstance(reconnect, bool):
        raise ApiTypeError(f"reconnect must be True or False, not {type(reconnect).__name__} ({reconnect!r})")
    check_number("max_reconnect_attempts", max_reconnect_attempts, integer=True, optional=True)
    check_number("initial_backoff", initial_backoff)
    check_number("max_backoff", max_backoff)
    check_number("backoff_jitter", backoff_jitter, high=1.0)
    check_number("ping_interval", ping_interval, optional=True)
    check_number("ping_timeout", ping_timeout, strict=True)
    check_number("connect_timeout", connect_timeout, strict=True, optional=True)
    check_number("close_timeout", close_timeout)
    check_number("close_read_limit", close_read_limit, integer=True)
    if max_message_size is ...:
        check_number(MAX_SIZE_SETTING, config_max_message_size, low=1, integer=True, optional=True)
        return config_max_message_size
    check_number("max_message_size", max_message_size, low=1, integer=True, optional=True)
    return max_message_size  # type: ignore[return-value]  # checked just above


def keyword_options(function: Callable[..., object]) -> Iterator[str]:
    """The keyword-only parameters of ``function`` (the valid names for an unknown-option error)."""
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            yield parameter.name


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
