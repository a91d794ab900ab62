"""Run by test_interrupts.py in a fresh interpreter: calls interrupted by SIGALRM at random moments.

Prints one JSON line: how many calls ran, how many were interrupted, how many pool slots were
missing right after the storm, and whether the client then served calls needing every slot.
"""

from __future__ import annotations

import faulthandler
import json
import random
import signal
import sys
import threading
import time
from typing import Any

from pieces_os_client import ApiClient, Configuration, ConversationsApi, SeededConversation
from pieces_os_client.emulator import Emulator

ROUNDS = int(sys.argv[1])
SEED = int(sys.argv[2])
POOL = 2
armed = False


def interrupt(signum: int, frame: Any) -> None:
    if armed:
        raise KeyboardInterrupt


def main() -> None:
    global armed
    faulthandler.dump_traceback_later(60, exit=True)  # a deadlock shows where it is, then ends
    random.seed(SEED)
    signal.signal(signal.SIGALRM, interrupt)
    with Emulator(port=0, seed_conversations=5) as emulator:
        api = ConversationsApi(ApiClient(Configuration(
            host=emulator.url, connection_pool_maxsize=POOL, pool_timeout=5, max_retries=0)))
        api.conversations_identifiers_snapshot()  # models built before the storm
        calls = [
            lambda: api.conversations_identifiers_snapshot(),
            lambda: api.conversations_snapshot(transferables=False),
            lambda: api.conversations_create_specific_conversation(
                seeded_conversation=SeededConversation(name="storm")),
            lambda: api.conversations_snapshot_without_preload_content().release_conn(),
        ]
        interrupted = 0
        started = time.monotonic()
        for _ in range(ROUNDS):
            call = random.choice(calls)
            try:
                armed = True
                signal.setitimer(signal.ITIMER_REAL, random.uniform(0.00005, 0.003))
                call()
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        storm_seconds = time.monotonic() - started
        pool = api.api_client.rest_client.pool_manager.connection_from_url(emulator.url)
        live_out = sum(1 for ref in pool._out.values() if ref() is not None)
        missing = pool._slots - len(pool.pool.queue) - len(pool.pool.taking) - live_out
        # every slot usable again: hold all of them at once, from threads
        held: list[Any] = []
        errors: list[BaseException] = []

        def hold() -> None:
            try:
                held.append(api.conversations_snapshot_without_preload_content())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hold) for _ in range(POOL)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        all_slots_seconds = time.monotonic() - began
        for raw in held:
            raw.release_conn()
        after = sum(1 for _ in range(20) if api.conversations_identifiers_snapshot() is not None)
        api.api_client.close()
    print(json.dumps({
        "rounds": ROUNDS, "interrupted": interrupted, "missing_after_storm": max(missing, 0),
        "held_at_once": len(held), "errors": [repr(e) for e in errors],
        "all_slots_seconds": round(all_slots_seconds, 2), "calls_after": after,
        "storm_seconds": round(storm_seconds, 2),
    }))


if __name__ == "__main__":
    main()
