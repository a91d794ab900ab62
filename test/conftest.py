"""Shared pytest configuration for the test suite.

The package's own fixtures (``pieces_emulator``, ``pieces_emulator_session``) come from its
pytest plugin (the ``pytest11`` entry point in pyproject.toml), as they do in a user's suite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pieces_os_client.emulator import Emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One emulator per test module (cheap to share; `emu` resets it for each test)."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The module's emulator, emptied: no conversations, faults or recorded requests."""
    emulator.reset()
    emulator.clear_requests()
    return emulator
