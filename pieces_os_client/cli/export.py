"""``conversations export``: one file per conversation, JSON (the wire document) or Markdown."""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import os
import secrets
import signal
import sys
import threading
import unicodedata
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from pieces_os_client.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, PROG
from pieces_os_client.cli._output import (
    describe_error,
    is_terminal,
    iso,
    join_ids,
    json_text,
    no_color,
    open_api,
    print_json,
    printable,
)
from pieces_os_client.cli.conversations import enum_text, messages_of, snapshot_with_documents

if TYPE_CHECKING:
    from pieces_os_client.models.conversation import Conversation

__all__ = ["HeldInterrupts", "file_names", "markdown", "safe_stem", "write_file"]

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


def _shown_text(text: str) -> str:
    """Message text for a Markdown file: its lines and tabs kept, every other control character visible.

    Each line goes through ``printable`` (the escapes text mode shows, such as ``\\x1b``,
    ``\\x9b`` or ``\\u202e``), so ``cat``, ``less -R`` or a preview shows the same characters
    the server sent and none of them acts; a Windows line end counts as a line end.
    """
    return "\n".join(printable(line, keep="\t") for line in text.replace("\r\n", "\n").split("\n"))


def markdown(conversation: Conversation) -> str:
    """A readable transcript: a title, the conversation's details, then each message.

    Nothing from the server reaches the file as a control character: names, ids and roles go
    through ``printable``, message text through ``_shown_text`` (lines and tabs kept).
    """
    title = " ".join(printable(conversation.name or "(no name)").split())
    messages = messages_of(conversation)
    lines = [
        f"# {title}",
        "",
        f"- id: `{printable(conversation.id)}`",
        f"- type: {printable(enum_text(conversation.type))}",
        f"- created: {iso(conversation.created.value)}",
        f"- updated: {iso(conversation.updated.value)}",
        f"- messages: {len(messages)}",
    ]
    for number, message in enumerate(messages, 1):
        lines.append("")
        if message.reference_only:
            lines += [f"## {number}. message `{printable(message.id)}`", "", f"*({message.note})*"]
            continue
        lines += [f"## {number}. {printable(message.role or '')} · {iso(message.created)}", ""]
        lines.append(_shown_text(message.text.rstrip("\n")) if message.text is not None else f"*({message.note})*")
    return "\n".join(lines) + "\n"


def _render(conversation: Conversation, document: Any, fmt: str) -> str:
    if fmt == "markdown":
        return markdown(conversation)
    return json_text(document, indent=2) + "\n"


# ------------------------------------------------------------------ writing one file in one step
#: Temporary files are hidden, and named so that no export file name (never starting with a
#: dot, see ``safe_stem``) can be one.
TEMP_PREFIX = ".pieces-export-"
TEMP_SUFFIX = ".tmp"
#: errno values with which a file system says it has no hard links (FAT and exFAT: EPERM on
#: Linux, ENOTSUP on macOS); the export then checks for the name and renames instead.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})


class HeldInterrupts:
    """A block in which Ctrl-C (SIGINT) takes effect only where the block says, or at its end.

    Inside, a SIGINT is noted instead of acting. ``check()`` lets a noted one act at once; at
    the end of the block the previous handler is put back and a noted SIGINT that has not
    acted yet does, as the signal would have: Python's default handler raises
    ``KeyboardInterrupt``. Signal handlers can be set only in the main thread, and only there
    does SIGINT interrupt anything; elsewhere the block changes nothing.
    """

    def __init__(self) -> None:
        self._previous: Any = None
        self._noted: List[Optional[FrameType]] = []
        self._active = False

    def _note(self, signum: int, frame: Optional[FrameType]) -> None:
        self._noted.append(frame)

    def __enter__(self) -> HeldInterrupts:
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread() and previous is not None:
            self._previous = previous
            signal.signal(signal.SIGINT, self._note)
            self._active = True
        return self

    def check(self) -> None:
        """Let a SIGINT noted so far act now (with the default handler: raise ``KeyboardInterrupt``)."""
        if self._noted:
            frame = self._noted[0]
            self._noted.clear()
            previous = self._previous
            if callable(previous):
                previous(signal.SIGINT, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.raise_signal(signal.SIGINT)

    def __exit__(self, *exc_info: object) -> None:
        if self._active:
            self._active = False
            signal.signal(signal.SIGINT, self._previous)
            self.check()


def _create_temp(directory: Path) -> Tuple[str, int]:
    """A new, empty temporary file in ``directory`` (permissions as for any new file: the umask's)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):  # 64 random bits: a clash is already most unlikely
        name = str(directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            return name, os.open(name, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name for a temporary file", str(directory))


def _exists(path: Path) -> FileExistsError:
    """The error for a name already taken, naming that file (not the temporary one)."""
    return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))


def _put_in_place(temp: str, path: Path, force: bool) -> None:
    """Give ``temp`` the name ``path``: over an existing file with ``force``, else only if the name is free."""
    if force:
        os.replace(temp, path)
        return
    try:
        if os.name == "nt":
            os.rename(temp, path)  # on Windows a rename never replaces a file
        else:
            os.link(temp, path)  # fails when a file of that name appeared meanwhile
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        if os.name == "nt" or exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here: look, then rename. A file created in the instant between the
        # two would be replaced; nothing else can be.
        if os.path.lexists(path):
            raise _exists(path) from None
        os.rename(temp, path)
        return
    if os.name != "nt":
        os.unlink(temp)


#: How much is written between two looks for a Ctrl-C while a file is written.
_CHUNK = 1 << 20


def write_file(path: Path, data: bytes, force: bool, done: Callable[[], None] = lambda: None) -> None:
    """Write ``data`` to ``path`` in one step: there is no file of that name, or the whole file.

    The data goes to a temporary file in the same directory (``.pieces-export-*.tmp``), is
    flushed to disk, and the file then gets its name: renamed over an existing file with
    ``force``; without it, linked under the name only if no file has it (an existing file is
    never replaced). ``done`` runs once the file has its name, so the caller's record of what
    was written is never behind the disk.

    Ctrl-C is held back for the whole of it, and acts only between two chunks of the data
    (1 MiB each) or after ``done``: so the temporary file is never unknown to the cleanup,
    which on any error or interrupt closes and removes it before the exception goes on, and
    a second Ctrl-C cannot cut the cleanup short either.
    """
    with HeldInterrupts() as held:
        temp: Optional[str] = None
        fd: Optional[int] = None
        try:
            temp, fd = _create_temp(path.parent)
            view = memoryview(data)
            while view:
                held.check()
                view = view[os.write(fd, view[:_CHUNK]):]
            held.check()
            os.fsync(fd)  # the data is on disk before the name is: no empty file after a crash
            os.close(fd)
            fd = None
            _put_in_place(temp, path, force)
            temp = None
            done()
        except BaseException:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            raise


# ------------------------------------------------------------------ the command
class _Failure(NamedTuple):
    id: str
    reason: str


def _finish(args: argparse.Namespace, out: Path, written: List[Dict[str, Any]], failures: List[_Failure],
            interrupted: bool) -> int:
    """The end of every export, complete or not: the JSON report, then a summary on stderr."""
    if args.json:
        print_json({"written": written, "not_written": [f._asdict() for f in failures]})
    where = printable(str(out))
    if not failures and not interrupted:
        print(f"wrote {len(written)} file{'s' if len(written) != 1 else ''} to {where}", file=sys.stderr)
        return EXIT_OK
    total = len(written) + len(failures)
    how = "interrupted" if interrupted else "error"
    if total:
        summary = f"{how}: wrote {len(written)} of {total} conversations to {where}"
    else:  # interrupted before any conversation was known
        summary = f"{how}: nothing was written to {where}"
    if failures:
        summary += "; not written: " + "; ".join(f"{printable(f.id)} ({f.reason})" for f in failures[:5])
        summary += f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    print(f"{PROG}: {summary}", file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    asked = list(dict.fromkeys(args.ids))
    chosen: Optional[List[Conversation]] = None  # known once the conversations are fetched
    written: List[Dict[str, Any]] = []
    failures: List[_Failure] = []
    progress = False
    try:
        client, api = open_api(args)
        with client:
            every, documents = snapshot_with_documents(api, timeout=args.timeout)
        if asked:
            by_id = {c.id: c for c in every}
            chosen = [by_id[i] for i in asked if i in by_id]
            failures += [_Failure(i, "no conversation with this id") for i in asked if i not in by_id]
        else:
            chosen = every
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
        for index, conversation in enumerate(chosen, 1):
            path = out / names[conversation.id]
            if progress:
                sys.stderr.write(f"\rexporting {index}/{len(chosen)}")
                sys.stderr.flush()
            data = _render(conversation, documents[conversation.id], args.format).encode("utf-8")
            try:
                write_file(path, data, args.force, done=partial(written.append, {"id": conversation.id,
                                                                                "path": str(path)}))
            except OSError as exc:
                failures.append(_Failure(conversation.id, describe_error(exc)))
                failures += [_Failure(c.id, "not tried") for c in chosen[index:]]
                break
            if not args.json:
                print(path)
    except KeyboardInterrupt:
        # Ctrl-C ends the export as any other failure part-way does, with the same report.
        # ``written`` is exact (write_file records a file as it gets its name); of the rest,
        # the first was under way and the others were not tried.
        if chosen is None:
            failures = [_Failure(i, "interrupted before the conversations were fetched") for i in asked]
        else:
            settled = {w["id"] for w in written} | {f.id for f in failures}
            pending = [c.id for c in chosen if c.id not in settled]
            failures += [_Failure(i, "not tried" if n else "interrupted") for n, i in enumerate(pending)]
        interrupted = True
    else:
        interrupted = False
    if progress:
        sys.stderr.write("\r\033[K")
    return _finish(args, out, written, failures, interrupted)
