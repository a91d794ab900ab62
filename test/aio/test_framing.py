"""The asyncio client against the table of malformed and stalled answers (testkit.framing),
with the sync client beside it on each case: one class, one message, one phase.

The rules are ``_core.framing`` (RFC 9112, section 6.3) and ``_core.failures`` (the head's
deadline); test/sync/test_framing.py runs the same table through the sync client alone.
"""

from __future__ import annotations

import asyncio
from typing import Tuple

import pytest
from testkit.aio import run
from testkit.framing import CASES, AnswerServer, Case, Outcome, Result, check, settings_of, shown, sync_call

from pieces_os_client import Configuration
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.exceptions import OpenApiException


async def async_call(host: str, case: Case) -> Outcome:
    async with AsyncApiClient(Configuration(host=host, **settings_of(case))) as client:
        try:
            result = await AsyncConversationsApi(client).conversations_identifiers_snapshot_with_http_info()
        except OpenApiException as exc:
            return exc
    return Result.of([item.id for item in result.data.iterable], result.headers)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_answer_gives_the_sync_clients_outcome(case: Case) -> None:
    with AnswerServer(case) as mine, AnswerServer(case) as theirs:

        async def both() -> Tuple[Outcome, Outcome]:
            # side by side, each on its own server: a stall costs one read timeout, not two
            return await asyncio.gather(async_call(mine.url, case), asyncio.to_thread(sync_call, theirs.url, case))

        outcome, sync_outcome = run(both())
    check(case, outcome, mine.url)
    check(case, sync_outcome, theirs.url)
    assert shown(outcome, mine.url) == shown(sync_outcome, theirs.url)  # headers too: as they came
    assert mine.requests == theirs.requests == case.requests
