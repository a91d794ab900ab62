"""Shared by the subcommands: terminal detection, safe text, tables, JSON, errors, the client."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import unicodedata
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, TextIO, Tuple

if TYPE_CHECKING:
    from pieces_os_client.api.conversations_api import ConversationsApi

__all__ = [
    "color",
    "describe_error",
    "display_width",
    "is_terminal",
    "iso",
    "json_text",
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


def _python_escape(char: str) -> str:
    return repr(char)[1:-1] if ord(char) < 0x10000 else f"\\U{ord(char):08x}"


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the first plane: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _shown(text: str, keep: str, escape: Callable[[str], str]) -> str:
    """``text`` with each character that is not printable (``str.isprintable``) and not in ``keep`` escaped.

    Not printable: the C0 and C1 controls (escape, CSI U+009B, newline, ...), DEL, format
    characters (the bidi controls U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069, zero
    width ones), line and paragraph separators, spaces other than U+0020, surrogates, private
    use and unassigned code points: nothing that can move the cursor, recolour, reorder or
    hide text on a terminal is left as it is.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char in keep else escape(char) for char in text)


def printable(text: str, keep: str = "") -> str:
    """``text`` safe to print on a terminal: control characters shown as escapes (``\\n``, ``\\x1b``).

    ``keep`` names characters to leave as they are (a Markdown export keeps tabs in messages).
    """
    return _shown(text, keep, _python_escape)


def json_text(value: Any, indent: Optional[int] = None) -> str:
    """``value`` as JSON in which every character ``printable`` would escape is a ``\\uXXXX`` escape.

    The document is the same to any JSON parser; only its spelling differs from
    ``json.dumps(value, ensure_ascii=False)``. That spelling never holds a control character
    (``json.dumps`` already escapes C0 controls in strings; this adds DEL, C1, bidi and the
    other non-printable characters), nor a lone surrogate that UTF-8 could not encode.
    """
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    # A raw newline can only be indentation (json.dumps writes one in a string as \n), and
    # every other character that is not printable stands in a string, where \uXXXX is valid.
    return "\n".join(_shown(line, "", _json_escape) for line in text.split("\n"))


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


def print_json(value: Any, stream: Optional[TextIO] = None, indent: Optional[int] = 2) -> None:
    """``value`` as JSON (see ``json_text``: no control character, on a terminal or not) on stdout."""
    stream = sys.stdout if stream is None else stream
    stream.write(json_text(value, indent) + "\n")
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
