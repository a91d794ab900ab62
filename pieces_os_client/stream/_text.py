"""Short, bounded text for error messages and logs (the rules live in :mod:`pieces_os_client._core.text`)."""

from __future__ import annotations

from pieces_os_client._core.text import one_line, preview

__all__ = ["one_line", "preview"]
