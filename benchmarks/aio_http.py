"""The asyncio client against the sync client and a raw aiohttp floor, as ratios from one run.

    python benchmarks/aio_http.py            # about a minute
    python benchmarks/aio_http.py --quick    # a smoke run

Rows (each the median of several rounds, all against the same emulators, which run in a
process of their own as for run.py):

* 100 concurrent ``conversations_identifiers_snapshot()`` calls: ``AsyncApiClient`` with
  ``asyncio.gather``; the sync client on 8 threads; the sync client through
  ``asyncio.to_thread`` (the pattern the README used to recommend); the floor, raw aiohttp +
  ``json.loads`` with no models.
* sequential small calls (identifiers, 10 conversations): per-call time, async vs the floor.
* the 1000-conversation snapshot: per-call time, async vs sync, and the longest stall of the
  event loop seen by a task that ticks every millisecond while the async call runs.

Prints a markdown table. Every loop is bounded by a count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import EmulatorProcess

import pieces_os_client
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi

IDS = "/conversations/identifiers"


def median_of(samples: List[float]) -> float:
    return statistics.median(samples)


async def timed(make: Callable[[], Awaitable[Any]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await make()
        samples.append(time.perf_counter() - started)
    return median_of(samples)


async def concurrent_rows(url: str, rounds: int, calls: int) -> Dict[str, float]:
    import aiohttp

    cfg = pieces_os_client.Configuration(host=url)
    out: Dict[str, float] = {}
    async with AsyncApiClient(cfg) as client:
        api = AsyncConversationsApi(client)
        await api.conversations_identifiers_snapshot()  # warm: models built, pool filled
        out["async client (gather)"] = await timed(
            lambda: asyncio.gather(*(api.conversations_identifiers_snapshot() for _ in range(calls))), rounds)
    with pieces_os_client.ApiClient(cfg) as sync_client:
        sync_api = pieces_os_client.ConversationsApi(sync_client)
        sync_api.conversations_identifiers_snapshot()
        with ThreadPoolExecutor(8) as pool:
            async def threads() -> None:
                list(pool.map(lambda _: sync_api.conversations_identifiers_snapshot(), range(calls)))
            out["sync client, 8 threads"] = await timed(threads, rounds)
        out["sync client via asyncio.to_thread"] = await timed(
            lambda: asyncio.gather(*(asyncio.to_thread(sync_api.conversations_identifiers_snapshot)
                                     for _ in range(calls))), rounds)
    connector = aiohttp.TCPConnector(limit=cfg.connection_pool_maxsize)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> Any:
            async with session.get(url + IDS) as reply:
                return json.loads(await reply.read())
        await one()
        out["floor: raw aiohttp + json.loads"] = await timed(lambda: asyncio.gather(*(one() for _ in range(calls))),
                                                             rounds)
    return out


async def sequential_rows(url: str, calls: int) -> Dict[str, float]:
    import aiohttp

    out: Dict[str, float] = {}
    async with AsyncApiClient(pieces_os_client.Configuration(host=url)) as client:
        api = AsyncConversationsApi(client)
        await api.conversations_identifiers_snapshot()
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await api.conversations_identifiers_snapshot()
            samples.append(time.perf_counter() - started)
        out["async client"] = median_of(samples)
    async with aiohttp.ClientSession() as session:
        samples = []
        for _ in range(calls + 1):
            started = time.perf_counter()
            async with session.get(url + IDS) as reply:
                json.loads(await reply.read())
            samples.append(time.perf_counter() - started)
        out["floor: raw aiohttp + json.loads"] = median_of(samples[1:])
    return out


async def snapshot_rows(url: str, rounds: int) -> Dict[str, float]:
    cfg = pieces_os_client.Configuration(host=url)
    out: Dict[str, float] = {}
    worst = 0.0
    async with AsyncApiClient(cfg) as client:
        api = AsyncConversationsApi(client)
        size = len((await api.conversations_snapshot_with_http_info()).raw_data)
        samples = []
        for _ in range(rounds):
            stop = asyncio.Event()

            async def ticker(stop: asyncio.Event = stop) -> float:
                longest, last = 0.0, time.perf_counter()
                while not stop.is_set():
                    await asyncio.sleep(0.001)
                    now = time.perf_counter()
                    longest, last = max(longest, now - last), now
                return longest

            tick = asyncio.ensure_future(ticker())
            await asyncio.sleep(0.01)
            started = time.perf_counter()
            await api.conversations_snapshot()
            samples.append(time.perf_counter() - started)
            stop.set()
            worst = max(worst, await tick)
        out["async client"] = median_of(samples)
    with pieces_os_client.ApiClient(cfg) as sync_client:
        sync_api = pieces_os_client.ConversationsApi(sync_client)
        sync_api.conversations_snapshot()
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            sync_api.conversations_snapshot()
            samples.append(time.perf_counter() - started)
        out["sync client"] = median_of(samples)
    out["longest loop stall (async call)"] = worst
    out["bytes"] = float(size)
    return out


def table(title: str, rows: Dict[str, float], base: str, unit: str = "ms") -> List[str]:
    lines = [f"### {title}", "", f"| contender | {unit} | vs {base} |", "|---|---|---|"]
    for name, seconds in rows.items():
        lines.append(f"| {name} | {seconds * 1000:.2f} | {seconds / rows[base]:.2f}x |")
    return [*lines, ""]


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds, calls = (3, 100) if args.quick else (9, 100)
    emulators = EmulatorProcess([10, 1000], 6)
    try:
        small, big = emulators.urls["10"], emulators.urls["1000"]
        concurrent = asyncio.run(concurrent_rows(small, rounds, calls))
        sequential = asyncio.run(sequential_rows(small, 50 if args.quick else 300))
        snapshot = asyncio.run(snapshot_rows(big, rounds))
    finally:
        emulators.stop()
    size = snapshot.pop("bytes")
    stall = snapshot.pop("longest loop stall (async call)")
    lines = [f"## Async HTTP ({sys.version.split()[0]}, aiohttp {__import__('aiohttp').__version__})", ""]
    lines += table(f"{calls} concurrent identifiers calls (time for all)", concurrent, "async client (gather)")
    lines += table("Sequential identifiers calls (per call)", sequential, "floor: raw aiohttp + json.loads")
    lines += table(f"Snapshot of 1000 conversations ({size / 1e6:.1f} MB, per call)", snapshot, "sync client")
    lines.append(f"Longest event-loop stall during the async snapshot call: {stall * 1000:.1f} ms")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
