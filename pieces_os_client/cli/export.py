"""``conversations export``: one file per conversation, JSON (the wire document) or Markdown."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Set

from pieces_os_client.cli import EXIT_FAILURE, EXIT_OK, PROG
from pieces_os_client.cli._output import (
    describe_error,
    is_terminal,
    iso,
    join_ids,
    no_color,
    open_api,
    print_json,
    printable,
)
from pieces_os_client.cli.conversations import enum_text, messages_of, snapshot_with_documents

if TYPE_CHECKING:
    from pieces_os_client.models.conversation import Conversation

__all__ = ["file_names", "markdown", "safe_stem"]

#: The longest name part of a file name, in UTF-8 bytes. With the id part and the extension a
#: name stays under 100 bytes: well inside every file system's limit (255 bytes on most, 143
#: on eCryptfs) and leaving room for the directory in Windows' 260-character paths.
STEM_BYTES = 64
#: Characters that are not allowed (Windows) or that mean something (a path separator) in a name.
_UNSAFE = frozenset('<>:"/\\|?*')
#: Names Windows reserves for devices, whatever the extension.
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]}
)
_EXTENSIONS = {"json": ".json", "markdown": ".md"}


def safe_stem(name: str, limit: int = STEM_BYTES) -> str:
    """A name part for a file that is valid and harmless on Windows, macOS and Linux.

    Path separators, characters Windows forbids, control characters and whitespace become
    ``_``; leading and trailing dots and underscores go (no hidden files, no ``..``, no
    trailing dot that Windows drops); device names such as ``CON`` get a leading ``_``; the
    result is cut to ``limit`` UTF-8 bytes. Empty results become ``conversation``.
    """
    text = unicodedata.normalize("NFC", name)
    chars = ["_" if c in _UNSAFE or c.isspace() or not c.isprintable() else c for c in text]
    stem = "_".join(filter(None, "".join(chars).split("_"))).strip("._ ")
    cut = stem.encode("utf-8")[:limit].decode("utf-8", "ignore").rstrip("._ ")
    if not cut:
        return "conversation"
    if cut.split(".")[0].upper().rstrip(" ") in _RESERVED:
        cut = "_" + cut
    return cut


def _id_part(conversation_id: str, length: int = 8) -> str:
    """A short, safe part of the id (its first letters and digits), or a hash of it."""
    alnum = "".join(c for c in conversation_id if c.isascii() and c.isalnum())
    if len(alnum) >= length:
        return alnum[:length].lower()
    return hashlib.sha256(conversation_id.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def file_names(conversations: Iterable[Conversation], extension: str) -> Dict[str, str]:
    """conversation id -> file name, no two alike (not even ignoring case, as macOS and Windows do)."""
    names: Dict[str, str] = {}
    used: Set[str] = set()
    for conversation in conversations:
        stem = safe_stem(conversation.name or "")
        candidate = f"{stem}-{_id_part(conversation.id)}{extension}"
        if candidate.lower() in used:
            digest = hashlib.sha256(conversation.id.encode("utf-8", "surrogatepass")).hexdigest()
            candidate = f"{stem}-{digest[:16]}{extension}"
            n = 2
            while candidate.lower() in used:
                candidate = f"{stem}-{digest[:16]}-{n}{extension}"
                n += 1
        used.add(candidate.lower())
        names[conversation.id] = candidate
    return names


def markdown(conversation: Conversation) -> str:
    """A readable transcript: a title, the conversation's details, then each message."""
    title = " ".join(printable(conversation.name or "(no name)").split())
    messages = messages_of(conversation)
    lines = [
        f"# {title}",
        "",
        f"- id: `{printable(conversation.id)}`",
        f"- type: {enum_text(conversation.type)}",
        f"- created: {iso(conversation.created.value)}",
        f"- updated: {iso(conversation.updated.value)}",
        f"- messages: {len(messages)}",
    ]
    for number, message in enumerate(messages, 1):
        lines.append("")
        if message.reference_only:
            lines += [f"## {number}. message `{printable(message.id)}`", "", f"*({message.note})*"]
            continue
        lines += [f"## {number}. {message.role} · {iso(message.created)}", ""]
        lines.append(message.text.rstrip("\n") if message.text is not None else f"*({message.note})*")
    return "\n".join(lines) + "\n"


def _render(conversation: Conversation, document: Any, fmt: str) -> str:
    if fmt == "markdown":
        return markdown(conversation)
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _write(path: Path, text: str, force: bool) -> None:
    data = text.encode("utf-8")
    if not force:
        with open(path, "xb") as handle:  # never replaces a file that appeared meanwhile
            try:
                handle.write(data)
            except BaseException:
                handle.close()
                path.unlink(missing_ok=True)
                raise
        return
    fd, temp = tempfile.mkstemp(prefix=".export-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class _Failure(NamedTuple):
    id: str
    reason: str


def run(args: argparse.Namespace) -> int:
    client, api = open_api(args)
    with client:
        every, documents = snapshot_with_documents(api)
    failures: List[_Failure] = []
    if args.ids:
        by_id = {c.id: c for c in every}
        chosen = [by_id[i] for i in dict.fromkeys(args.ids) if i in by_id]
        failures += [_Failure(i, "no conversation with this id") for i in dict.fromkeys(args.ids) if i not in by_id]
    else:
        chosen = every
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = file_names(chosen, _EXTENSIONS[args.format])
    if not args.force:
        existing = [names[c.id] for c in chosen if (out / names[c.id]).exists()]
        if existing:
            print(
                f"{PROG}: error: {len(existing)} of the files already exist in {printable(str(out))} "
                f"({join_ids(existing, 3)}); nothing was written. Pass --force to overwrite them.",
                file=sys.stderr,
            )
            return EXIT_FAILURE
    progress = is_terminal(sys.stderr) and not no_color() and len(chosen) > 1
    written: List[Dict[str, Any]] = []
    for index, conversation in enumerate(chosen, 1):
        path = out / names[conversation.id]
        if progress:
            sys.stderr.write(f"\rexporting {index}/{len(chosen)}")
            sys.stderr.flush()
        try:
            _write(path, _render(conversation, documents[conversation.id], args.format), args.force)
        except OSError as exc:
            failures.append(_Failure(conversation.id, describe_error(exc)))
            failures += [_Failure(c.id, "not tried") for c in chosen[index:]]
            break
        written.append({"id": conversation.id, "path": str(path)})
        if not args.json:
            print(path)
    if progress:
        sys.stderr.write("\r\033[K")
    if args.json:
        print_json({"written": written, "not_written": [f._asdict() for f in failures]})
    total = len(written) + len(failures)
    if failures:
        print(
            f"{PROG}: error: wrote {len(written)} of {total} conversations to {printable(str(out))}; not written: "
            + "; ".join(f"{printable(f.id)} ({f.reason})" for f in failures[:5])
            + (f"; and {len(failures) - 5} more" if len(failures) > 5 else ""),
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"wrote {len(written)} file{'s' if len(written) != 1 else ''} to {printable(str(out))}", file=sys.stderr)
    return EXIT_OK
