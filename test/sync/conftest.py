"""Fixtures for the sync client's tests."""

from __future__ import annotations

import time

import pytest
from testkit.wait import SleepLog


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepLog:
    """The waits the test's own thread asks ``time.sleep`` for (urllib3's and the SDK's backoff),
    in order; every one is still slept."""
    log = SleepLog()
    monkeypatch.setattr(time, "sleep", log)
    return log
