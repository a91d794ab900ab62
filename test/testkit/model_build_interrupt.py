"""Run by test_interrupts.py in a fresh interpreter: Ctrl-C (SIGALRM) lands during first-use model builds.

Each of three rounds parses a document (building the models on first use) while an alarm may
interrupt it; the last round runs without an alarm. Prints one JSON list: what each round saw.
"""

from __future__ import annotations

import json
import random
import signal
import sys
from typing import Any

SEED = int(sys.argv[1])


armed = False


def interrupt(signum: int, frame: Any) -> None:
    if armed:  # an alarm whose handler runs after its round ended (a busy machine) does nothing
        raise KeyboardInterrupt


def main() -> None:
    global armed
    random.seed(SEED)
    signal.signal(signal.SIGALRM, interrupt)
    from pieces_os_client.models.conversations import Conversations

    seen = []
    for round_ in range(3):
        try:
            try:
                armed = round_ < 2
                signal.setitimer(signal.ITIMER_REAL, random.uniform(0.001, 0.12) if round_ < 2 else 0)
                Conversations.model_validate_json(b'{"iterable": []}')
            finally:  # one alarm a round: once it has fired, nothing can raise here again
                armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            seen.append("ok")
        except KeyboardInterrupt:
            seen.append("interrupted")
        except BaseException as exc:  # what must not happen: an interrupt reported as another error
            seen.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
