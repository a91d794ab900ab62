"""Many threads on one SDK: first use in a fresh process, and a shared client under load.

The race test starts fresh interpreters whose threads are released together by a barrier, each
making its first use of a different part of the SDK (operations, model classes in every way
they can be reached, the identifiers stream). Lazy loading and lazy model building must hold
up: no thread may fail or hang. A single process rarely shows a race, so the test runs many.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import List

from pieces_os_client.emulator import Emulator

# One fresh process: THREADS threads wait at a barrier, then each makes a first use.
# argv: host, seed (the seed rotates which thread does what). Prints a JSON list of failures.
_RACE_CHILD = r"""
import json, sys, threading
import pieces_os_client as sdk

host, seed = sys.argv[1], int(sys.argv[2])
THREADS = 8
barrier = threading.Barrier(THREADS)
failures = []


def api():
    return sdk.ConversationsApi(sdk.ApiClient(sdk.Configuration(host=host, max_retries=0)))


def create():
    api().conversations_create_specific_conversation(seeded_conversation={"name": "race"})


def snapshot():
    api().conversations_snapshot()


def identifiers():
    api().conversations_identifiers_snapshot_with_http_info()


def stream():
    got = threading.Event()
    errors = []
    with api().conversations_stream_identifiers(on_message=lambda m: got.set(), on_error=errors.append):
        if not got.wait(20):
            raise AssertionError("no stream message within 20 s")
    if errors:
        raise errors[0]


def module_import_and_constructor():
    from pieces_os_client.models.seeded_conversation_message import SeededConversationMessage

    SeededConversationMessage(fragment={"string": {"raw": "hi"}}, role="USER").to_json()


def lazy_name_from_json():
    sdk.Conversation.from_json(
        '{"id": "c1", "type": "COPILOT", "created": {"value": "2024-01-01T00:00:00Z"},'
        ' "updated": {"value": "2024-01-01T00:00:00Z"}, "messages": {"iterable": []}}'
    )


def models_package_validate():
    from pieces_os_client.models import FlattenedAssets

    FlattenedAssets.model_validate({"iterable": [{"id": "a1"}]})


def construct_and_dump():
    from pieces_os_client.models.flattened_anchor import FlattenedAnchor

    FlattenedAnchor.model_construct(id="x").to_dict()


WORK = [create, snapshot, identifiers, stream, module_import_and_constructor,
        lazy_name_from_json, models_package_validate, construct_and_dump]


def run(index):
    job = WORK[(index + seed) % len(WORK)]
    try:
        barrier.wait(30)
        job()
    except BaseException as exc:
        failures.append(f"{job.__name__}: {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}")


threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(40)
    if thread.is_alive():
        failures.append("a thread was still running after 40 s")
print(json.dumps(failures))
sys.stdout.flush()
"""

RACE_ROUNDS = 24
RACE_PARALLEL = 2


def _race_round(host: str, seed: int) -> List[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _RACE_CHILD, host, str(seed)],
        capture_output=True, text=True, timeout=90,
    )
    if proc.returncode != 0:
        return [f"exit {proc.returncode}: {proc.stderr[-2000:]}"]
    lines = proc.stdout.strip().splitlines()
    failures: List[str] = json.loads(lines[-1]) if lines else ["no output"]
    return failures


def test_first_use_from_many_threads_in_fresh_processes(emulator: Emulator) -> None:
    emulator.reset()
    with ThreadPoolExecutor(RACE_PARALLEL) as pool:
        results = list(pool.map(lambda seed: _race_round(emulator.url, seed), range(RACE_ROUNDS)))
    failed = {seed: failures for seed, failures in enumerate(results) if failures}
    assert not failed, f"{len(failed)} of {RACE_ROUNDS} fresh processes failed: {failed}"
