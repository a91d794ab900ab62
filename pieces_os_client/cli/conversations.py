"""``conversations list|show|watch|create|delete``."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import signal
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from pieces_os_client.cli import EXIT_FAILURE, EXIT_OK, PROG, UsageError
from pieces_os_client.cli._output import (
    describe_error,
    is_terminal,
    iso,
    join_ids,
    json_text,
    local_time,
    open_api,
    print_json,
    printable,
    table,
    terminal_width,
)

if TYPE_CHECKING:
    from pieces_os_client.models.conversation import Conversation
    from pieces_os_client.stream import StreamEvent


# ------------------------------------------------------------------ reading a Conversation
def enum_text(value: Any) -> str:
    return str(getattr(value, "value", value)) if value is not None else "-"


def wire(model: Any) -> Any:
    """A model's wire document as plain JSON data."""
    return json.loads(model.to_json())


class Message(NamedTuple):
    """One message as far as the API gave it: ``reference_only`` when only its id came back."""

    id: str
    role: Optional[str]
    created: Optional[_dt.datetime]
    text: Optional[str]
    note: Optional[str]  # why there is no text, when there is none

    @property
    def reference_only(self) -> bool:
        return self.role is None


def messages_of(conversation: Conversation) -> List[Message]:
    """The conversation's messages in conversation order, with what the API said about each."""
    refs = list(conversation.messages.iterable or [])
    indices = conversation.messages.indices or {}
    order = sorted(range(len(refs)), key=lambda i: (indices.get(refs[i].id, i), i))
    out: List[Message] = []
    for i in order:
        ref = refs[i]
        message = ref.reference
        if message is None:
            out.append(Message(ref.id, None, None, None, "only its id was sent (no role, time or text)"))
            continue
        fragment = message.fragment
        text: Optional[str] = None
        note: Optional[str] = None
        if fragment is not None and fragment.string is not None and fragment.string.raw is not None:
            text = fragment.string.raw
        elif fragment is not None and fragment.bytes is not None:
            note = "binary content, not shown"
        else:
            note = "no text was sent for this message"
        out.append(Message(ref.id, enum_text(message.role), message.created.value, text, note))
    return out


def summary(conversation: Conversation) -> Dict[str, Any]:
    return {
        "id": conversation.id,
        "name": conversation.name,
        "type": enum_text(conversation.type),
        "created": iso(conversation.created.value),
        "updated": iso(conversation.updated.value),
        "messages": len(conversation.messages.iterable or []),
    }


def newest_first(conversations: List[Conversation]) -> List[Conversation]:
    return sorted(
        conversations,
        key=lambda c: (iso(c.updated.value) or "", iso(c.created.value) or "", c.id),
        reverse=True,
    )


def find(conversations: List[Conversation], wanted: str) -> Optional[Conversation]:
    return next((c for c in conversations if c.id == wanted), None)


def snapshot_with_documents(api: Any, timeout: Optional[float] = None) -> Tuple[List[Conversation], Dict[str, Any]]:
    """Every conversation (full form) as models, and as the JSON documents Pieces OS sent (by id).

    The documents are the wire form exactly as received (times, unknown fields and all), which
    is what ``--json`` and ``export --format json`` print. ``timeout`` bounds each attempt as a
    whole, body included (``_request_timeout`` as a number), however the server paces its bytes.
    """
    response = api.conversations_snapshot_with_http_info(**({} if timeout is None else {"_request_timeout": timeout}))
    conversations = list(response.data.iterable or [])
    documents: Dict[str, Any] = {}
    try:
        raw = json.loads(response.raw_data)
        for item in raw.get("iterable") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                documents.setdefault(item["id"], item)
    except (ValueError, AttributeError):
        pass
    for conversation in conversations:  # anything the raw body did not give as expected
        documents.setdefault(conversation.id, wire(conversation))
    return conversations, documents


# ------------------------------------------------------------------ list
def list_(args: argparse.Namespace) -> int:
    client, api = open_api(args)
    with client:
        conversations = newest_first(list(api.conversations_snapshot(transferables=False).iterable or []))
    if args.json:
        print_json([summary(c) for c in conversations])
        return EXIT_OK
    if not conversations:
        print("no conversations", file=sys.stderr)
        return EXIT_OK
    rows = [
        [c.id, c.name or "", enum_text(c.type), local_time(c.created.value), local_time(c.updated.value),
         str(len(c.messages.iterable or []))]
        for c in conversations
    ]
    headers = ["ID", "NAME", "TYPE", "CREATED", "UPDATED", "MESSAGES"]
    for line in table(rows, headers, flexible=1, width=terminal_width(sys.stdout)):
        print(line)
    return EXIT_OK


# ------------------------------------------------------------------ show
def show(args: argparse.Namespace) -> int:
    client, api = open_api(args)
    with client:
        conversations, documents = snapshot_with_documents(api)
    conversation = find(conversations, args.id)
    if conversation is None:
        print(f"{PROG}: error: no conversation with id {printable(args.id)}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print_json(documents[conversation.id])
        return EXIT_OK
    messages = messages_of(conversation)
    out = sys.stdout
    out.write(f"{printable(conversation.name or '(no name)')}\n")
    for label, value in (
        ("id", conversation.id),
        ("type", enum_text(conversation.type)),
        ("created", local_time(conversation.created.value)),
        ("updated", local_time(conversation.updated.value)),
        ("messages", str(len(messages))),
    ):
        out.write(f"  {label + ':':<10}{printable(value)}\n")
    for number, message in enumerate(messages, 1):
        out.write("\n")
        if message.reference_only:
            out.write(f"[{number}] message {printable(message.id)}: {message.note}\n")
            continue
        out.write(f"[{number}] {message.role}  {local_time(message.created)}\n")
        if message.text is None:
            out.write(f"    ({message.note})\n")
            continue
        for line in message.text.splitlines() or [""]:
            out.write(f"    {printable(line)}".rstrip() + "\n")
    return EXIT_OK


# ------------------------------------------------------------------ watch
def changes(event: StreamEvent, known: Set[str]) -> Iterator[Dict[str, Any]]:
    """What one stream event changed, as records; updates ``known`` (the ids seen so far)."""
    stamp = iso(_dt.datetime.now(_dt.timezone.utc))
    ids = event.ids
    if event.snapshot:
        now = set(ids)
        if event.connection == 1:
            yield {"time": stamp, "event": "snapshot", "count": len(now), "ids": ids}
        else:
            added = [i for i in ids if i not in known]
            removed = sorted(known - now)
            yield {"time": stamp, "event": "resync", "count": len(now), "added": added, "removed": removed}
            for conversation_id in added:
                yield {"time": stamp, "event": "created", "id": conversation_id}
            for conversation_id in removed:
                yield {"time": stamp, "event": "deleted", "id": conversation_id}
        known.clear()
        known.update(now)
        return
    for conversation_id in ids:
        yield {"time": stamp, "event": "updated" if conversation_id in known else "created", "id": conversation_id}
        known.add(conversation_id)
    for conversation_id in event.deleted_ids:
        yield {"time": stamp, "event": "deleted", "id": conversation_id}
        known.discard(conversation_id)


def _watch_line(record: Dict[str, Any]) -> str:
    moment = _dt.datetime.fromisoformat(record["time"].replace("Z", "+00:00")).astimezone()
    when = moment.strftime("%H:%M:%S")
    kind = record["event"]
    if kind == "snapshot":
        return f"{when}  snapshot  {record['count']} conversations"
    if kind == "resync":
        return (f"{when}  resync    {record['count']} conversations after a reconnect "
                f"({len(record['added'])} new, {len(record['removed'])} gone)")
    return f"{when}  {kind:<8}  {printable(record['id'])}"


def _report_stream_problem(error: Exception) -> None:
    """A dropped connection or a skipped message: said on stderr; the stream goes on by itself."""
    with contextlib.suppress(OSError, ValueError):
        print(f"{PROG}: {describe_error(error)}", file=sys.stderr, flush=True)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def watch(args: argparse.Namespace) -> int:
    client, api = open_api(args)
    known: Set[str] = set()
    # SIGTERM (kill, timeout, a service manager) ends the watch as cleanly as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _stop) if hasattr(signal, "SIGTERM") else None
    try:
        with client:
            stream = api.conversations_stream_identifiers(on_error=_report_stream_problem)
            with stream:
                if not args.json:
                    print(f"watching {printable(stream.url)} (Ctrl-C to stop)", file=sys.stderr)
                for event in stream.events():
                    for record in changes(event, known):
                        if args.json:
                            sys.stdout.write(json_text(record) + "\n")
                        else:
                            sys.stdout.write(_watch_line(record) + "\n")
                        sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


# ------------------------------------------------------------------ create
def create(args: argparse.Namespace) -> int:
    if args.from_asset is not None and args.name is not None:
        raise UsageError(
            "--name and --from-asset cannot be combined: Pieces OS names a conversation made from an asset itself"
        )
    client, api = open_api(args)
    with client:
        if args.from_asset is not None:
            output = api.conversations_create_from_asset(args.from_asset)
            ref = output.conversation
            conversation_id = ref.id
            document = wire(ref.reference) if ref.reference is not None else wire(output)
        else:
            seeded: Dict[str, Any] = {"type": "COPILOT"}
            if args.name is not None:
                seeded["name"] = args.name
            created = api.conversations_create_specific_conversation(seeded_conversation=seeded)
            conversation_id = created.id
            document = wire(created)
    if args.json:
        print_json(document)
    else:
        print(conversation_id)
    return EXIT_OK


# ------------------------------------------------------------------ delete
def _confirm(ids: List[str]) -> bool:
    noun = "conversation" if len(ids) == 1 else f"{len(ids)} conversations"
    sys.stderr.write(f"Delete {noun} ({join_ids(ids)})? This cannot be undone. [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def delete(args: argparse.Namespace) -> int:
    ids: List[str] = list(dict.fromkeys(args.ids))
    if not args.yes:
        if not is_terminal(sys.stdin):
            raise UsageError("refusing to delete without confirmation: stdin is not a terminal; pass --yes")
        if not _confirm(ids):
            print("nothing deleted", file=sys.stderr)
            return EXIT_FAILURE
    deleted: List[str] = []
    failed: List[Dict[str, str]] = []
    client, api = open_api(args)
    with client:
        for conversation_id in ids:
            try:
                api.conversations_delete_specific_conversation(conversation_id)
            except Exception as exc:  # reported per id, the others still go ahead
                from pieces_os_client.exceptions import ApiConnectionError

                failed.append({"id": conversation_id, "error": describe_error(exc)})
                if isinstance(exc, ApiConnectionError):  # the rest would fail the same way
                    failed.extend({"id": i, "error": "not tried"} for i in ids[len(deleted) + len(failed):])
                    break
            else:
                deleted.append(conversation_id)
    if args.json:
        print_json({"deleted": deleted, "failed": failed})
    else:
        for conversation_id in deleted:
            print(conversation_id)
    for failure in failed:
        print(f"{PROG}: error: not deleted {printable(failure['id'])}: {failure['error']}", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK
