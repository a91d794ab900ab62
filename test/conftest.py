"""Shared pytest configuration for the test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pieces_os_client.emulator import Emulator
from pieces_os_client.testing import pieces_emulator, pieces_emulator_session  # noqa: F401


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
