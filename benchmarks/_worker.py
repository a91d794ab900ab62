"""One measurement, in a fresh interpreter, for one contender. Started by ``run.py``.

Usage: ``python -I _worker.py MODE CONFIG_JSON``; prints ``RESULT <json>`` as its last line.

Contenders: ``ours`` and ``official`` (whichever ``pieces_os_client`` this interpreter
imports) and ``floor`` (urllib3 + json, no models). Modes:

* ``cold``: import times, module count and RSS after import; then the "ready" imports (the
  call path plus four conversation models), with wall time and peak RSS; then the first
  parse of the snapshot document in this process (any lazy schema building included).
* ``first_parse``: a fresh process to its first typed ``Conversations``: imports, then
  parsing a 10-conversation document.
* ``first_get``: the same through the network: imports, a client, ``GET /conversations``
  (10 conversations), typed.
* ``speed``: steady-state parse loop (a gc pass between runs), a parse loop with the
  collector left alone (nothing forced between runs, the previous result alive until the
  next one is made), ``to_dict`` / ``to_json`` loops on the result, and ``to_json`` of one
  ``SeededConversation`` (a request body).
* ``memory``: RSS and tracemalloc peaks while parsing the document, and what stays held.
* ``requests``: sequential calls against the emulators, one latency sample per call.
* ``paired``: the small calls (identifiers, create, delete) of this SDK and of the floor,
  alternating call by call in one process, so that both see the same background load.

This file imports nothing from the repository: it must run unchanged under the official
SDK's interpreter. Every loop stops at a count or a time budget, whichever comes first.
"""

from __future__ import annotations

import datetime
import gc
import json
import statistics
import sys
import time
import tracemalloc
from typing import Any, Callable, Dict, List, Optional

perf = time.perf_counter


def _status(*keys: str) -> Dict[str, int]:
    """Fields of /proc/self/status in bytes (Linux only; empty elsewhere)."""
    out: Dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _rss() -> Optional[int]:
    return _status("VmRSS").get("VmRSS")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


# ---------------------------------------------------------------------------- contenders
class Floor:
    """urllib3 + json: what the network and JSON cost with no models at all."""

    name = "floor"

    def import_sdk(self) -> Dict[str, float]:
        started = perf()
        import json as _json  # noqa: F401  (already loaded; kept for symmetry)

        import urllib3  # noqa: F401

        done = perf()
        return {"import_package_s": done - started, "import_call_path_s": done - started}

    def import_models(self) -> None:
        """Nothing: the floor has no models."""

    def seed_body(self, seed: Dict[str, Any]) -> Any:
        return seed

    def body_to_json(self, body: Any) -> str:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def prepare(self, raw: bytes) -> Any:
        return raw

    def parse(self, data: Any) -> Any:
        return json.loads(data)

    def to_dict(self, obj: Any) -> Any:
        raise NotImplementedError("json.loads already gives plain dicts")

    def to_json(self, obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    def client(self, url: str) -> Any:
        return FloorClient(url)


class FloorClient:
    def __init__(self, url: str) -> None:
        import urllib3

        self.url = url
        self.pool = urllib3.PoolManager(maxsize=4)
        self.headers = {"Accept": "application/json"}

    def _call(self, method: str, path: str, body: Optional[bytes] = None, expect: int = 200) -> Any:
        headers = self.headers if body is None else {**self.headers, "Content-Type": "application/json"}
        response = self.pool.request(method, self.url + path, body=body, headers=headers)
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}")
        return json.loads(response.data) if response.data else None

    def ids(self) -> Any:
        return self._call("GET", "/conversations/identifiers")

    def snapshot(self) -> Any:
        return self._call("GET", "/conversations")

    def create(self) -> str:
        body = json.dumps({"type": "COPILOT", "name": "benchmark"}).encode()
        return str(self._call("POST", "/conversations/create", body)["id"])

    def delete(self, conversation_id: str) -> None:
        self._call("POST", f"/conversations/{conversation_id}/delete", expect=204)

    def close(self) -> None:
        self.pool.clear()


class Sdk:
    """``pieces_os_client``: ours or the official one, whichever this interpreter has."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model: Any = None

    def import_sdk(self) -> Dict[str, float]:
        started = perf()
        import pieces_os_client  # noqa: F401

        package = perf()
        # The first usable call path, spelled so that it works with both packages
        # (the official top-level package exports nothing).
        from pieces_os_client.api.conversations_api import ConversationsApi  # noqa: F401
        from pieces_os_client.api_client import ApiClient  # noqa: F401
        from pieces_os_client.configuration import Configuration  # noqa: F401

        done = perf()
        return {"import_package_s": package - started, "import_call_path_s": done - started}

    def import_models(self) -> None:
        """The models a program that lists, creates and watches conversations imports."""
        from pieces_os_client.models.conversation import Conversation  # noqa: F401
        from pieces_os_client.models.conversations import Conversations  # noqa: F401
        from pieces_os_client.models.flattened_conversations import FlattenedConversations  # noqa: F401
        from pieces_os_client.models.seeded_conversation import SeededConversation  # noqa: F401

    def seed_body(self, seed: Dict[str, Any]) -> Any:
        from pieces_os_client.models.seeded_conversation import SeededConversation

        return SeededConversation.from_dict(seed)

    def body_to_json(self, body: Any) -> str:
        return str(body.to_json())

    def _conversations(self) -> Any:
        if self.model is None:
            from pieces_os_client.models.conversations import Conversations

            self.model = Conversations
        return self.model

    def prepare(self, raw: bytes) -> Any:
        return raw

    def parse(self, data: Any) -> Any:
        model = self._conversations()
        if self.name == "official":
            # The official from_json takes text; decoding is part of its cost.
            return model.from_json(data.decode("utf-8"))
        return model.from_json(data)

    def to_dict(self, obj: Any) -> Any:
        return obj.to_dict()

    def to_json(self, obj: Any) -> str:
        return str(obj.to_json())

    def client(self, url: str) -> Any:
        return SdkClient(url)


class SdkClient:
    def __init__(self, url: str) -> None:
        from pieces_os_client.api.conversations_api import ConversationsApi
        from pieces_os_client.api_client import ApiClient
        from pieces_os_client.configuration import Configuration
        from pieces_os_client.models.conversation_type_enum import ConversationTypeEnum
        from pieces_os_client.models.seeded_conversation import SeededConversation

        self.client = ApiClient(Configuration(host=url))
        self.api = ConversationsApi(self.client)
        self.seed = SeededConversation(type=ConversationTypeEnum.COPILOT, name="benchmark")

    def ids(self) -> Any:
        return self.api.conversations_identifiers_snapshot()

    def snapshot(self) -> Any:
        return self.api.conversations_snapshot()

    def create(self) -> str:
        return str(self.api.conversations_create_specific_conversation(seeded_conversation=self.seed).id)

    def delete(self, conversation_id: str) -> None:
        self.api.conversations_delete_specific_conversation(conversation_id)

    def close(self) -> None:
        close = getattr(self.client, "close", None)  # the official ApiClient has no close()
        if close is not None:
            close()
        else:
            self.client.rest_client.pool_manager.clear()


def contender(name: str) -> Any:
    return Floor() if name == "floor" else Sdk(name)


# ---------------------------------------------------------------------------- helpers
def _loop(
    func: Callable[[], Any], max_runs: int, budget_s: float, *, collect: bool = True, min_runs: int = 3,
    hold: bool = False,
) -> List[float]:
    """Time ``func`` repeatedly, at most ``max_runs`` times.

    Stops once the timed runs add up to ``budget_s`` or the wall clock (gc passes included)
    reaches twice that. With ``collect``, a full gc pass runs between runs, never inside one,
    so one run's garbage is not billed to the next. With ``hold``, the previous result stays
    alive until the next run has returned, as in a program that refreshes what it holds
    (``snapshot = api.conversations_snapshot()``).
    """
    times: List[float] = []
    spent = 0.0
    wall_deadline = perf() + 2 * budget_s
    previous: Any = None
    for _ in range(max_runs):
        if collect:
            gc.collect()
        started = perf()
        result = func()
        elapsed = perf() - started
        previous = result if hold else None
        del result
        times.append(elapsed)
        spent += elapsed
        if len(times) >= min_runs and (spent > budget_s or perf() > wall_deadline):
            break
    del previous
    return times


def _summary(times: List[float]) -> Dict[str, Any]:
    ordered = sorted(times)
    return {
        "runs": len(times),
        "median_s": statistics.median(ordered),
        "min_s": ordered[0],
        "mean_s": sum(times) / len(times),
        "p99_s": ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))],
        "total_s": sum(times),
        "times": times,  # run.py pools these across rounds, then drops them
    }


def _guard(out: Dict[str, Any], key: str, func: Callable[[], Any]) -> Any:
    """Run one measurement; an exception is recorded under ``key`` instead of aborting."""
    try:
        return func()
    except Exception as exc:
        out[key] = {"error": _error(exc)}
        return None


# ---------------------------------------------------------------------------- modes
def mode_cold(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    started = perf()
    out: Dict[str, Any] = dict(c.import_sdk())
    out["modules_after_import"] = len(sys.modules)
    out["rss_after_import"] = _rss()
    _guard(out, "ready_s", c.import_models)
    if "ready_s" not in out:
        out["ready_s"] = perf() - started
        out["modules_ready"] = len(sys.modules)
        out["rss_ready"] = _rss()
        out["peak_rss_ready"] = _status("VmHWM").get("VmHWM")
    with open(cfg["doc"], "rb") as handle:
        raw = handle.read()
    data = c.prepare(raw)

    def first() -> None:
        started = perf()
        obj = c.parse(data)
        out["first_parse_s"] = perf() - started
        started = perf()
        c.parse(data)
        out["second_parse_s"] = perf() - started
        del obj

    _guard(out, "first_parse_s", first)
    out["modules_after_parse"] = len(sys.modules)
    out["rss_after_parse"] = _rss()
    return out


def mode_first_parse(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Fresh process to its first typed result: the imports, then parse 10 conversations."""
    with open(cfg["doc10"], "rb") as handle:
        raw = handle.read()
    out: Dict[str, Any] = {}
    started = perf()

    def first() -> None:
        c.import_sdk()
        c.parse(c.prepare(raw))
        out["first_typed_s"] = perf() - started

    _guard(out, "first_typed_s", first)
    return out


def mode_first_get(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Fresh process to its first typed snapshot over the network (10 conversations)."""
    out: Dict[str, Any] = {}
    started = perf()

    def first() -> None:
        c.import_sdk()
        client = c.client(cfg["urls"]["10"])
        client.snapshot()
        out["first_get_s"] = perf() - started
        client.close()

    _guard(out, "first_get_s", first)
    return out


def mode_speed(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    c.import_sdk()
    with open(cfg["doc"], "rb") as handle:
        raw = handle.read()
    data = c.prepare(raw)
    out: Dict[str, Any] = {"doc_bytes": len(raw)}
    obj = _guard(out, "parse", lambda: c.parse(data))  # warm-up, and the object for round trips
    if obj is None:
        return out
    c.parse(data)
    out["parse"] = _summary(_loop(lambda: c.parse(data), cfg["parse_runs"], cfg["parse_budget_s"]))
    # The collector left alone: its delayed work (the young-generation pass after a pause,
    # the older passes the new objects trigger) lands in these runs, as in a real program.
    gc.collect()
    out["parse_gc"] = _summary(_loop(lambda: c.parse(data), cfg["parse_runs"], cfg["parse_budget_s"],
                                     collect=False, hold=True))
    for key, func in (("to_dict", c.to_dict), ("to_json", c.to_json)):
        try:
            func(obj)
        except NotImplementedError as exc:
            out[key] = {"skipped": str(exc)}
            continue
        except Exception as exc:
            out[key] = {"error": _error(exc)}
            continue
        out[key] = _summary(_loop(lambda f=func: f(obj), cfg["dump_runs"], cfg["dump_budget_s"]))
    seed = _guard(out, "seed_to_json", lambda: c.seed_body(cfg["seed"]))
    if seed is not None:
        try:
            c.body_to_json(seed)
            out["seed_to_json"] = _summary(_loop(lambda: c.body_to_json(seed), cfg["body_runs"],
                                                 cfg["body_budget_s"], collect=False))
        except Exception as exc:
            out["seed_to_json"] = {"error": _error(exc)}
    # Is the model's JSON the document it read? Compared as JSON values, then again with
    # timestamps compared as instants ("...:00.730Z" and "...:00.730000Z" are one moment).
    if "median_s" in out.get("to_json", {}):
        written, read = json.loads(c.to_json(obj)), json.loads(raw)
        if written == read:
            out["to_json_same_document"] = "identical"
        elif _instants(written) == _instants(read):
            out["to_json_same_document"] = "same, timestamps reformatted"
        else:
            out["to_json_same_document"] = "differs"
    return out


def _instants(value: Any) -> Any:
    """``value`` with every ISO 8601 timestamp string replaced by an aware datetime."""
    if isinstance(value, dict):
        return {key: _instants(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_instants(item) for item in value]
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def mode_memory(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    c.import_sdk()
    with open(cfg["doc"], "rb") as handle:
        raw = handle.read()
    with open(cfg["small_doc"], "rb") as handle:
        small = handle.read()
    out: Dict[str, Any] = {"doc_bytes": len(raw)}
    data = c.prepare(raw)
    # Parse a small document first so lazy imports and schema building are not counted.
    if _guard(out, "rss_peak_parse", lambda: c.parse(c.prepare(small))) is None:
        return out
    gc.collect()
    base = _rss()
    out["peak_resettable"] = _reset_peak()
    base_peak = _status("VmHWM").get("VmHWM")
    obj = c.parse(data)
    peak = _status("VmHWM").get("VmHWM")
    gc.collect()
    held = _rss()
    if base is not None and peak is not None and held is not None and base_peak is not None:
        out["rss_peak_parse"] = peak - base if out["peak_resettable"] else max(0, peak - base_peak)
        out["rss_held"] = held - base
    del obj
    gc.collect()
    tracemalloc.start()
    obj = c.parse(data)
    _, peak_traced = tracemalloc.get_traced_memory()
    gc.collect()
    out["traced_peak_parse"] = peak_traced
    out["traced_held"] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del obj
    return out


def mode_requests(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    c.import_sdk()
    out: Dict[str, Any] = {}
    urls = cfg["urls"]
    clients = _guard(out, "client", lambda: {size: c.client(url) for size, url in urls.items()})
    if clients is None:
        return out
    client = clients["10"]
    try:
        # No gc pass between calls, and each result alive until the next one arrives: the
        # collections parsing triggers, delayed ones included, land in these latencies.
        for op, call, runs, budget in (
            ("ids", client.ids, cfg["ids_runs"], cfg["ids_budget_s"]),
            ("snapshot100", clients["100"].snapshot, cfg["snapshot_runs"], cfg["snapshot_budget_s"]),
            ("snapshot1000", clients["1000"].snapshot, cfg["snapshot_runs"], cfg["snapshot_budget_s"]),
        ):
            try:
                for _ in range(2):
                    call()  # warm-up: connection, lazy imports, the server's cache
                out[op] = _summary(_loop(call, runs, budget, collect=False, hold=True))
            except Exception as exc:
                out[op] = {"error": _error(exc)}
        creates: List[float] = []
        deletes: List[float] = []
        try:
            client.delete(client.create())  # warm-up
            deadline = perf() + cfg["write_budget_s"]
            for _ in range(cfg["write_runs"]):
                started = perf()
                new_id = client.create()
                middle = perf()
                client.delete(new_id)
                deletes.append(perf() - middle)
                creates.append(middle - started)
                if len(creates) >= 3 and perf() > deadline:
                    break
            out["create"] = _summary(creates)
            out["delete"] = _summary(deletes)
        except Exception as exc:
            out["create"] = out["delete"] = {"error": _error(exc)}
    finally:
        for each in clients.values():
            each.close()
    return out


def mode_paired(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Small calls of this SDK and of the floor, alternating call by call in one process.

    Background load then hits both alike, which separate processes cannot promise: the
    ratio of the two medians is the steady measure of the SDK's own cost per call.
    """
    if c.name == "floor":
        return {"skipped": "the floor is the reference of this mode"}
    c.import_sdk()
    out: Dict[str, Any] = {}
    sdk = _guard(out, "client", lambda: c.client(cfg["urls"]["10"]))
    if sdk is None:
        return out
    floor = FloorClient(cfg["urls"]["10"])
    times: Dict[str, List[float]] = {key: [] for key in ("ids", "create", "delete", "floor_ids", "floor_create",
                                                         "floor_delete")}
    try:
        for client in (sdk, floor):
            client.ids()
            client.delete(client.create())
        deadline = perf() + cfg["write_budget_s"] + cfg["ids_budget_s"]
        for _ in range(cfg["write_runs"]):
            for prefix, client in (("", sdk), ("floor_", floor)):
                started = perf()
                client.ids()
                middle = perf()
                new_id = client.create()
                created = perf()
                client.delete(new_id)
                times[prefix + "delete"].append(perf() - created)
                times[prefix + "create"].append(created - middle)
                times[prefix + "ids"].append(middle - started)
            if len(times["ids"]) >= 3 and perf() > deadline:
                break
        for key, values in times.items():
            out[key] = _summary(values)
    except Exception as exc:
        out["ids"] = {"error": _error(exc)}
    finally:
        sdk.close()
        floor.close()
    out.update(_paired_body_json(c, cfg))
    return out


def _paired_body_json(c: Any, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """``to_json()`` of one request body alternating call by call with ``json.dumps`` of its dict.

    A call of a few microseconds, timed singly, moves with the load more than with the code;
    alternating the two in one process puts both under the same load.
    """
    out: Dict[str, Any] = {}
    body = _guard(out, "seed_to_json", lambda: c.seed_body(cfg["seed"]))
    if body is None:
        return out
    seed = cfg["seed"]
    times: Dict[str, List[float]] = {"seed_to_json": [], "floor_seed_to_json": []}
    try:
        c.body_to_json(body)
        json.dumps(seed)
        spent = 0.0
        for _ in range(cfg["body_runs"]):
            started = perf()
            c.body_to_json(body)
            middle = perf()
            json.dumps(seed)
            ended = perf()
            times["seed_to_json"].append(middle - started)
            times["floor_seed_to_json"].append(ended - middle)
            spent += ended - started
            if spent > cfg["body_budget_s"]:
                break
    except Exception as exc:
        return {"seed_to_json": {"error": _error(exc)}}
    return {key: _summary(values) for key, values in times.items()}


MODES = {
    "paired": mode_paired,
    "cold": mode_cold, "first_parse": mode_first_parse, "first_get": mode_first_get,
    "speed": mode_speed, "memory": mode_memory, "requests": mode_requests,
}


def main() -> int:
    mode, cfg = sys.argv[1], json.loads(sys.argv[2])
    c = contender(cfg["contender"])
    result = MODES[mode](c, cfg)
    if c.name != "floor":
        import pieces_os_client

        result["package_version"] = getattr(pieces_os_client, "__version__", None)
        result["package_file"] = getattr(pieces_os_client, "__file__", None)
    result["python"] = sys.version.split()[0]
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
