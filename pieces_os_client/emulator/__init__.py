"""A local emulator of Pieces OS's conversation endpoints, for tests and offline development.

Start it from a shell with ``python -m pieces_os_client.emulator`` (or ``pieces-os-emulator``),
or in-process::

    from pieces_os_client.emulator import Emulator

    with Emulator() as emu:
        ...  # point any client at emu.url

It needs aiohttp, which the ``emulator`` extra installs. Nothing in ``pieces_os_client``
imports this package unless asked to. See docs/emulator.md for the full guide.
"""

from __future__ import annotations

try:
    import aiohttp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'the Pieces OS emulator needs aiohttp; install it with: pip install "pieces_os_client[emulator]"'
    ) from exc

from ._faults import BREAK_MODES
from ._server import CONTROL_PREFIX, DEFAULT_VERSION, Emulator, RecordedRequest
from ._store import AssetRecord, load_assets

__all__ = [
    "BREAK_MODES",
    "CONTROL_PREFIX",
    "DEFAULT_VERSION",
    "AssetRecord",
    "Emulator",
    "RecordedRequest",
    "load_assets",
]
