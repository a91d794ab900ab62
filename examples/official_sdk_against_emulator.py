"""Drive the emulator with the *official* ``pieces-os-client`` SDK, to show any client works.

Run the emulator in one shell and this script (in an environment where the official SDK is
installed) in another::

    python -m pieces_os_client.emulator          # prints its URL: the first free port in 39300-39333
    python examples/official_sdk_against_emulator.py http://127.0.0.1:39300

The script creates a conversation from the demo asset, creates an empty one and a seeded
one, lists identifiers, takes snapshots with and without transferables, deletes what it
created and checks that a second delete fails with a 500. It exits non-zero on any surprise.
"""

from __future__ import annotations

import sys

# The official package empties its top-level __init__, so import from the modules directly.
from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import ApiException
from pieces_os_client.models.conversation_type_enum import ConversationTypeEnum
from pieces_os_client.models.seeded_conversation import SeededConversation

DEMO_ASSET = "2254f2c8-5797-40e8-ac56-41166dc0e159"


def main(host: str) -> int:
    with ApiClient(Configuration(host=host)) as client:
        api = ConversationsApi(client)

        grounded = api.conversations_create_from_asset(DEMO_ASSET).conversation
        print("created from asset:", grounded.id)
        empty = api.conversations_create_specific_conversation(transferables=True)
        print("created empty:     ", empty.id, repr(empty.name))
        seeded = api.conversations_create_specific_conversation(
            transferables=False,
            seeded_conversation=SeededConversation(type=ConversationTypeEnum.COPILOT, name="From the official SDK"),
        )
        print("created seeded:    ", seeded.id, repr(seeded.name))
        created = [grounded.id, empty.id, seeded.id]

        ids = [item.id for item in api.conversations_identifiers_snapshot().iterable]
        assert all(cid in ids for cid in created), ids
        print("identifiers:       ", len(ids))

        full = api.conversations_snapshot(transferables=True)
        lean = api.conversations_snapshot(transferables=False)
        assert len(full.iterable) == len(lean.iterable) == len(ids)
        first = next(c for c in full.iterable if c.id == grounded.id)
        summary = first.messages.iterable[0].reference.fragment.string.raw
        print("summary starts:    ", summary.splitlines()[0])

        for cid in created:
            api.conversations_delete_specific_conversation(cid)
        left = [item.id for item in api.conversations_identifiers_snapshot().iterable]
        assert not set(created) & set(left), left
        print("deleted:           ", len(created))

        try:
            api.conversations_delete_specific_conversation(grounded.id)
        except ApiException as exc:
            assert exc.status == 500, exc.status
            print("second delete:      500", exc.body)
        else:
            raise AssertionError("deleting an unknown conversation should fail")
    print("official SDK: all good")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:1000"))
