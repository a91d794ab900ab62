"""Bounded soak of the identifiers stream: several streams, a few thousand changes.

    python benchmarks/stream_soak.py                    # 4 streams, 3000 changes
    python benchmarks/stream_soak.py --streams 8 --changes 5000 --json

An in-process emulator on 127.0.0.1 serves both HTTP and the WebSocket. Writer threads make
the changes over plain HTTP (urllib3): creates, and deletes of conversations they created.
Every stream runs in the background with a callback that notes when each change reached it,
and feeds a ConversationIdsMirror.

Reported:
* messages/second: change messages delivered to consumers (all streams together), counted
  from the first push to the last delivery;
* delivery latency: from the moment the emulator queued a message for its WebSockets (its
  broadcast call, timed in-process with the same monotonic clock) to the consumer callback;
* lost / duplicated: pushes a stream never delivered, or delivered more than once — both
  must be zero; and whether each mirror ended equal to GET /conversations/identifiers.

The run stops by itself: writers stop early if the time budget (``--budget``, default 45 s)
runs out, and waiting for delivery is bounded. Exit status 1 when anything was lost,
duplicated or left a mirror wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import urllib3

import pieces_os_client
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.stream import ConversationIdsMirror, IdentifiersStream, StreamEvent

RESULTS = Path(__file__).resolve().parent / "results"
Key = Tuple[str, bool]  # (conversation id, deleted?)


class Consumer:
    """One background stream, recording when each change reached its callback."""

    def __init__(self, client: ApiClient) -> None:
        self.mirror = ConversationIdsMirror()
        self.delivered: Dict[Key, List[float]] = {}
        self.count = 0
        self.errors: List[Exception] = []
        self.stream = IdentifiersStream(client, on_event=self._on_event, on_error=self.errors.append)

    def _on_event(self, event: StreamEvent) -> None:
        now = time.monotonic()
        self.mirror.apply(event)
        if event.snapshot:
            return
        for ident in event.message.iterable:
            if ident.conversation is not None:
                self.delivered.setdefault((ident.conversation.id, bool(ident.deleted)), []).append(now)
                self.count += 1


def writer(base: str, operations: int, deadline: float, done: List[int]) -> None:
    """Create conversations and delete every other one; ``operations`` changes in all."""
    http = urllib3.PoolManager(maxsize=1, retries=False)
    mine: List[str] = []
    made = 0
    while made < operations and time.monotonic() < deadline:
        if made % 3 == 2 and mine:
            reply = http.request("POST", f"{base}/conversations/{mine.pop(0)}/delete")
            assert reply.status == 204, reply.status
        else:
            reply = http.request("POST", base + "/conversations/create", json={"type": "COPILOT"})
            assert reply.status == 200, reply.status
            mine.append(reply.json()["id"])
        made += 1
    done.append(made)
    http.clear()


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run(streams: int, changes: int, writers: int, budget: float) -> Dict[str, Any]:
    started = time.monotonic()
    deadline = started + budget
    with Emulator(seed_conversations=20, ws_queue_size=max(1024, changes * 2), heartbeat=None) as emu:
        pushes: Dict[Key, float] = {}
        original = emu._broadcast  # timing hook: the moment the emulator queues a message

        def timed_broadcast(text: str) -> None:
            now = time.monotonic()
            for ident in json.loads(text)["iterable"]:
                pushes[(ident["conversation"]["id"], bool(ident.get("deleted")))] = now
            original(text)

        emu._broadcast = timed_broadcast  # type: ignore[method-assign]

        config = Configuration(host=emu.url)
        with ApiClient(config) as client:
            consumers = [Consumer(client) for _ in range(streams)]
            for consumer in consumers:
                if not consumer.mirror.wait_ready(5.0):
                    raise SystemExit("a stream never received its opening snapshot")

            done: List[int] = []
            share = [changes // writers + (1 if i < changes % writers else 0) for i in range(writers)]
            threads = [
                threading.Thread(target=writer, args=(emu.url, n, deadline, done), daemon=True) for n in share
            ]
            load_started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + 5)
            load_seconds = time.monotonic() - load_started

            expected = len(pushes)
            settle = min(deadline + 10, time.monotonic() + 10)  # bounded wait for the tail
            while time.monotonic() < settle and any(len(c.delivered) < expected for c in consumers):
                time.sleep(0.01)

            truth = frozenset(
                item["id"]
                for item in urllib3.request("GET", emu.url + "/conversations/identifiers").json()["iterable"]
            )
            close_times = []
            for consumer in consumers:
                t0 = time.monotonic()
                consumer.stream.close()
                close_times.append(time.monotonic() - t0)

    latencies: List[float] = []
    lost = duplicated = 0
    last_delivery = 0.0
    for consumer in consumers:
        for key, pushed_at in pushes.items():
            arrivals = consumer.delivered.get(key, [])
            if not arrivals:
                lost += 1
                continue
            duplicated += len(arrivals) - 1
            latencies.append(arrivals[0] - pushed_at)
            last_delivery = max(last_delivery, arrivals[-1])
        duplicated += sum(len(v) for k, v in consumer.delivered.items() if k not in pushes)
    first_push = min(pushes.values(), default=0.0)
    delivered = sum(c.count for c in consumers)
    span = max(1e-9, last_delivery - first_push)
    return {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pieces_os_client": pieces_os_client.__version__,
        "streams": streams,
        "writers": writers,
        "changes_requested": changes,
        "changes_made": sum(done),
        "pushes": len(pushes),
        "http_changes_per_second": sum(done) / load_seconds if load_seconds else 0.0,
        "messages_delivered": delivered,
        "messages_per_second": delivered / span,
        "latency_ms_median": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "latency_ms_p99": percentile(latencies, 0.99) * 1000,
        "latency_ms_max": max(latencies, default=float("nan")) * 1000,
        "lost": lost,
        "duplicated": duplicated,
        "mirrors_correct": sum(c.mirror.snapshot() == truth for c in consumers),
        "reconnects": sum(c.stream.reconnects for c in consumers),
        "stream_errors": sum(len(c.errors) for c in consumers),
        "close_ms_max": max(close_times) * 1000,
        "seconds_total": time.monotonic() - started,
    }


def table(result: Dict[str, Any]) -> str:
    rows = [
        ("streams x writers", f"{result['streams']} x {result['writers']}"),
        ("changes made over HTTP", f"{result['changes_made']} ({result['http_changes_per_second']:.0f}/s)"),
        ("messages delivered", f"{result['messages_delivered']}"),
        ("messages / second", f"{result['messages_per_second']:.0f}"),
        ("latency median", f"{result['latency_ms_median']:.2f} ms"),
        ("latency p99", f"{result['latency_ms_p99']:.2f} ms"),
        ("latency max", f"{result['latency_ms_max']:.2f} ms"),
        ("lost / duplicated", f"{result['lost']} / {result['duplicated']}"),
        ("mirrors equal to server", f"{result['mirrors_correct']} of {result['streams']}"),
        ("reconnects / stream errors", f"{result['reconnects']} / {result['stream_errors']}"),
        ("slowest close()", f"{result['close_ms_max']:.1f} ms"),
        ("wall time", f"{result['seconds_total']:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'measure':<{width}}  value", f"{'-' * width}  {'-' * 24}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=4, help="concurrent identifier streams (default 4)")
    parser.add_argument("--changes", type=int, default=3000, help="creates + deletes to make (default 3000)")
    parser.add_argument("--writers", type=int, default=4, help="HTTP writer threads (default 4)")
    parser.add_argument("--budget", type=float, default=45.0, help="seconds before writers stop (default 45)")
    parser.add_argument("--json", nargs="?", const=str(RESULTS / "stream_soak.json"), default=None,
                        metavar="PATH", help="also write the result as JSON (default path: results/stream_soak.json)")
    args = parser.parse_args(argv)
    result = run(args.streams, args.changes, args.writers, args.budget)
    print(table(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {path.name}")
    ok = (
        result["lost"] == 0
        and result["duplicated"] == 0
        and result["mirrors_correct"] == result["streams"]
        and result["changes_made"] == result["changes_requested"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
