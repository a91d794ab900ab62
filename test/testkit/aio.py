"""Running one async test: a fresh event loop per test, debug mode on, and a loop exception
handler that must record nothing.

No pytest-asyncio: each test calls :func:`run` with its coroutine. The suite already turns
warnings into errors, so a leaked transport, session or socket fails the test that leaked it
(``gc.collect()`` runs after the loop closes so such a leak is found here, not in a later test).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, Dict, List, TypeVar

T = TypeVar("T")

#: the longest one test's coroutine may run before it is cancelled and the test fails
DEFAULT_LIMIT = 60.0


def run(coro: Coroutine[Any, Any, T], *, debug: bool = True, limit: float = DEFAULT_LIMIT) -> T:
    """Run ``coro`` in a new event loop and return its result.

    The loop gets an exception handler that records every call; the test fails if anything
    was recorded (a task that died unseen, a callback that raised), even when ``coro`` passed.
    """
    recorded: List[Dict[str, Any]] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: recorded.append(context))
        return await asyncio.wait_for(coro, limit)

    try:
        result = asyncio.run(main(), debug=debug)
    finally:
        gc.collect()
    assert not recorded, f"the event loop's exception handler was called: {recorded!r}"
    return result
