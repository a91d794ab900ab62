"""The asyncio client's answers to error statuses and bad arguments, and its retries of a GET
(never of a create), compared with the sync client.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import logging
import time

import pytest
from testkit.aio import IDENTIFIERS, config, run

from pieces_os_client import (
    ApiClient,
    ApiTypeError,
    Configuration,
    ConversationsApi,
    NotFoundException,
    ServiceException,
)
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


def test_errors_match_the_sync_client(emu: Emulator) -> None:
    cfg = config(emu.url)
    with ApiClient(cfg) as sync_client:
        sync_api = ConversationsApi(sync_client)
        emu.fail_next(404, body="no such thing")
        with pytest.raises(NotFoundException) as sync_404:
            sync_api.conversations_snapshot()
        emu.fail_next(500, body="broken")
        with pytest.raises(ServiceException) as sync_500:
            sync_api.conversations_create_specific_conversation()

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            emu.fail_next(404, body="no such thing")
            with pytest.raises(NotFoundException) as async_404:
                await api.conversations_snapshot()
            assert (async_404.value.status, async_404.value.body) == (sync_404.value.status, sync_404.value.body)
            emu.fail_next(500, body="broken")
            with pytest.raises(ServiceException) as async_500:
                await api.conversations_create_specific_conversation()
            assert (async_500.value.status, async_500.value.body) == (sync_500.value.status, sync_500.value.body)
            with pytest.raises(ApiTypeError, match="transferables must be a bool"):
                await api.conversations_snapshot(transferables="yes")  # type: ignore[arg-type]
            with pytest.raises(ApiTypeError, match="unexpected keyword"):
                await api.conversations_snapshot(_bogus=1)  # type: ignore[call-arg]

    run(main())
    assert emu.request_count("POST", "/conversations/create") == 2


def test_a_get_is_retried_on_503_with_retry_after_and_a_create_never_resent(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pieces_os_client")

    async def main() -> None:
        async with AsyncApiClient(config(emu.url)) as client:
            api = AsyncConversationsApi(client)
            emu.fail_next(503, retry_after=1)
            started = time.monotonic()
            assert (await api.conversations_identifiers_snapshot()).iterable == []
            took = time.monotonic() - started
            # the server's second was waited (the first retry's backoff is at most 0.25 s); a slow
            # machine only lengthens it, and the upper bound only catches a hang
            assert 1.0 <= took < 20, took
            assert [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()] == [
                f"GET {emu.url}{IDENTIFIERS}: answered 503; retrying in 1.00 s"]
            assert emu.request_count("GET", IDENTIFIERS) == 2
            emu.fail_next(503, retry_after=0)
            with pytest.raises(ServiceException):
                await api.conversations_create_specific_conversation()
            assert emu.request_count("POST", "/conversations/create") == 1

    run(main())


def test_may_retry_status_never_says_no_where_the_retry_policy_would_retry() -> None:
    from urllib3.util.retry import Retry

    from pieces_os_client._core.retry import may_retry_status

    class Always(Retry):
        def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
            return True

    policies = [Configuration().retry_policy(), Retry(total=3, status_forcelist=[500, 418]), Retry(total=0),
                Retry(total=3, status_forcelist=None), Retry(total=3, respect_retry_after_header=False)]
    for policy in policies:
        for status in range(100, 600):
            for method in ("GET", "POST", "HEAD"):
                for has_retry_after in (False, True):
                    if policy.is_retry(method, status, has_retry_after):
                        assert may_retry_status(policy, status), (policy, status, method)
        assert not may_retry_status(policy, 200) or 200 in (policy.status_forcelist or ())
    assert may_retry_status(Always(total=3), 200)
