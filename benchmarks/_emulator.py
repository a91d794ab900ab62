"""Serve the bundled emulator, filled with a realistic, deterministic set of conversations.

Run by ``benchmarks/run.py`` in its own process, so the servers never share a GIL with the
client being measured. One emulator per size given (``--sizes 10,100,1000``), each on its
own port; prints one JSON line (``{"emulators": {"10": {"url": ..., "conversations": 10}, ...},
"seed": {...}}``, the seed being one SeededConversation body like those it stored)
once they all listen on 127.0.0.1, then serves until its stdin is closed.

The data: one conversation in four is grounded on a demo asset (the emulator's own
"create from asset": a summary message, an asset reference and grounding); the others are
seeded with several user/assistant messages (markdown with code blocks, explicit creation
timestamps, some sentiments) and the same kind of asset reference.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import sys
from typing import Any, Dict, List

from pieces_os_client.emulator import Emulator

_TOPICS = [
    ("retry an HTTP call", "python", "py"),
    ("debounce a function", "typescript", "ts"),
    ("parse a CSV file", "python", "py"),
    ("read a file line by line", "go", "go"),
    ("memoize a recursive function", "rust", "rs"),
    ("open a SQLite database", "python", "py"),
]

_CODE = {
    "python": "def retry(call, attempts=5):\n    for n in range(attempts):\n        try:\n"
              "            return call()\n        except OSError:\n            time.sleep(2 ** n)\n",
    "typescript": "export function debounce(fn: () => void, ms: number) {\n  let t: number | undefined;\n"
                  "  return () => { clearTimeout(t); t = setTimeout(fn, ms); };\n}\n",
    "go": "scanner := bufio.NewScanner(f)\nfor scanner.Scan() {\n    fmt.Println(scanner.Text())\n}\n",
    "rust": "fn fib(n: u64, memo: &mut HashMap<u64, u64>) -> u64 {\n    if n < 2 { return n; }\n"
            "    *memo.entry(n).or_insert_with(|| fib(n - 1, memo) + fib(n - 2, memo))\n}\n",
}


def _timestamp(moment: dt.datetime) -> Dict[str, str]:
    return {
        "value": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "readable": moment.strftime("%B %d, %Y, %H:%M"),
    }


def _seed(rng: random.Random, index: int, messages: int, assets: Any, start: dt.datetime) -> Dict[str, Any]:
    topic, language, ext = _TOPICS[index % len(_TOPICS)]
    items: List[Dict[str, Any]] = []
    moment = start + dt.timedelta(minutes=index * 7)
    for turn in range(messages):
        moment += dt.timedelta(seconds=rng.randint(5, 90))
        if turn % 2 == 0:
            text = f"How do I {topic} in {language}? Attempt {turn // 2 + 1}, keep it short please."
            message: Dict[str, Any] = {"role": "USER", "fragment": {"string": {"raw": text}}}
        else:
            text = (
                f"Here is one way to {topic} in {language}:\n\n```{ext}\n{_CODE.get(language, _CODE['python'])}```\n\n"
                "It covers the common case and keeps dependencies to the standard library. "
                "Tell me if you want a version with logging or tests."
            )
            message = {"role": "ASSISTANT", "fragment": {"string": {"raw": text}, "metadata": {"ext": "md"}}}
            if turn % 3 == 1:
                message["sentiment"] = rng.choice(["LIKE", "DISLIKE"])
        message["created"] = _timestamp(moment)
        items.append(message)
    seed: Dict[str, Any] = {
        "type": "COPILOT",
        "name": f"How to {topic} ({index + 1})",
        "favorited": rng.random() < 0.2,
        "messages": items,
    }
    if assets is not None:
        seed["assets"] = assets
    return seed


def populate(emulator: Emulator, conversations: int, messages: int) -> None:
    """Create ``conversations`` conversations, deterministically (fixed random seed)."""
    rng = random.Random(20240611)
    asset_ids = emulator.asset_ids()
    start = dt.datetime(2024, 6, 11, 9, 0, tzinfo=dt.timezone.utc)
    asset_refs: List[Any] = []
    for index in range(conversations):
        if asset_ids and index % 4 == 0:
            created = emulator.create_conversation(from_asset=asset_ids[(index // 4) % len(asset_ids)])
            stored = emulator.conversation(created) or {}
            if stored.get("assets") is not None and len(asset_refs) < len(asset_ids):
                asset_refs.append(stored["assets"])
        else:
            assets = asset_refs[index % len(asset_refs)] if asset_refs else None
            emulator.create_conversation(_seed(rng, index, messages, assets, start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000", help="conversations per emulator, comma-separated")
    parser.add_argument("--messages", type=int, default=6, help="messages per seeded conversation")
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    with contextlib.ExitStack() as stack:
        info: Dict[str, Any] = {}
        for size in sizes:
            # Keep few recorded requests: the benchmark sends many and never reads them back.
            emulator = stack.enter_context(Emulator("127.0.0.1", 0, heartbeat=None, max_recorded_requests=16))
            populate(emulator, size, args.messages)
            info[str(size)] = {"url": emulator.url, "conversations": len(emulator.conversation_ids())}
        # One seeded conversation like those above, for the request-body serialization rows.
        sample = _seed(random.Random(7), 1, args.messages, None, dt.datetime(2024, 6, 11, 9, 0, tzinfo=dt.timezone.utc))
        print(json.dumps({"emulators": info, "seed": sample}), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
