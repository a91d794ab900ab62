"""The ``pieces-os-client`` command line (also ``python -m pieces_os_client``).

Subcommands: ``doctor``, ``conversations list|show|export|watch|create|delete`` and
``emulator``. See docs/cli.md.

Start-up is kept cheap: this module imports only the standard library pieces argparse needs.
``--help``, ``--version`` and argument errors load no models, no urllib3 and no pydantic; each
subcommand's module is imported only when that subcommand runs, and imports what it uses.

Exit codes: 0 success, 1 failure (the cause is printed on stderr in one line), 2 bad usage,
130 interrupted (except ``conversations watch``, for which Ctrl-C is the normal way out: 0).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, List, Optional, Sequence, cast
from urllib.parse import urlsplit

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "PROG", "main"]

PROG = "pieces-os-client"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: how long `conversations export` may spend fetching, per attempt, unless --timeout says otherwise
EXPORT_TIMEOUT = 300.0

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command was used wrongly in a way argparse cannot see (exit status 2)."""


def _host(text: str) -> str:
    from pieces_os_client._core.text import shown_value
    from pieces_os_client._core.urls import mask_userinfo, url_problem

    problem = url_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{shown_value(mask_userinfo(text))} {problem}")
    return text.rstrip("/")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 and at most 600 seconds")
    return value


def _ports(text: str) -> List[int]:
    """``39300-39333,1000`` -> the ports, in order."""
    ports: List[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if not 0 < first <= last < 65536 or last - first > 4096:
                raise ValueError(part)
            ports.extend(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of ports or ranges, such as 39300-39333,1000"
        ) from None
    if not ports:
        raise argparse.ArgumentTypeError("no ports given")
    return ports


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _common(parser: argparse.ArgumentParser, json_help: Optional[str] = "print JSON instead of text") -> None:
    parser.add_argument(
        "--host", type=_host, metavar="URL",
        help="base URL of Pieces OS, such as http://localhost:39300 (default: find it, as Configuration() does)",
    )
    if json_help:
        parser.add_argument("--json", action="store_true", help=json_help)


def _sub(
    group: Any, name: str, handler: str, help_text: str, example: str, description: Optional[str] = None
) -> argparse.ArgumentParser:
    parser = cast(argparse.ArgumentParser, group.add_parser(
        name, help=help_text, description=description or help_text,
        epilog="example:\n  " + example.replace("\n", "\n  "), formatter_class=_Formatter,
    ))
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (cheap: builds argparse objects only)."""
    from pieces_os_client._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to Pieces OS from a shell: diagnose the connection, list, show, export, "
        "watch, create and delete conversations, or run the local emulator.",
        epilog="examples:\n"
        f"  {PROG} doctor\n"
        f"  {PROG} conversations list --json\n"
        f"  {PROG} conversations export --format markdown --out backup/\n\n"
        "exit status: 0 ok, 1 failure (cause on stderr), 2 bad usage, 130 interrupted.\n"
        "Data goes to stdout, messages to stderr. See docs/cli.md.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    doctor = _sub(
        commands, "doctor", "pieces_os_client.cli.doctor:run",
        "explain where Pieces OS is, whether it answers, and what is wrong if it does not",
        f"{PROG} doctor --json > doctor.json     # attach this to a bug report",
        description="Check, step by step, how the client finds Pieces OS and whether each part of the API "
        "answers. Writes nothing to the server. Exit status 0 when all is well, 1 when something is wrong "
        "(the report says what and what to do).",
    )
    _common(doctor, "print the report as one JSON document")
    doctor.add_argument(
        "--timeout", type=_seconds, default=2.0, metavar="SECONDS",
        help="the longest each probe may take, whatever the server does (default: 2)",
    )
    doctor.add_argument(
        "--discovery-timeout", type=_seconds, default=5.0, metavar="SECONDS",
        help="the longest the search for Pieces OS may take as a whole (default: 5, as Configuration's "
        "discovery_timeout)",
    )
    doctor.add_argument(
        "--ports", type=_ports, default=None, metavar="LIST",
        help="ports to scan instead of 39300-39333,1000,5323 (a list of ports and ranges)",
    )

    conv = _sub(
        commands, "conversations", "", "list, show, export, watch, create and delete conversations",
        f"{PROG} conversations list",
    )
    conv_commands = conv.add_subparsers(dest="action", metavar="ACTION")
    conv_commands.required = True

    listing = _sub(
        conv_commands, "list", "pieces_os_client.cli.conversations:list_",
        "list conversations, most recently updated first",
        f"{PROG} conversations list --json | python -m json.tool",
        description="List conversations: id, name, type, created, updated and message count, most recently "
        "updated first. Names are cut to the terminal width (or COLUMNS); --json never cuts anything.",
    )
    _common(listing)

    show = _sub(
        conv_commands, "show", "pieces_os_client.cli.conversations:show",
        "show one conversation and its messages",
        f"{PROG} conversations show 5f1c2d3e-0000-4000-8000-000000000000",
    )
    show.add_argument("id", metavar="ID", help="the conversation's id")
    _common(show, "print the conversation as Pieces OS sends it (JSON)")

    export = _sub(
        conv_commands, "export", "pieces_os_client.cli.export:run",
        "write conversations to files, one file each",
        f"{PROG} conversations export --format markdown --out backup/\n"
        f"{PROG} conversations export ID1 ID2 --format json --out backup/ --force",
        description="Write one file per conversation (every conversation when no ID is given) into DIR. "
        "File names are made from the conversation's name and a short part of its id, safe on every "
        "system. Existing files are left alone unless --force is given.",
    )
    export.add_argument("ids", nargs="*", metavar="ID", help="conversations to export (default: all)")
    export.add_argument("--format", choices=("json", "markdown"), default="json",
                        help="json: the conversation as Pieces OS sends it; markdown: a readable transcript "
                        "(default: json)")
    export.add_argument("--out", required=True, metavar="DIR", help="directory to write to (created if missing)")
    export.add_argument("--force", action="store_true", help="overwrite files that already exist")
    export.add_argument(
        "--timeout", type=_seconds, default=EXPORT_TIMEOUT, metavar="SECONDS",
        help=f"the longest fetching the conversations may take, body included, whatever the server does "
        f"(each attempt; a GET is tried up to 1 + max_retries times; default: {EXPORT_TIMEOUT:g})",
    )
    _common(export, "print what was written as JSON")

    watch = _sub(
        conv_commands, "watch", "pieces_os_client.cli.conversations:watch",
        "print each change to the conversations as it happens, until Ctrl-C",
        f"{PROG} conversations watch --json | while read -r line; do echo \"$line\"; done",
        description="Follow the identifiers stream and print one line per change: the first snapshot, "
        "each conversation created, updated or deleted, and each resync after a reconnect. Ctrl-C "
        "stops it (exit status 0).",
    )
    _common(watch, "print one JSON object per line")

    create = _sub(
        conv_commands, "create", "pieces_os_client.cli.conversations:create",
        "create a conversation and print its id",
        f"{PROG} conversations create --name \"Release checklist\"\n"
        f"{PROG} conversations create --from-asset 2254f2c8-5797-40e8-ac56-41166dc0e159",
    )
    create.add_argument("--name", help="the conversation's name")
    create.add_argument(
        "--from-asset", metavar="ASSET_ID",
        help="ground the conversation on this asset (Pieces OS names it and writes its first message)",
    )
    _common(create, "print the new conversation as JSON")

    delete = _sub(
        conv_commands, "delete", "pieces_os_client.cli.conversations:delete",
        "delete conversations (asks first on a terminal)",
        f"{PROG} conversations delete ID1 ID2 --yes",
        description="Delete conversations by id. On a terminal it asks first; elsewhere (a script, a pipe) "
        "it needs --yes, and refuses with exit status 2 without it.",
    )
    delete.add_argument("ids", nargs="+", metavar="ID", help="the conversations to delete")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _common(delete, "print what was deleted as JSON")

    _sub(
        commands, "emulator", "", "run the local Pieces OS emulator (as pieces-os-emulator)",
        f"{PROG} emulator --port 39300 --seed-conversations 3",
        description="Run the bundled emulator in the foreground; every option is pieces-os-emulator's "
        f"(see `{PROG} emulator --help`).",
    )
    return parser


def _load(target: str) -> Handler:
    module_name, _, attribute = target.partition(":")
    return cast(Handler, getattr(importlib.import_module(module_name), attribute))


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at devnull so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from pieces_os_client.emulator.__main__ import main as emulator_main

        return emulator_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        try:
            code = _load(args.handler)(args)
            sys.stdout.flush()
            return code
        except UsageError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:  # one line, never a traceback
            from pieces_os_client.cli._output import describe_error

            if isinstance(exc, BrokenPipeError):
                raise
            print(f"{PROG}: error: {describe_error(exc)}", file=sys.stderr)
            return EXIT_FAILURE
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
