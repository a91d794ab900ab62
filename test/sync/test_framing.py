"""The sync client against the table of malformed and stalled answers (testkit.framing).

The asyncio client runs the same table in test/aio/test_framing.py; the rules are
``_core.framing`` (RFC 9112, section 6.3) and ``_core.failures`` (the head's deadline).
"""

from __future__ import annotations

import pytest
from testkit.framing import CASES, AnswerServer, Case, check, sync_call


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_answer_gives_its_one_outcome(case: Case) -> None:
    with AnswerServer(case) as server:
        outcome = sync_call(server.url, case)
    check(case, outcome, server.url)
    assert server.requests == case.requests
