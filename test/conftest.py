"""Shared pytest configuration for the test suite."""

from pieces_os_client.testing import pieces_emulator, pieces_emulator_session  # noqa: F401
