"""Follow the set of conversations live, the way a chat sidebar would.

    python examples/stream_identifiers.py                 # start the bundled emulator and demo
    python examples/stream_identifiers.py --host URL      # follow a running Pieces OS
    python examples/stream_identifiers.py --host URL --seconds 60

With ``--host`` it prints every change until Ctrl-C (or ``--seconds``). Without it, it starts
the emulator, creates and deletes a few conversations, drops the WebSocket once to show the
reconnect and resync, and exits. Needs the ``emulator`` extra (aiohttp) for the demo only.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, Optional

import pieces_os_client
from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import ApiConnectionError, StreamError
from pieces_os_client.stream import ConversationIdsMirror, MirrorUpdate


def show(update: MirrorUpdate) -> None:
    """Print one change to the list (runs on the stream's background thread)."""
    stamp = time.strftime("%H:%M:%S")
    if update.snapshot and not update.resync:
        print(f"{stamp}  initial list: {len(update.ids)} conversations")
    elif update.resync:
        print(f"{stamp}  resync after reconnect: {len(update.ids)} conversations, "
              f"{len(update.added)} new and {len(update.removed)} gone while disconnected")
    for conversation_id in sorted(update.added):
        print(f"{stamp}  + {conversation_id}")
    for conversation_id in sorted(update.removed):
        print(f"{stamp}  - {conversation_id}")


def report_error(exc: Exception) -> None:
    print(f"{time.strftime('%H:%M:%S')}  ! {exc}", file=sys.stderr)


@contextlib.contextmanager
def emulator() -> Iterator[Any]:
    from pieces_os_client.emulator import Emulator

    with Emulator(seed_conversations=3) as emu:
        yield emu


def follow(api: ConversationsApi, seconds: Optional[float]) -> None:
    with ConversationIdsMirror.open(api, on_change=show, on_error=report_error) as mirror:
        print(f"following {mirror.stream.url if mirror.stream else '?'} (Ctrl-C to stop)")
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            # wake on each change (or every second) so Ctrl-C is handled promptly
            if not mirror.wait_for_change(timeout=1.0) and mirror.ended:
                print("the stream ended:", mirror.stream.error if mirror.stream else None)
                return


def demo(api: ConversationsApi, emu: Any) -> None:
    with ConversationIdsMirror.open(api, on_change=show, on_error=report_error, initial_backoff=0.1) as mirror:
        mirror.wait_ready(timeout=5)
        made = [
            api.conversations_create_specific_conversation(seeded_conversation={"type": "COPILOT"}).id
            for _ in range(3)
        ]
        mirror.wait_for(lambda ids: set(made) <= ids, timeout=5)
        api.conversations_delete_specific_conversation(made[0])
        mirror.wait_for(lambda ids: made[0] not in ids, timeout=5)

        print("-- dropping the WebSocket; changes made meanwhile arrive with the resync --")
        emu.drop_websockets()
        api.conversations_delete_specific_conversation(made[1])
        mirror.wait_for(lambda ids: mirror.resyncs >= 1 and made[1] not in ids, timeout=5)

        print(f"now {len(mirror)} conversations; reconnects: {mirror.stream.reconnects if mirror.stream else 0}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Follow conversation ids live.")
    parser.add_argument("--host", help="Pieces OS base URL, e.g. http://localhost:39300 (default: run a demo)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)

    try:
        if args.host:
            with ApiClient(Configuration(host=args.host)) as client:
                follow(ConversationsApi(client), args.seconds)
        else:
            with emulator() as emu, ApiClient(Configuration(host=emu.url)) as client:
                demo(ConversationsApi(client), emu)
    except (ApiConnectionError, StreamError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print(f"done (pieces_os_client {pieces_os_client.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
