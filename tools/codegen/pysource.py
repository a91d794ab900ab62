"""Helpers that emit Python source already in ``ruff format`` style."""

from __future__ import annotations

import re
from typing import List

LINE_LENGTH = 120  # keep in step with [tool.ruff] line-length
CHUNK = 88  # target width of one piece of a long string literal

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str:
    """A string literal for ``text``, quoted the way ruff format prefers."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == quote:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        elif ch in "\u2028\u2029\x85\u00a0" or (0x80 <= ord(ch) < 0xA0):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def split_literal(text: str, width: int = CHUNK) -> List[str]:
    """Cut ``text`` at word ends into literals no wider than ``width`` (where possible)."""
    words = re.findall(r"\S*\s*", text)
    pieces: List[str] = []
    current = ""
    for word in words:
        if not word:
            continue
        if current and len(literal(current + word)) > width:
            pieces.append(current)
            current = word
        else:
            current += word
    if current or not pieces:
        pieces.append(current)
    return [literal(piece) for piece in pieces]


def docstring(text: str, indent: str) -> str:
    """A one-line docstring; ``text`` must be plain (no quotes or backslashes)."""
    if '"' in text or "\\" in text or "\n" in text:
        raise ValueError(f"docstring text needs no escaping: {text!r}")
    return f'{indent}"""{text}"""'
