"""The WebSocket protocol layer side by side: this SDK's sans-IO ``ClientProtocol`` against the
websockets library's sans-IO ``ClientProtocol`` (when it can be imported) and a floor.

Two measurements, printed as markdown tables with ratios:

* **import**: each module imported in a fresh interpreter (median of several, contenders
  alternating): wall time of the import, modules it loads, and the rise of RSS (``VmRSS``,
  Linux). ``pieces_os_client._core.websocket`` (ours), ``websocket`` (websocket-client, the
  independent client the tests use as a peer) and ``websockets.client`` (the websockets library).
* **per message**: one server frame fed to the protocol object and its event taken, in a tight
  loop in this process, for a ~100-byte text frame and a 70 KB one (64-bit length). Ours checks
  the UTF-8 of text as it parses; the websockets sans-IO layer leaves that to its I/O layer, so
  it is shown alone and with the ``bytes.decode`` its users then run. The floor reads the header
  with ``struct`` and decodes the payload: what any Python frame reader must at least do.
  Median of the rounds, contenders interleaved round by round.

Run it with an interpreter that has websockets installed (``pip install 'websockets<16'`` into a
throwaway venv) and this checkout on ``PYTHONPATH``; without websockets its rows say so. The
machine the numbers in README.md come from is shared, so absolute values move between runs; the
ratios within one run are steadier.

    PYTHONPATH=. python benchmarks/ws_protocol.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pieces_os_client._core.websocket import ClientProtocol  # noqa: E402

IMPORTS = [
    ("ours: pieces_os_client._core.websocket", "pieces_os_client._core.websocket"),
    ("websocket-client: websocket", "websocket"),
    ("websockets: websockets.client", "websockets.client"),
]

_CHILD = r"""
import json, sys, time
def rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
before, rss0 = len(sys.modules), rss()
t0 = time.perf_counter()
try:
    __import__(sys.argv[1])
except ImportError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
t1 = time.perf_counter()
print(json.dumps({"ms": (t1 - t0) * 1e3, "modules": len(sys.modules) - before, "kib": rss() - rss0}))
"""


def measure_imports(runs: int) -> Dict[str, Dict[str, object]]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    samples: Dict[str, List[Dict[str, float]]] = {name: [] for name, _ in IMPORTS}
    errors: Dict[str, str] = {}
    for _ in range(runs):
        for name, module in IMPORTS:  # alternating, so a change in load touches all alike
            if name in errors:
                continue
            done = subprocess.run([sys.executable, "-c", _CHILD, module], capture_output=True, text=True,
                                  timeout=60, check=False, env=env, cwd=ROOT)
            result = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {
                "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"}
            if "error" in result:
                errors[name] = result["error"]
            else:
                samples[name].append(result)
    out: Dict[str, Dict[str, object]] = {}
    for name, _ in IMPORTS:
        if name in errors:
            out[name] = {"error": errors[name]}
        else:
            rows = samples[name]
            out[name] = {key: statistics.median(r[key] for r in rows) for key in ("ms", "modules", "kib")}
    return out


# ---------------------------------------------------------------------- per message
def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def small_message() -> bytes:
    body = json.dumps({"iterable": [{"conversation": {"id": "8e1c7a2e-5b7d-4c1f-9a56-0f2b3c4d5e6f"}}]})
    return (body + " " * (100 - len(body))).encode()  # ~100 bytes, as a typical change


def big_message() -> bytes:
    return json.dumps({"iterable": [{"conversation": {"id": f"c{i:05}"}} for i in range(2300)]}).encode()


Loop = Callable[[bytes, int], None]


def ours_loop(frame: bytes, count: int) -> None:
    proto = ClientProtocol(max_message_size=None)
    receive, events = proto.receive_data, proto.events_received
    for _ in range(count):
        receive(frame)
        events()


def websockets_loops() -> Tuple[Optional[Loop], Optional[Loop], str]:
    try:
        import websockets
        from websockets.client import ClientProtocol as WsClientProtocol
        from websockets.protocol import State
        from websockets.uri import parse_uri
    except ImportError as exc:
        return None, None, f"not importable here ({exc})"

    def make() -> WsClientProtocol:
        return WsClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)

    def plain(frame: bytes, count: int) -> None:
        proto = make()
        receive, events = proto.receive_data, proto.events_received
        for _ in range(count):
            receive(frame)
            events()

    def decoded(frame: bytes, count: int) -> None:
        proto = make()
        receive, events = proto.receive_data, proto.events_received
        for _ in range(count):
            receive(frame)
            bytes(events()[0].data).decode()

    return plain, decoded, f"websockets {websockets.__version__}"


def floor_loop(frame: bytes, count: int) -> None:
    unpack_h, unpack_q = struct.Struct("!H").unpack_from, struct.Struct("!Q").unpack_from
    for _ in range(count):
        short = frame[1] & 0x7F
        if short < 126:
            start, length = 2, short
        elif short == 126:
            start, length = 4, unpack_h(frame, 2)[0]
        else:
            start, length = 10, unpack_q(frame, 2)[0]
        frame[start:start + length].decode()


def measure_messages(rounds: int, budget: float) -> Tuple[Dict[str, Dict[str, float]], str]:
    ws_plain, ws_decoded, ws_note = websockets_loops()
    loops: Dict[str, Optional[Loop]] = {
        "ours": ours_loop,
        "websockets": ws_plain,
        "websockets + decode": ws_decoded,
        "floor: struct + decode": floor_loop,
    }
    frames = {"~100-byte text frame": server_frame(small_message()), "70 KB text frame": server_frame(big_message())}
    results: Dict[str, Dict[str, float]] = {}
    for label, frame in frames.items():
        counts: Dict[str, int] = {}
        for name, loop in loops.items():  # how many messages fill the budget of one run
            if loop is None:
                continue
            started = time.perf_counter()
            loop(frame, 200)
            per = (time.perf_counter() - started) / 200
            counts[name] = max(50, int(budget / max(per, 1e-9)))
        samples: Dict[str, List[float]] = {name: [] for name in counts}
        for _ in range(rounds):
            for name, count in counts.items():
                loop = loops[name]
                assert loop is not None
                started = time.perf_counter()
                loop(frame, count)
                samples[name].append((time.perf_counter() - started) / count * 1e6)
        results[label] = {name: statistics.median(values) for name, values in samples.items()}
    return results, ws_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs: a smoke test, not a measurement")
    args = parser.parse_args()
    import_runs, rounds, budget = (2, 3, 0.02) if args.quick else (9, 9, 0.25)

    imports = measure_imports(import_runs)
    messages, ws_note = measure_messages(rounds, budget)

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {ws_note}; "
          f"imports: median of {import_runs} fresh processes; messages: median of {rounds} rounds\n")
    print("### Import, in a fresh process\n")
    print("| module | import ms | modules loaded | RSS rise KiB |")
    print("|---|--:|--:|--:|")
    for name, row in imports.items():
        if "error" in row:
            print(f"| {name} | not installed | | |")
        else:
            print(f"| {name} | {row['ms']:.2f} | {row['modules']:.0f} | {row['kib']:.0f} |")
    print("\n### Per message: one server frame in, its event out (µs)\n")
    names = ["ours", "websockets", "websockets + decode", "floor: struct + decode"]
    print("| frame | " + " | ".join(names) + " | ours / websockets + decode | ours / floor |")
    print("|---|" + "--:|" * (len(names) + 2))
    for label, row in messages.items():
        cells = [f"{row[n]:.2f}" if n in row else "n/a" for n in names]
        vs_ws = f"{row['ours'] / row['websockets + decode']:.2f}x" if "websockets + decode" in row else "n/a"
        vs_floor = f"{row['ours'] / row['floor: struct + decode']:.2f}x"
        print(f"| {label} | " + " | ".join(cells) + f" | {vs_ws} | {vs_floor} |")


if __name__ == "__main__":
    main()
