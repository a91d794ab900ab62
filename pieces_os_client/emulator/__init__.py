"""A local emulator of Pieces OS's conversation endpoints, for tests and offline development.

Start it from a shell with ``python -m pieces_os_client.emulator`` (or ``pieces-os-emulator``),
or in-process::

    from pieces_os_client.emulator import Emulator

    with Emulator() as emu:
        ...  # point any client at emu.url

or on the caller's asyncio loop, next to an asyncio client::

    async with Emulator() as emu:
        ...

It needs aiohttp, which the ``emulator`` extra installs (``pip install ".[emulator]"`` in a
clone of this repository). Nothing in ``pieces_os_client`` imports this package unless asked
to. See docs/emulator.md for the full guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: What to do when aiohttp is missing: one line, naming what to install and from where.
NEEDS_AIOHTTP = (
    "the Pieces OS emulator needs aiohttp: install this SDK with its emulator extra from a clone "
    'of its repository (pip install ".[emulator]"), or add aiohttp itself (pip install "aiohttp>=3.9,<4")'
)

try:
    import aiohttp
except ImportError as _missing:  # pragma: no cover - depends on the environment
    _MISSING: ImportError | None = _missing
else:
    _MISSING = None

if _MISSING is None or TYPE_CHECKING:
    from ._faults import BREAK_MODES
    from ._server import CONTROL_PREFIX, DEFAULT_VERSION, Emulator, RecordedRequest
    from ._store import AssetRecord, load_assets
else:
    # Without aiohttp the package still imports (so ``python -m pieces_os_client.emulator``
    # can say what is missing in one line); any name from it raises ImportError instead.
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(NEEDS_AIOHTTP) from _MISSING

__all__ = [
    "BREAK_MODES",
    "CONTROL_PREFIX",
    "DEFAULT_VERSION",
    "NEEDS_AIOHTTP",
    "AssetRecord",
    "Emulator",
    "RecordedRequest",
    "load_assets",
]
