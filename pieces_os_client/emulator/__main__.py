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
    return parser


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
