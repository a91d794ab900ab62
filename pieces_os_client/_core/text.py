"""Short, bounded text for error messages and logs: never more of a payload than is shown."""

from __future__ import annotations

from typing import Union

__all__ = ["one_line", "preview", "shown_value"]


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters. Looks at a bounded prefix only."""
    head = text[: limit * 4]  # runs of whitespace collapse, so look somewhat past the limit
    squeezed = " ".join(head.split())
    if len(squeezed) <= limit and len(head) == len(text):
        return squeezed
    return squeezed[: limit - 3] + "..."


def preview(payload: Union[str, bytes, bytearray], limit: int = 80) -> str:
    """The start of a message as one line of text; bytes are sliced before they are decoded."""
    head = payload[: limit * 4]
    text = head if isinstance(head, str) else bytes(head).decode("utf-8", "replace")
    line = one_line(text, limit)
    if len(head) < len(payload) and not line.endswith("..."):
        line = line[: limit - 3] + "..."
    return line


def shown_value(value: str, limit: int = 100) -> str:
    """``repr(value)``, cut to ``limit`` characters and saying how long it was when it is longer.

    For messages about a setting's value: enough to recognise it, never a screenful.
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
