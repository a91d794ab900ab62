"""Quickstart: talk to Pieces OS, or to the bundled emulator when Pieces OS is not running.

    python examples/quickstart.py            # find Pieces OS, else start the emulator
    python examples/quickstart.py --host URL # use this host
    python examples/quickstart.py --emulator # always use the emulator

It creates one conversation (named "pieces_os_client quickstart"), lists, snapshots, starts
one from an asset when the server has assets, and deletes what it created.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

import pieces_os_client
from pieces_os_client.discovery import find_pieces_os

DEMO_ASSET = "2254f2c8-5797-40e8-ac56-41166dc0e159"


@contextlib.contextmanager
def server(host: str | None, force_emulator: bool) -> Iterator[str]:
    if host:
        yield host
        return
    found = None if force_emulator else find_pieces_os()
    if found:
        print(f"Using Pieces OS at {found}")
        yield found
        return
    try:
        from pieces_os_client.emulator import Emulator
    except ImportError as exc:
        sys.exit(f"No Pieces OS found and the emulator is not installed: {exc}")
    with Emulator(port=0) as emu:
        print(f"No Pieces OS found; started the bundled emulator at {emu.url}")
        yield emu.url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", help="base URL of Pieces OS, e.g. http://localhost:39300")
    parser.add_argument("--emulator", action="store_true", help="always use the bundled emulator")
    args = parser.parse_args()

    with server(args.host, args.emulator) as host:
        configuration = pieces_os_client.Configuration(host=host)
        with pieces_os_client.ApiClient(configuration) as api_client:
            api = pieces_os_client.ConversationsApi(api_client)

            created = api.conversations_create_specific_conversation(
                transferables=False,
                seeded_conversation=pieces_os_client.SeededConversation(name="pieces_os_client quickstart"),
            )
            print(f"created conversation {created.id} named {created.name!r}")

            ids = [ref.id for ref in api.conversations_identifiers_snapshot().iterable]
            print(f"{len(ids)} conversation(s) on the server; ours is listed: {created.id in ids}")

            snapshot = api.conversations_snapshot(transferables=False)
            names = [c.name for c in snapshot.iterable if c.id == created.id]
            print(f"snapshot holds {len(snapshot.iterable)} conversation(s); ours is named {names[0]!r}")

            to_delete = [created.id]
            try:
                grounded = api.conversations_create_from_asset(DEMO_ASSET).conversation
                to_delete.append(grounded.id)
                print(f"created conversation {grounded.id} from asset {DEMO_ASSET}")
            except pieces_os_client.ApiException as exc:
                print(f"no conversation from asset {DEMO_ASSET}: the server answered {exc.status} ({exc.reason})")

            for conversation_id in to_delete:
                api.conversations_delete_specific_conversation(conversation_id)
            print(f"deleted {len(to_delete)} conversation(s); done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
