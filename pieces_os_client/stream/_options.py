"""The stream options' checks (defined in :mod:`pieces_os_client._core.options`, shared with the
asyncio stream)."""

from __future__ import annotations

from pieces_os_client._core.options import (
    CALLBACK_SIGNATURES,
    callback_style,
    check_callback,
    check_number,
    check_stream_options,
    keyword_options,
    reject_taken,
    reject_unknown,
)

__all__ = [
    "CALLBACK_SIGNATURES", "callback_style", "check_callback", "check_number", "check_stream_options",
    "keyword_options", "reject_taken", "reject_unknown",
]
