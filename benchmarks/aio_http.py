"""The asyncio client against the sync client and a raw aiohttp floor, as ratios from one run.

    python benchmarks/aio_http.py            # about a minute
    python benchmarks/aio_http.py --quick    # a smoke run

All against the same emulators, which run in a process of their own as for run.py. The
contenders of a table take turns within one run (their order rotating from round to round),
so a change in the machine's load hits them alike; each ratio is the median over the rounds
of the contender's time over the base's time in the same round, each time the median.

* 100 concurrent ``conversations_identifiers_snapshot()`` calls: ``AsyncApiClient`` with
  ``asyncio.gather``; the sync client on 8 threads; the sync client through
  ``asyncio.to_thread`` (the pattern the README used to recommend); the floor.
* sequential small calls (identifiers, 10 conversations): per-call time, async vs the floor,
  one call of each in turn.
* the 1000-conversation snapshot: per-call time, async vs sync, and the longest stall of the
  event loop seen by a task that ticks every millisecond while the async call runs.

The floor is raw aiohttp held to what the async client is held to, so only the client's own
work differs: one ``aiohttp.ClientSession`` whose ``TCPConnector`` allows
``Configuration.connection_pool_maxsize`` connections (the async client's bound; keep-alive,
so both reuse the same number of connections), sending the same request headers as the async
client (its ``User-Agent``, ``Accept: application/json``, ``Accept-Encoding: identity``; aiohttp's
own ``Accept``/``Accept-Encoding``/``User-Agent`` skipped) with ``auto_decompress=False`` (the
emulator sends identity bodies, so both read the same bytes), aiohttp's default timeouts (a
5-minute total), and per call ``async with session.get(url) as reply: json.loads(await
reply.read())``: no models, no status or header checks, no deadlines, no retries.

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


FLOOR_HEADERS = {"User-Agent": pieces_os_client.api_client.USER_AGENT, "Accept": "application/json",
                 "Accept-Encoding": "identity"}


def floor_session(cfg: pieces_os_client.Configuration) -> Any:
    """The floor's session: the async client's connection bound and request headers (see above)."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=cfg.connection_pool_maxsize), auto_decompress=False,
        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
    )


def floor_call(session: Any, url: str) -> Callable[[], Awaitable[Any]]:
    async def one() -> Any:
        async with session.get(url + IDS, headers=FLOOR_HEADERS) as reply:
            return json.loads(await reply.read())

    return one


def paired(samples: Dict[str, List[float]], base: str) -> Dict[str, float]:
    """Each contender's median time, and under "<name> ratio" its median ratio to ``base`` per round."""
    out = {name: median_of(times) for name, times in samples.items()}
    for name, times in samples.items():
        out[f"{name} ratio"] = median_of([mine / theirs for mine, theirs in zip(times, samples[base], strict=True)])
    return out


async def concurrent_rows(url: str, rounds: int, calls: int) -> Dict[str, float]:
    cfg = pieces_os_client.Configuration(host=url)
    async with AsyncApiClient(cfg) as client, floor_session(cfg) as session:
        api = AsyncConversationsApi(client)
        one = floor_call(session, url)
        with pieces_os_client.ApiClient(cfg) as sync_client, ThreadPoolExecutor(8) as pool:
            sync_api = pieces_os_client.ConversationsApi(sync_client)

            async def threads() -> None:
                list(pool.map(lambda _: sync_api.conversations_identifiers_snapshot(), range(calls)))

            contenders: Dict[str, Callable[[], Awaitable[Any]]] = {
                "async client (gather)": lambda: asyncio.gather(
                    *(api.conversations_identifiers_snapshot() for _ in range(calls))),
                "sync client, 8 threads": threads,
                "sync client via asyncio.to_thread": lambda: asyncio.gather(
                    *(asyncio.to_thread(sync_api.conversations_identifiers_snapshot) for _ in range(calls))),
                "floor: raw aiohttp + json.loads": lambda: asyncio.gather(*(one() for _ in range(calls))),
            }
            for make in contenders.values():  # warm: models built, pools filled
                await make()
            samples = await take_turns(contenders, rounds)
    return paired(samples, "async client (gather)")


async def sequential_rows(url: str, calls: int) -> Dict[str, float]:
    cfg = pieces_os_client.Configuration(host=url)
    async with AsyncApiClient(cfg) as client, floor_session(cfg) as session:
        contenders = {"async client": AsyncConversationsApi(client).conversations_identifiers_snapshot,
                      "floor: raw aiohttp + json.loads": floor_call(session, url)}
        for call in contenders.values():
            await call()
        samples = await take_turns(contenders, calls)
    return paired(samples, "floor: raw aiohttp + json.loads")


async def take_turns(contenders: Dict[str, Callable[[], Awaitable[Any]]], rounds: int) -> Dict[str, List[float]]:
    """Time each contender once per round, who goes first rotating, so drift hits all alike."""
    samples: Dict[str, List[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            started = time.perf_counter()
            await contenders[name]()
            samples[name].append(time.perf_counter() - started)
    return samples


async def snapshot_rows(url: str, rounds: int) -> Dict[str, float]:
    cfg = pieces_os_client.Configuration(host=url)
    worst = 0.0
    async with AsyncApiClient(cfg) as client:
        api = AsyncConversationsApi(client)
        size = len((await api.conversations_snapshot_with_http_info()).raw_data)
        with pieces_os_client.ApiClient(cfg) as sync_client:
            sync_api = pieces_os_client.ConversationsApi(sync_client)
            sync_api.conversations_snapshot()
            samples: Dict[str, List[float]] = {"async client": [], "sync client": []}
            for round_ in range(rounds):
                for name in ("async client", "sync client") if round_ % 2 == 0 else ("sync client", "async client"):
                    if name == "sync client":
                        started = time.perf_counter()
                        sync_api.conversations_snapshot()
                        samples[name].append(time.perf_counter() - started)
                        continue
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
                    samples[name].append(time.perf_counter() - started)
                    stop.set()
                    worst = max(worst, await tick)
    out = paired(samples, "sync client")
    out["longest loop stall (async call)"] = worst
    out["bytes"] = float(size)
    return out


def table(title: str, rows: Dict[str, float], base: str, unit: str = "ms") -> List[str]:
    """A markdown table; a contender's ratio is its paired one ("<name> ratio") where measured."""
    lines = [f"### {title}", "", f"| contender | {unit} | vs {base} |", "|---|---|---|"]
    for name, seconds in rows.items():
        if name.endswith(" ratio"):
            continue
        ratio = rows.get(f"{name} ratio", seconds / rows[base])
        lines.append(f"| {name} | {seconds * 1000:.2f} | {ratio:.2f}x |")
    return [*lines, ""]


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds, calls = (3, 100) if args.quick else (15, 100)
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
    over_floor = 1 / concurrent["floor: raw aiohttp + json.loads ratio"]
    lines += [f"Async client over the floor, paired per round: {over_floor:.2f}x", ""]
    lines += table("Sequential identifiers calls (per call)", sequential, "floor: raw aiohttp + json.loads")
    lines += table(f"Snapshot of 1000 conversations ({size / 1e6:.1f} MB, per call)", snapshot, "sync client")
    lines.append(f"Longest event-loop stall during the async snapshot call: {stall * 1000:.1f} ms")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
