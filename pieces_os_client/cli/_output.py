"""Shared by the subcommands: terminal detection, safe text, tables, JSON, errors, the client."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import unicodedata
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Sequence, TextIO, Tuple

if TYPE_CHECKING:
    from pieces_os_client.api.conversations_api import ConversationsApi

__all__ = [
    "color",
    "describe_error",
    "display_width",
    "is_terminal",
    "iso",
    "local_time",
    "no_color",
    "open_api",
    "print_json",
    "printable",
    "table",
    "truncate",
    "wants_color",
]


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def wants_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (to anything but "") or TERM=dumb."""
    return not no_color() and os.environ.get("TERM") != "dumb" and is_terminal(stream)


def no_color() -> bool:
    """``NO_COLOR`` is set and not empty (https://no-color.org): no colour, no progress display."""
    return bool(os.environ.get("NO_COLOR"))


def color(text: str, code: str, enabled: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if enabled else text


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters shown as escapes (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1] if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(out)


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(_char_width(char) for char in text)


def truncate(text: str, width: Optional[int]) -> str:
    """``text`` cut to ``width`` terminal columns, ending in ``…`` when cut (``None``: no limit)."""
    if width is None or display_width(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    out, used = [], 0
    for char in text:
        w = _char_width(char)
        if used + w > width - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + "…"


def terminal_width(stream: TextIO) -> Optional[int]:
    """The width to cut tables to: ``COLUMNS`` when set, the terminal's on a terminal, else no limit."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if is_terminal(stream):
        return shutil.get_terminal_size().columns
    return None


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], flexible: int, width: Optional[int]) -> Iterator[str]:
    """Lines of a table; column ``flexible`` is cut so that each line fits ``width`` columns."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max([display_width(h), *(display_width(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    if width is not None:
        others = sum(w for i, w in enumerate(widths) if i != flexible) + 2 * (len(widths) - 1)
        widths[flexible] = max(min(widths[flexible], width - others), min(8, widths[flexible]))
    for row in [list(headers), *cells]:
        parts = []
        for i, cell in enumerate(row):
            text = truncate(cell, widths[i]) if i == flexible else cell
            last = i == len(row) - 1
            parts.append(text if last else text + " " * (widths[i] - display_width(text)))
        yield "  ".join(parts).rstrip()


def print_json(value: Any, stream: TextIO = sys.stdout, indent: Optional[int] = 2) -> None:
    stream.write(json.dumps(value, ensure_ascii=False, indent=indent) + "\n")
    stream.flush()


def iso(value: Optional[_dt.datetime]) -> Optional[str]:
    """An ISO 8601 UTC time for JSON output."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def local_time(value: Optional[_dt.datetime]) -> str:
    """A short local time for text output."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def describe_error(exc: BaseException) -> str:
    """One line naming the cause: the SDK's own message for its errors, the OS's for file errors."""
    from pieces_os_client.exceptions import ApiException

    if isinstance(exc, ApiException) and type(exc).__str__ is ApiException.__str__:
        reason = (exc.reason or "").strip()
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else (exc.body or "")
        text = f"Pieces OS answered {exc.status} {reason}".rstrip()
        body = " ".join(str(body).split())
        if body:
            text += f": {body[:300]}"
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or exc}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return printable(" ".join(text.split()))


def configuration(args: argparse.Namespace, **settings: Any) -> Any:
    from pieces_os_client.configuration import Configuration

    return Configuration(host=args.host, **settings) if args.host else Configuration(**settings)


def open_api(args: argparse.Namespace, **settings: Any) -> Tuple[Any, ConversationsApi]:
    """An ApiClient (the caller closes it) and a ConversationsApi for ``--host`` or discovery."""
    from pieces_os_client.api.conversations_api import ConversationsApi
    from pieces_os_client.api_client import ApiClient

    client = ApiClient(configuration(args, **settings))
    return client, ConversationsApi(client)


def join_ids(ids: List[str], limit: int = 5) -> str:
    shown = ", ".join(printable(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
