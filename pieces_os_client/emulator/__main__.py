"""Command line: ``python -m pieces_os_client.emulator [--host H] [--port N] ...``.

With no ``--port`` it listens where Pieces OS 11 and later does: on the first free port in
39300-39333, so the SDK's discovery finds it with no configuration.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

if TYPE_CHECKING:
    from . import Emulator

#: The ports Pieces OS 11+ tries, in order; the emulator takes the first free one by default.
DEFAULT_PORTS = range(39300, 39334)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pieces-os-emulator",
        description="Serve a local emulator of Pieces OS's conversation endpoints (HTTP and WebSocket).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on; 0 picks any free one (default: the first free port in 39300-39333, as Pieces OS)",
    )
    parser.add_argument("--assets", metavar="FILE.json", help="a JSON file of extra assets to serve")
    parser.add_argument(
        "--seed-conversations", type=int, default=0, metavar="N", help="create N conversations at start"
    )
    parser.add_argument("--no-demo-assets", action="store_true", help="start without the built-in demo assets")
    parser.add_argument("--version-string", default=None, help="text served by /.well-known/version")
    limits = parser.add_argument_group("limits on what clients may send")
    limits.add_argument(
        "--max-request-size", type=_size, default=..., metavar="BYTES",
        help="largest request body accepted, larger ones get 413; 'none' lifts it (default: 1 MiB)",
    )
    limits.add_argument(
        "--max-ws-message-size", type=_size, default=..., metavar="BYTES",
        help="largest WebSocket message a client may send (default: 1 MiB)",
    )
    limits.add_argument(
        "--idle-timeout", type=_seconds, default=..., metavar="SECONDS",
        help="close connections idle for this long (default: 75)",
    )
    return parser


def _size(text: str) -> Optional[int]:
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes (or 'none')") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive, finite number of seconds")
    return value


def start_on_first_free(make: Callable[[int], Emulator], ports: Sequence[int]) -> Emulator:
    """Start ``make(port)`` on the first port of ``ports`` that is free; raise the last error if none is."""
    last: Optional[BaseException] = None
    for port in ports:
        emulator = make(port)
        try:
            return emulator.start()
        except (OSError, RuntimeError) as exc:
            last = exc
    assert last is not None, "no ports to try"
    raise last


def main(argv: Optional[List[str]] = None) -> int:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        from . import DEFAULT_VERSION, Emulator
    except ImportError as exc:  # aiohttp missing: one line, no traceback
        print(f"pieces-os-emulator: {exc}", file=sys.stderr)
        return 2

    options: dict[str, Any] = {
        "demo_assets": not args.no_demo_assets,
        "seed_conversations": args.seed_conversations,
        "version": args.version_string or DEFAULT_VERSION,
    }
    for name in ("max_request_size", "max_ws_message_size", "idle_timeout"):
        if getattr(args, name) is not ...:
            options[name] = getattr(args, name)
    if options.get("max_ws_message_size", 1) is None:
        print("pieces-os-emulator: --max-ws-message-size needs a number of bytes", file=sys.stderr)
        return 2
    ports = DEFAULT_PORTS if args.port is None else [args.port]
    where = "any port in 39300-39333" if args.port is None else f"port {args.port}"
    done = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        done.set()

    try:
        emulator = start_on_first_free(lambda port: Emulator(args.host, port, args.assets, **options), ports)
    except (OSError, RuntimeError) as exc:
        cause = exc.__cause__ or exc
        print(f"pieces-os-emulator: cannot listen on {args.host}, {where}: {cause}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"Pieces OS emulator listening on {emulator.url} (Ctrl-C to stop)", flush=True)
        while not done.wait(0.1):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
