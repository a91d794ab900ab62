"""Command line: ``python -m pieces_os_client.emulator [--host H] [--port N] ...``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import List, Optional


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pieces-os-emulator",
        description="Serve a local emulator of Pieces OS's conversation endpoints (HTTP and WebSocket).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1000, help="port to listen on; 0 picks a free one (default: 1000)")
    parser.add_argument("--assets", metavar="FILE.json", help="a JSON file of extra assets to serve")
    parser.add_argument(
        "--seed-conversations", type=int, default=0, metavar="N", help="create N conversations at start"
    )
    parser.add_argument("--no-demo-assets", action="store_true", help="start without the built-in demo assets")
    parser.add_argument("--version-string", default=None, help="text served by /.well-known/version")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        from . import DEFAULT_VERSION, Emulator
    except ImportError as exc:  # aiohttp missing
        print(exc, file=sys.stderr)
        return 2

    done = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = Emulator(
        args.host,
        args.port,
        args.assets,
        demo_assets=not args.no_demo_assets,
        seed_conversations=args.seed_conversations,
        version=args.version_string or DEFAULT_VERSION,
    )
    try:
        try:
            emulator.start()
        except (OSError, RuntimeError) as exc:
            cause = exc.__cause__ or exc
            print(f"pieces-os-emulator: cannot listen on {args.host}:{args.port}: {cause}", file=sys.stderr)
            return 1
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
