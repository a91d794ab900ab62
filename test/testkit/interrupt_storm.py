"""Run by test/sync/test_interrupts.py in a fresh interpreter: Ctrl-C inside calls, then the pool.

Two kinds of interrupt, each brought about by construction rather than by a quiet machine:

- **Aimed**: a trace function raises ``KeyboardInterrupt`` at the k-th function entry of a call (in
  any Python frame of the main thread: the SDK, urllib3, http.client, socket). Each call kind is
  first traced once to count its function entries; the sweep then aims at points spread evenly over
  that count, so every aimed call is interrupted, wherever k falls, however busy the machine.
- **Timed**: SIGALRM raises ``KeyboardInterrupt`` as Ctrl-C does in a REPL, which also lands
  inside C code (a blocked ``recv``, a lock wait). Each delay is drawn below the last measured
  duration of an uninterrupted call of that kind, and the storm runs until it has interrupted
  ``TARGET`` calls, with a bound of ``10 * ROUNDS`` calls, so a slow machine runs more calls
  instead of fewer hits.

Prints one JSON line: how many calls each kind interrupted, how many pool slots were missing
right after, and whether the client then served calls needing every slot at once.
"""

from __future__ import annotations

import faulthandler
import json
import random
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, List, Optional

from pieces_os_client import ApiClient, Configuration, ConversationsApi, SeededConversation
from pieces_os_client.emulator import Emulator

ROUNDS = int(sys.argv[1])
SEED = int(sys.argv[2])
TARGET = ROUNDS // 5 + 1  # timer interrupts the storm must land before it stops
POOL = 2
armed = False


def on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    if armed:
        raise KeyboardInterrupt


class EntryCounter:
    """A trace function that counts function entries and, when aimed, raises at the chosen one.

    Function entry is where CPython runs pending signal handlers (with backward jumps), so an
    exception raised there is one a real Ctrl-C could raise. A line event is not: on 3.11 one
    raised at a ``try:`` just inside a ``with lock:`` escapes before the ``with`` guards it,
    which no signal can do, and leaves the lock held.
    """

    def __init__(self, aim: Optional[int] = None) -> None:
        self.entries = 0
        self.aim = aim

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if event == "call":
            self.entries += 1
            if self.entries == self.aim:
                raise KeyboardInterrupt  # the trace is removed, the exception raised at that line
        return self


def traced(call: Callable[[], object], counter: EntryCounter) -> None:
    sys.settrace(counter)
    try:
        call()
    finally:
        sys.settrace(None)


def main() -> None:
    global armed
    faulthandler.dump_traceback_later(100, exit=True)  # a deadlock shows where it is, then ends
    rng = random.Random(SEED)
    signal.signal(signal.SIGALRM, on_alarm)
    with Emulator(port=0, seed_conversations=5) as emulator:
        api = ConversationsApi(ApiClient(Configuration(
            host=emulator.url, connection_pool_maxsize=POOL, pool_timeout=5, max_retries=0)))
        api.conversations_identifiers_snapshot()  # models built before the storm
        calls: Dict[str, Callable[[], object]] = {
            "identifiers": lambda: api.conversations_identifiers_snapshot(),
            "snapshot": lambda: api.conversations_snapshot(transferables=False),
            "create": lambda: api.conversations_create_specific_conversation(
                seeded_conversation=SeededConversation(name="storm")),
            "raw": lambda: api.conversations_snapshot_without_preload_content().release_conn(),
        }

        # aimed: every aimed call is interrupted by construction
        aimed = 0
        aimed_missed: List[str] = []
        per_kind = max(1, ROUNDS // (2 * len(calls)))
        for name, call in calls.items():
            counts = []
            for _ in range(4):  # the first traced call also runs lazy imports: count warm calls
                count = EntryCounter()
                traced(call, count)
                counts.append(count.entries)
            count.entries = min(counts[1:])
            # points spread over the whole call, from its first line to its last, shuffled by seed
            points = sorted({1 + (i * (count.entries - 1)) // max(1, per_kind - 1) for i in range(per_kind)})
            rng.shuffle(points)
            for point in points:
                try:
                    traced(call, EntryCounter(aim=point))
                except KeyboardInterrupt:
                    aimed += 1
                else:  # a call shorter than the counted ones (say, a connection reused): aim lower
                    try:
                        traced(call, EntryCounter(aim=1 + point // 2))
                    except KeyboardInterrupt:
                        aimed += 1
                    else:
                        aimed_missed.append(f"{name}@{point}")

        # timed: until TARGET calls are hit, at most 10 * ROUNDS calls
        last_duration = {name: 0.003 for name in calls}
        timed = 0
        timed_calls = 0
        started = time.monotonic()
        while timed_calls < ROUNDS or (timed < TARGET and timed_calls < 10 * ROUNDS):
            name = rng.choice(list(calls))
            timed_calls += 1
            began = time.perf_counter()
            try:
                try:
                    armed = True
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00002, last_duration[name]))
                    calls[name]()
                finally:  # one alarm a call: once it has fired, nothing can raise here again
                    armed = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                timed += 1
            else:
                last_duration[name] = max(0.00005, time.perf_counter() - began)
        storm_seconds = time.monotonic() - started

        pool = api.api_client.rest_client.pool_manager.connection_from_url(emulator.url)
        live_out = sum(1 for ref in pool._out.values() if ref() is not None)
        missing = pool._slots - len(pool.pool.queue) - len(pool.pool.taking) - live_out
        # every slot usable again: hold all of them at once, from threads
        held: List[Any] = []
        errors: List[BaseException] = []

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
        "rounds": ROUNDS, "target": TARGET, "aimed": aimed, "aimed_missed": aimed_missed,
        "timed": timed, "timed_calls": timed_calls, "missing_after_storm": max(missing, 0),
        "held_at_once": len(held), "errors": [repr(e) for e in errors],
        "all_slots_seconds": round(all_slots_seconds, 2), "calls_after": after,
        "storm_seconds": round(storm_seconds, 2),
    }))


if __name__ == "__main__":
    main()
