"""Bounded soak of the identifiers stream: several streams, a few thousand changes.

    python benchmarks/stream_soak.py                    # 4 then 8 streams, 3000 changes each
    python benchmarks/stream_soak.py --streams 8 --changes 5000 --json
    python benchmarks/stream_soak.py --layout one-process   # everything in this process
    python benchmarks/stream_soak.py --asyncio          # also the asyncio client, all streams in one loop

The emulator on 127.0.0.1 serves both HTTP and the WebSocket. Writer threads make the
changes over plain HTTP (urllib3): creates, and deletes of conversations they created.
Every stream runs in the background with a callback that notes when each change reached it,
and feeds a ConversationIdsMirror.

Layouts (``--layout``):
* ``split`` (default): the emulator, the writers and the consumers run in three processes,
  so the streams' reader threads only share the GIL with each other, as in an application
  that watches a real Pieces OS. Times are compared across processes on the system-wide
  monotonic clock (``time.monotonic``, CLOCK_MONOTONIC on Linux).
* ``one-process``: emulator, writers and streams share one interpreter: every delivery then
  also waits for the GIL behind the server and the writers (see the README for the numbers).

Reported, per stream count:
* messages/second: change messages delivered to consumers (all streams together), counted
  from the first push to the last delivery;
* delivery latency: from the moment the emulator queued a message for its WebSockets (its
  broadcast call, timed with the monotonic clock) to the consumer callback, p50 / p99 / max;
* lost / duplicated: pushes a stream never delivered, or delivered more than once — both
  must be zero; and whether each mirror ended equal to GET /conversations/identifiers.

The run stops by itself: writers stop early if the time budget (``--budget``, default 45 s
per stream count) runs out, waiting for delivery is bounded, and the helper processes end
when their stdin closes. Exit status 1 when anything was lost, duplicated or left a mirror
wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import urllib3

import pieces_os_client
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.stream import ConversationIdsMirror, IdentifiersStream, StreamEvent

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
#: the goal of issue 9: p99 delivery latency at 4 streams on loopback
P99_GOAL_MS = 10.0
#: the goal of issue 12: p99 delivery latency at 8 asyncio streams in one event loop
ASYNC_P99_GOAL_MS = 20.0
CONSUMERS = {"sdk": "pieces_os_client", "async": "pieces_os_client.aio (one loop)", "raw": "raw websocket-client",
             "rawasync": "raw aiohttp (one loop)"}
SUFFIX = {"sdk": "", "async": " (asyncio)", "raw": " (floor)", "rawasync": " (asyncio floor)"}
Key = str  # "+id" (created) or "-id" (deleted): a str, which the garbage collector does not track


def key_of(conversation_id: str, deleted: Any) -> Key:
    return ("-" if deleted else "+") + conversation_id


class Arrivals:
    """When each change first reached one consumer, and how many arrived again.

    Recording allocates nothing the garbage collector tracks (a str key, a float), so the
    instrument adds no long-lived objects that would bring on full collections mid-run: with
    a list per change (as before) a run added some 50,000 tracked objects and set off a full
    collection inside the measured window (see "full GC pauses" in the table).
    """

    def __init__(self) -> None:
        self.first: Dict[Key, float] = {}
        self.again: Dict[Key, int] = {}
        self.count = 0

    def note(self, key: Key, now: float) -> None:
        self.count += 1
        if key in self.first:
            self.again[key] = self.again.get(key, 0) + 1
        else:
            self.first[key] = now

    def __len__(self) -> int:
        return len(self.first)


class _Recording:
    """What every SDK consumer keeps: a mirror fed by the stream's events, and when each change arrived."""

    stream: Any

    def __init__(self) -> None:
        self.mirror = ConversationIdsMirror()
        self.delivered = Arrivals()
        self.errors: List[Exception] = []

    @property
    def count(self) -> int:
        return self.delivered.count

    def _on_event(self, event: StreamEvent) -> None:
        now = time.monotonic()
        self.mirror.apply(event)
        if event.snapshot:
            return
        for ident in event.message.iterable:
            if ident.conversation is not None:
                self.delivered.note(key_of(ident.conversation.id, ident.deleted), now)

    def wait_ready(self, timeout: float) -> bool:
        return self.mirror.wait_ready(timeout)

    def snapshot(self) -> frozenset[str]:
        return frozenset(self.mirror.snapshot())

    @property
    def reconnects(self) -> int:
        return int(self.stream.reconnects)


class Consumer(_Recording):
    """One background stream (the sync client), recording when each change reached its callback."""

    def __init__(self, client: ApiClient) -> None:
        super().__init__()
        self.stream = IdentifiersStream(client, on_event=self._on_event, on_error=self.errors.append)

    def close(self) -> None:
        self.stream.close()


class AsyncConsumers:
    """``count`` streams read by ONE event loop (in a thread of its own): the asyncio client's, or
    (``raw=True``) bare aiohttp WebSockets, the one-loop floor.

    Each stream is read by a task of that loop, timing each change and feeding a mirror, so every
    delivery waits for the loop's other streams: the case of issue 12 (the sync client's 8
    streams, each with its reader thread, reached a p99 of 160 ms before).
    """

    def __init__(self, url: str, count: int, raw: bool = False) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="soak-loop", daemon=True)
        self.thread.start()

        async def start() -> Any:
            if raw:
                import aiohttp

                return aiohttp.ClientSession(), None
            from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi

            client = AsyncApiClient(Configuration(host=url))
            return client, AsyncConversationsApi(client)

        self.client, api = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        self.members: List[Any] = [RawAsyncConsumer(self, url) if raw else AsyncConsumer(self, api)
                                   for _ in range(count)]

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        for member in self.members:
            member.close()
        self.call(self.client.aclose() if hasattr(self.client, "aclose") else self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class AsyncConsumer(_Recording):
    """One stream of an :class:`AsyncConsumers` group; the same interface as :class:`Consumer`."""

    def __init__(self, group: AsyncConsumers, api: Any) -> None:
        super().__init__()
        self.group = group
        self.stream = group.call(self._open(api))
        self.task = group.call(self._spawn())

    async def _open(self, api: Any) -> Any:
        return await api.conversations_stream_identifiers()

    async def _spawn(self) -> Any:
        import asyncio

        return asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.stream.events():
                self._on_event(event)
        except Exception as exc:  # a real failure: counted, shown in the table
            self.errors.append(exc)

    def close(self) -> None:
        async def stop() -> None:
            await self.stream.aclose()
            await self.task  # the loop ends once the stream is closed

        self.group.call(stop())


class _RawRecording:
    """What both floors keep: the ids, and when each change arrived; ``json.loads``, no models."""

    reconnects = 0

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.delivered = Arrivals()
        self.errors: List[Exception] = []
        self.ready = threading.Event()

    @property
    def count(self) -> int:
        return self.delivered.count

    def _on_text(self, text: Any, now: float) -> None:
        items = json.loads(text)["iterable"]
        if not self.ready.is_set():  # the opening snapshot: every id
            self.ids = {item["conversation"]["id"] for item in items}
            self.ready.set()
            return
        for item in items:
            conversation_id, deleted = item["conversation"]["id"], item.get("deleted")
            (self.ids.discard if deleted else self.ids.add)(conversation_id)
            self.delivered.note(key_of(conversation_id, deleted), now)

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def snapshot(self) -> frozenset[str]:
        return frozenset(self.ids)


class RawConsumer(_RawRecording):
    """The floor: a bare websocket-client connection read by a thread, ``json.loads``, no SDK.

    Like the SDK, it leaves UTF-8 checking to the decoder (websocket-client's own check is pure Python).
    """

    def __init__(self, url: str) -> None:
        import websocket

        super().__init__()
        self.ws = websocket.create_connection(url.replace("http://", "ws://", 1) + "/conversations/stream/identifiers",
                                              timeout=30, skip_utf8_validation=True)
        self.ws.settimeout(None)
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while not self._stop:
                text = self.ws.recv()
                self._on_text(text, time.monotonic())
        except Exception as exc:  # the socket closed under us at the end, or a real failure
            if not self._stop:
                self.errors.append(exc)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(Exception):
            self.ws.sock.shutdown(2)
        self.ws.close()
        self.thread.join(5)


class RawAsyncConsumer(_RawRecording):
    """The one-loop floor: a bare aiohttp WebSocket read by a task of an :class:`AsyncConsumers` loop."""

    def __init__(self, group: AsyncConsumers, url: str) -> None:
        super().__init__()
        self.group = group
        self.ws = group.call(group.client.ws_connect(url + "/conversations/stream/identifiers", autoping=True))
        self.task = group.call(self._spawn())

    async def _spawn(self) -> Any:
        import asyncio

        return asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self._on_text(message.data, time.monotonic())
        except Exception as exc:  # a real failure: counted, shown in the table
            self.errors.append(exc)

    def close(self) -> None:
        async def stop() -> None:
            await self.ws.close()
            await self.task

        self.group.call(stop())


def writer(base: str, operations: int, deadline: float, done: List[int], interval: float = 0.0) -> None:
    """Create conversations and delete every other one; ``operations`` changes in all.

    With ``interval``, one change every ``interval`` seconds (paced); else as fast as possible.
    """
    http = urllib3.PoolManager(maxsize=1, retries=False)
    mine: List[str] = []
    made = 0
    next_at = time.monotonic()
    while made < operations and time.monotonic() < deadline:
        if interval:
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
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


def _start_writers(
    base: str, changes: int, writers: int, deadline: float, rate: float
) -> Tuple[List[threading.Thread], List[int]]:
    done: List[int] = []
    share = [changes // writers + (1 if i < changes % writers else 0) for i in range(writers)]
    interval = writers / rate if rate > 0 else 0.0
    threads = [threading.Thread(target=writer, args=(base, n, deadline, done, interval), daemon=True)
               for n in share]
    for thread in threads:
        thread.start()
    return threads, done


class FullCollections:
    """The full (generation 2) garbage collections in this process while it is installed, and how
    long each held the GIL: every stream waits through them, whatever reads it."""

    def __init__(self) -> None:
        self.pauses: List[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: Dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)


def _timed(emu: Emulator, pushes: Dict[Key, float]) -> None:
    """Note when the emulator queues each change for its WebSockets (its broadcast call)."""
    fanout = emu._websockets  # the emulator's WebSocket fan-out, which every change goes through
    original = fanout.broadcast

    def timed_broadcast(text: str) -> None:
        now = time.monotonic()
        for ident in json.loads(text)["iterable"]:
            pushes[key_of(ident["conversation"]["id"], ident.get("deleted"))] = now
        original(text)

    fanout.broadcast = timed_broadcast  # type: ignore[method-assign]


# --------------------------------------------------------------- helper processes (split layout)
def serve(changes: int) -> int:
    """Helper process: the emulator. Prints its URL; on stdin EOF prints the push times and exits."""
    pushes: Dict[Key, float] = {}
    with Emulator(seed_conversations=20, ws_queue_size=max(1024, changes * 2), heartbeat=None) as emu:
        _timed(emu, pushes)
        print(json.dumps({"url": emu.url}), flush=True)
        sys.stdin.read()
        items = [[key, at] for key, at in list(pushes.items())]
    print(json.dumps({"pushes": items}), flush=True)
    return 0


def write(base: str, changes: int, writers: int, budget: float, rate: float) -> int:
    """Helper process: the writers. Starts on the first stdin line, prints how many it made."""
    sys.stdin.readline()
    started = time.monotonic()
    threads, done = _start_writers(base, changes, writers, started + budget, rate)
    for thread in threads:
        thread.join(budget + 5)
    print(json.dumps({"made": sum(done), "seconds": time.monotonic() - started}), flush=True)
    return 0


@contextlib.contextmanager
def _helper(*args: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        yield proc
    finally:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _line(proc: subprocess.Popen[str], timeout: float) -> Dict[str, Any]:
    """The next JSON line a helper prints, within ``timeout`` seconds."""
    assert proc.stdout is not None
    box: List[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        raise SystemExit(f"a helper process gave no answer within {timeout:.0f} s")
    return dict(json.loads(box[0]))


def run(
    streams: int, changes: int, writers: int, budget: float, layout: str = "split", rate: float = 0.0,
    consumer: str = "sdk",
) -> Dict[str, Any]:
    started = time.monotonic()
    deadline = started + budget
    pushes: Dict[Key, float] = {}
    with contextlib.ExitStack() as stack:
        if layout == "split":
            server = stack.enter_context(_helper("--serve", "--changes", str(changes)))
            url = str(_line(server, 60)["url"])
        else:
            emu = stack.enter_context(
                Emulator(seed_conversations=20, ws_queue_size=max(1024, changes * 2), heartbeat=None)
            )
            _timed(emu, pushes)
            url = emu.url

        config = Configuration(host=url)
        with ApiClient(config) as client:
            group = AsyncConsumers(url, streams, raw=consumer == "rawasync") if "async" in consumer else None
            consumers: List[Any] = (
                group.members if group is not None
                else [Consumer(client) if consumer == "sdk" else RawConsumer(url) for _ in range(streams)]
            )
            for each in consumers:
                if not each.wait_ready(5.0):
                    raise SystemExit("a stream never received its opening snapshot")

            collections = stack.enter_context(FullCollections())  # from the first change to the close
            load_started = time.monotonic()
            if layout == "split":
                writer_proc = stack.enter_context(
                    _helper("--write", url, "--changes", str(changes), "--writers", str(writers),
                            "--budget", str(max(1.0, deadline - time.monotonic())), "--rate", str(rate))
                )
                assert writer_proc.stdin is not None
                writer_proc.stdin.write("go\n")
                writer_proc.stdin.flush()
                report = _line(writer_proc, budget + 15)
                done = [int(report["made"])]
            else:
                threads, done = _start_writers(url, changes, writers, deadline, rate)
                for thread in threads:
                    thread.join(max(0.0, deadline - time.monotonic()) + 5)
            load_seconds = time.monotonic() - load_started

            # Every change makes exactly one push; wait (bounded) for all of them to arrive.
            expected = sum(done)
            settle = min(deadline + 10, time.monotonic() + 10)
            while time.monotonic() < settle and any(len(c.delivered) < expected for c in consumers):
                time.sleep(0.01)

            truth = frozenset(
                item["id"]
                for item in urllib3.request("GET", url + "/conversations/identifiers").json()["iterable"]
            )
            close_times = []
            for each in consumers:
                t0 = time.monotonic()
                each.close()
                close_times.append(time.monotonic() - t0)
            if group is not None:
                group.close()
        if layout == "split":
            assert server.stdin is not None
            server.stdin.close()
            for key, at in _line(server, 30)["pushes"]:
                pushes[str(key)] = float(at)

    latencies: List[float] = []
    lost = duplicated = 0
    last_delivery = 0.0
    for each in consumers:
        arrivals: Arrivals = each.delivered
        for key, pushed_at in pushes.items():
            first = arrivals.first.get(key)
            if first is None:
                lost += 1
                continue
            duplicated += arrivals.again.get(key, 0)
            latencies.append(first - pushed_at)
            last_delivery = max(last_delivery, first)
        duplicated += sum(1 + arrivals.again.get(k, 0) for k in arrivals.first if k not in pushes)
    first_push = min(pushes.values(), default=0.0)
    delivered = sum(c.count for c in consumers)
    span = max(1e-9, last_delivery - first_push)
    return {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pieces_os_client": pieces_os_client.__version__,
        "layout": layout,
        "consumer": consumer,
        "rate": rate,
        "streams": streams,
        "writers": writers,
        "changes_requested": changes,
        "changes_made": sum(done),
        "pushes": len(pushes),
        "http_changes_per_second": sum(done) / load_seconds if load_seconds else 0.0,
        "messages_delivered": delivered,
        "messages_per_second": delivered / span,
        "latency_ms_median": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "latency_ms_p90": percentile(latencies, 0.90) * 1000,
        "latency_ms_p99": percentile(latencies, 0.99) * 1000,
        "latency_ms_max": max(latencies, default=float("nan")) * 1000,
        "lost": lost,
        "duplicated": duplicated,
        "mirrors_correct": sum(c.snapshot() == truth for c in consumers),
        "reconnects": sum(c.reconnects for c in consumers),
        "stream_errors": sum(len(c.errors) for c in consumers),
        "close_ms_max": max(close_times) * 1000,
        "full_gc_count": len(collections.pauses),
        "full_gc_ms_max": max(collections.pauses, default=0.0) * 1000,
        "seconds_total": time.monotonic() - started,
    }


def table(results: List[Dict[str, Any]]) -> str:
    """One column per run (stream count)."""
    rows: List[Tuple[str, Any]] = [
        ("consumer", lambda r: CONSUMERS[r["consumer"]]),
        ("layout", lambda r: r["layout"]),
        ("writer pace", lambda r: f"{r['rate']:.0f} changes/s" if r["rate"] else "as fast as possible"),
        ("streams x writers", lambda r: f"{r['streams']} x {r['writers']}"),
        ("changes made over HTTP", lambda r: f"{r['changes_made']} ({r['http_changes_per_second']:.0f}/s)"),
        ("messages delivered", lambda r: f"{r['messages_delivered']}"),
        ("messages / second", lambda r: f"{r['messages_per_second']:.0f}"),
        ("latency p50", lambda r: f"{r['latency_ms_median']:.2f} ms"),
        ("latency p90", lambda r: f"{r['latency_ms_p90']:.2f} ms"),
        ("latency p99", lambda r: f"{r['latency_ms_p99']:.2f} ms"),
        ("latency max", lambda r: f"{r['latency_ms_max']:.2f} ms"),
        ("lost / duplicated", lambda r: f"{r['lost']} / {r['duplicated']}"),
        ("mirrors equal to server", lambda r: f"{r['mirrors_correct']} of {r['streams']}"),
        ("reconnects / stream errors", lambda r: f"{r['reconnects']} / {r['stream_errors']}"),
        ("slowest close()", lambda r: f"{r['close_ms_max']:.1f} ms"),
        ("full GC pauses in the consumers' process (longest)",
         lambda r: f"{r.get('full_gc_count', 0)} ({r.get('full_gc_ms_max', 0.0):.1f} ms)"),
        ("wall time", lambda r: f"{r['seconds_total']:.1f} s"),
    ]
    lines = ["| measure | " + " | ".join(f"{r['streams']} streams{SUFFIX[r['consumer']]}" for r in results) + " |",
             "|---|" + "--:|" * len(results)]
    lines += [f"| {name} | " + " | ".join(get(r) for r in results) + " |" for name, get in rows]
    for streams, consumer, goal, what in ((4, "sdk", P99_GOAL_MS, "4 streams"),
                                          (8, "async", ASYNC_P99_GOAL_MS, "8 asyncio streams in one loop")):
        found = [r for r in results if r["streams"] == streams and r["consumer"] == consumer]
        if found:
            p99 = found[0]["latency_ms_p99"]
            verdict = "met" if p99 < goal else f"missed by {p99 - goal:.1f} ms"
            lines += ["", f"goal: p99 < {goal:.0f} ms at {what} ({found[0]['layout']} layout): {p99:.2f} ms, {verdict}"]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[4, 8],
                        help="concurrent identifier streams; one run per value (default 4 8)")
    parser.add_argument("--changes", type=int, default=3000, help="creates + deletes to make per run (default 3000)")
    parser.add_argument("--writers", type=int, default=4, help="HTTP writer threads (default 4)")
    parser.add_argument("--budget", type=float, default=45.0, help="seconds before writers stop (default 45)")
    parser.add_argument("--layout", choices=("split", "one-process"), default="split",
                        help="split: emulator, writers and streams in three processes (default)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="changes per second, all writers together (default 0: as fast as they can)")
    parser.add_argument("--floor", action="store_true",
                        help="also run bare websocket-client readers (no SDK) at each stream count, and with "
                             "--asyncio bare aiohttp WebSockets in one loop")
    parser.add_argument("--asyncio", action="store_true",
                        help="also run the asyncio client's streams, all in one event loop, at each stream count")
    parser.add_argument("--json", nargs="?", const=str(RESULTS / "stream_soak.json"), default=None,
                        metavar="PATH", help="also write the results as JSON (default path: results/stream_soak.json)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.changes)
    if args.write:
        return write(args.write, args.changes, args.writers, args.budget, args.rate)
    kinds = ["sdk", *(["async"] if args.asyncio else []), *(["raw"] if args.floor else []),
             *(["rawasync"] if args.floor and args.asyncio else [])]
    results = [run(n, args.changes, args.writers, args.budget, args.layout, args.rate, kind)
               for n in args.streams for kind in kinds]
    print(table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {path.name}")
    ok = all(
        r["lost"] == 0
        and r["duplicated"] == 0
        and r["mirrors_correct"] == r["streams"]
        and r["changes_made"] == r["changes_requested"]
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
