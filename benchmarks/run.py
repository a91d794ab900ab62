"""Benchmark our ``pieces_os_client`` against the official SDK and a raw urllib3 + json floor.

    python benchmarks/run.py            # full run, about 4 minutes; writes results/latest.{md,json}
    python benchmarks/run.py --quick    # smoke run, 1-2 minutes; writes results/quick.{md,json}

Everything runs against the bundled emulator on 127.0.0.1 (three of them, holding 10, 100
and 1000 conversations), started in a process of its own. The goals of issues 9 and 13 are printed
first, each as met or missed in this run. Each
measurement runs in a fresh interpreter (``_worker.py``): both SDKs are importable as
``pieces_os_client``, so they never share a process, and import costs are really cold.

"ours" is this checkout, run by the interpreter running this script (it needs our
dependencies and aiohttp for the emulator). "official" is ``pieces-os-client==5.0.1`` in a
venv of its own, created in ``benchmarks/.venv-official`` on first use (``--official-python``
points at an existing interpreter instead). "floor" is urllib3 + ``json`` with no models.
See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
WORKER = BENCH / "_worker.py"
EMULATOR = BENCH / "_emulator.py"
OFFICIAL_VENV = BENCH / ".venv-official"
OFFICIAL_REQUIREMENT = "pieces-os-client==5.0.1"
OFFICIAL_CLI_VENV = BENCH / ".venv-official-cli"
OFFICIAL_CLI_REQUIREMENT = "pieces-cli==1.20.1"
CONTENDERS = ("ours", "official", "floor")

FULL = {
    "cold_samples": 5, "rounds": 4,
    "parse_runs": 300, "parse_budget_s": 2.4,
    "dump_runs": 100, "dump_budget_s": 1.5,
    "ids_runs": 3000, "ids_budget_s": 3.0,
    "snapshot_runs": 200, "snapshot_budget_s": 5.0,
    "write_runs": 1000, "write_budget_s": 3.0,
    "body_runs": 5000, "body_budget_s": 0.6,
    "cli_samples": 9,
}
QUICK = {
    "cold_samples": 3, "rounds": 1,
    "parse_runs": 50, "parse_budget_s": 0.8,
    "dump_runs": 30, "dump_budget_s": 0.3,
    "ids_runs": 1000, "ids_budget_s": 0.7,
    "snapshot_runs": 50, "snapshot_budget_s": 1.0,
    "write_runs": 300, "write_budget_s": 0.7,
    "body_runs": 2000, "body_budget_s": 0.2,
    "cli_samples": 3,
}
WORKER_TIMEOUT_S = 120


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- interpreters
class Interpreter:
    """How to start a fresh interpreter for one contender, isolated from the others."""

    def __init__(self, contender: str, python: str, env: Dict[str, str], isolated: bool) -> None:
        self.contender = contender
        self.python = python
        self.env = env
        self.isolated = isolated

    def run(self, mode: str, cfg: Dict[str, Any], workdir: str) -> Dict[str, Any]:
        args = [self.python, *(["-I"] if self.isolated else []), str(WORKER), mode,
                json.dumps({**cfg, "contender": self.contender})]
        try:
            done = subprocess.run(args, cwd=workdir, env=self.env, capture_output=True, text=True,
                                  timeout=WORKER_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"{mode} worker timed out after {WORKER_TIMEOUT_S} s"}
        for line in reversed(done.stdout.splitlines()):
            if line.startswith("RESULT "):
                return dict(json.loads(line[len("RESULT "):]))
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{mode} worker exited with {done.returncode}: {tail[:300]}"}


def _clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


def compile_checkout() -> None:
    """Write this checkout's bytecode first, as pip does for an installed package.

    The official SDK comes compiled from its install; without this, a shell with
    PYTHONDONTWRITEBYTECODE set would make every fresh process of ours compile (the large
    generated models module above all) and time the compiler instead of the SDK.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "pieces_os_client")], check=True,
                   stdout=subprocess.DEVNULL)


def official_python(explicit: Optional[str]) -> Tuple[Optional[str], str]:
    """An interpreter with the official SDK; creates benchmarks/.venv-official when needed."""
    if explicit:
        python = explicit
    else:
        python = str(OFFICIAL_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
        if not Path(python).exists():
            log(f"creating {OFFICIAL_VENV.relative_to(ROOT)} with {OFFICIAL_REQUIREMENT} (one-time setup) ...")
            try:
                subprocess.run([sys.executable, "-m", "venv", str(OFFICIAL_VENV)], check=True, timeout=300)
                subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                OFFICIAL_REQUIREMENT], check=True, timeout=600)
            except (OSError, subprocess.SubprocessError) as exc:
                return None, f"could not install {OFFICIAL_REQUIREMENT}: {exc}"
    probe = "import pieces_os_client.api_client, pieces_os_client as p; print(p.__version__)"
    with tempfile.TemporaryDirectory() as cwd:
        try:
            done = subprocess.run([python, "-I", "-c", probe], cwd=cwd, env=_clean_env(), capture_output=True,
                                  text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"cannot run {python}: {exc}"
    if done.returncode != 0:
        return None, f"the official SDK does not import: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return python, done.stdout.strip()


def official_cli(home: str) -> Tuple[Optional[List[str]], str]:
    """The official CLI's command (``pieces``), from benchmarks/.venv-official-cli (made when needed).

    ``home`` becomes its HOME: a first run there answers its onboarding question ("skip"),
    so that the measured runs only print the version.
    """
    bindir = OFFICIAL_CLI_VENV / ("Scripts" if os.name == "nt" else "bin")
    command = str(bindir / ("pieces.exe" if os.name == "nt" else "pieces"))
    if not Path(command).exists():
        log(f"creating {OFFICIAL_CLI_VENV.relative_to(ROOT)} with {OFFICIAL_CLI_REQUIREMENT} (one-time setup) ...")
        python = str(bindir / ("python.exe" if os.name == "nt" else "python"))
        try:
            subprocess.run([sys.executable, "-m", "venv", str(OFFICIAL_CLI_VENV)], check=True, timeout=300)
            subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            OFFICIAL_CLI_REQUIREMENT], check=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"could not install {OFFICIAL_CLI_REQUIREMENT}: {exc}"
    env = _clean_env(HOME=home, USERPROFILE=home)
    try:
        subprocess.run([command, "--version"], input="skip\n", env=env, cwd=home, capture_output=True, text=True,
                       timeout=120, check=False)
        done = subprocess.run([command, "--version"], stdin=subprocess.DEVNULL, env=env, cwd=home,
                              capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cannot run the official CLI: {exc}"
    if done.returncode != 0 or not done.stdout.strip():
        return None, f"the official CLI does not run: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    return [command, "--version"], done.stdout.strip().splitlines()[-1]


# Runs a CLI (``-ours``: our console script's main; a path: a console script such as the
# official ``pieces``; ``-``: nothing) and writes its peak RSS (VmHWM) at exit to the file named
# by PIECES_BENCH_HWM. VmHWM belongs to the process's own address space, which exec starts
# afresh; ru_maxrss would also count the RSS of run.py, which the child was forked from.
HWM_WRAPPER = """
import atexit, os, runpy, sys
def report():
    try:
        with open("/proc/self/status") as status:
            kib = next(line for line in status if line.startswith("VmHWM:")).split()[1]
        with open(os.environ["PIECES_BENCH_HWM"], "w") as out:
            out.write(kib)
    except Exception:
        pass
atexit.register(report)
target = sys.argv[1]
sys.argv = sys.argv[1:]
if target == "-ours":
    from pieces_os_client.cli import main
    sys.exit(main())
elif target != "-":
    runpy.run_path(target, run_name="__main__")
"""


def timed_command(args: List[str], env: Dict[str, str], cwd: str) -> Dict[str, Any]:
    """Wall time of one fresh process."""
    started = time.perf_counter()
    try:
        done = subprocess.run(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=WORKER_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{args[0]}: {exc}"}
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return {"error": f"{' '.join(args[-3:])} exited with {done.returncode}: {tail[:200]}"}
    return {"wall_s": wall}


def peak_rss(args: List[str], env: Dict[str, str], cwd: str) -> Dict[str, Any]:
    """Peak RSS of one fresh process run through HWM_WRAPPER (Linux only: ``None`` elsewhere)."""
    if not Path("/proc/self/status").exists():
        return {"peak_rss": None}
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "hwm")
        done = timed_command(args, {**env, "PIECES_BENCH_HWM": str(report)}, cwd)
        if "error" in done:
            return done
        try:
            return {"peak_rss": int(report.read_text()) * 1024}
        except (OSError, ValueError):
            return {"peak_rss": None}


def measure_cli(samples: int, url: str, official: Optional[List[str]], home: str, workdir: str) -> Dict[str, Any]:
    """Fresh processes, alternating: our CLI's ``--help`` and ``conversations list`` (against the
    10-conversation emulator), the official CLI's ``pieces --version``, and a bare interpreter.
    Then the peak RSS of each, three runs apiece through HWM_WRAPPER."""
    ours_env = _clean_env(PYTHONPATH=str(ROOT))
    main = "import sys; from pieces_os_client.cli import main; sys.exit(main())"  # as the console script
    ours_list = ["conversations", "list", "--host", url]
    commands: Dict[str, Tuple[List[str], Dict[str, str], str]] = {
        "ours_help": ([sys.executable, "-c", main, "--help"], ours_env, workdir),
        "ours_list": ([sys.executable, "-c", main, *ours_list], ours_env, workdir),
        "floor": ([sys.executable, "-I", "-c", "pass"], _clean_env(), workdir),
    }
    wrapped: Dict[str, List[str]] = {
        "ours_help": [sys.executable, "-c", HWM_WRAPPER, "-ours", "--help"],
        "ours_list": [sys.executable, "-c", HWM_WRAPPER, "-ours", *ours_list],
        "floor": [sys.executable, "-I", "-c", HWM_WRAPPER, "-"],
    }
    if official is not None:
        commands["official"] = (official, _clean_env(HOME=home, USERPROFILE=home), home)
        python = str(Path(official[0]).with_name("python.exe" if os.name == "nt" else "python"))
        wrapped["official"] = [python, "-c", HWM_WRAPPER, official[0], *official[1:]]
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in commands}
    names = list(commands)
    for index in range(samples):
        for name in names if index % 2 == 0 else reversed(names):  # alternate the order as well
            args, env, cwd = commands[name]
            results[name].append(timed_command(args, env, cwd))
    for _ in range(3):
        for name in names:
            _, env, cwd = commands[name]
            results[name].append(peak_rss(wrapped[name], env, cwd))
    return results


# ---------------------------------------------------------------------------- emulator
class EmulatorProcess:
    """The emulators, filled by _emulator.py, in a process of their own; stops when stdin closes."""

    def __init__(self, sizes: List[int], messages: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EMULATOR), "--sizes", ",".join(map(str, sizes)), "--messages", str(messages)],
            cwd=str(ROOT), env=_clean_env(PYTHONPATH=str(ROOT)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise RuntimeError("the emulator did not start within 60 s") from None
        if not first:
            self.stop()
            raise RuntimeError("the emulator exited before it was ready")
        info = json.loads(first)
        self.urls: Dict[str, str] = {size: item["url"] for size, item in info["emulators"].items()}
        self.conversations: Dict[str, int] = {size: item["conversations"] for size, item in info["emulators"].items()}
        self.seed: Dict[str, Any] = info["seed"]
        if not all(url.startswith("http://127.0.0.1:") for url in self.urls.values()):
            self.stop()
            raise RuntimeError(f"an emulator is not on 127.0.0.1: {self.urls}")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def small_document(doc: bytes, count: int = 4) -> bytes:
    """The first few conversations of ``doc``, as a Conversations document of their own."""
    items = json.loads(doc)["iterable"][:count]
    indices = {item["id"]: index for index, item in enumerate(items)}
    return json.dumps({"iterable": items, "indices": indices}, separators=(",", ":")).encode()


def summarize(times: List[float]) -> Dict[str, Any]:
    ordered = sorted(times)
    return {
        "runs": len(ordered),
        "median_s": statistics.median(ordered),
        "min_s": ordered[0],
        "mean_s": sum(ordered) / len(ordered),
        "p99_s": ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))],
        "total_s": sum(ordered),
    }


def merge_rounds(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One result from several rounds of a mode: timings pooled, the first error kept."""
    merged: Dict[str, Any] = {}
    for part in parts:
        if "error" in part:
            return part
        for key, value in part.items():
            seen = merged.get(key)
            if isinstance(value, dict) and "times" in value:
                if seen is None:
                    merged[key] = {"times": list(value["times"])}
                elif "times" in seen:
                    seen["times"].extend(value["times"])
            elif (isinstance(value, dict) and "error" in value) or seen is None:
                merged[key] = value
    for key, value in merged.items():
        if isinstance(value, dict) and "times" in value:
            merged[key] = {**summarize(value["times"]), "rounds": len(parts)}
    return merged


# ---------------------------------------------------------------------------- the table
Cell = Optional[float]


class Row:
    def __init__(self, label: str, unit: str, better: str, values: Dict[str, Any], note: str = "") -> None:
        self.label, self.unit, self.better, self.values, self.note = label, unit, better, values, note


def _num(value: Any) -> Cell:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    number = _num(value)
    if number is None:
        return "n/a"
    if number == 0:
        return "0"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    if abs(number) >= 10:
        return f"{number:.1f}"
    if abs(number) >= 1:
        return f"{number:.2f}"
    return f"{number:.3g}"


def _ratio(a: Any, b: Any) -> str:
    x, y = _num(a), _num(b)
    if x is None or y is None or y == 0:
        return "n/a"
    return f"{x / y:.2f}x"


READY = "ready: call path + 4 conversation models"
PEAK_READY = "peak RSS at ready"
FIRST_TYPED = "fresh process to first typed Conversations (import + parse 10)"
FIRST_GET = "fresh process to first typed Conversations from a GET (10)"
SEED_JSON = "SeededConversation.to_json()"
IDS = "GET /conversations/identifiers, 10 ids"
GET100 = "GET /conversations, 100 conversations"
CREATE = "POST create (seeded)"
DELETE = "POST delete"
PAIRED = " - paired with the floor"
CLI_HELP = "CLI: pieces-os-client --help (official: pieces --version)"
CLI_LIST = "CLI: pieces-os-client conversations list, 10 conversations (official: pieces --version)"
CLI_HELP_RSS = "CLI peak RSS: --help (official: pieces --version)"
CLI_LIST_RSS = "CLI peak RSS: conversations list (official: pieces --version)"


def big_labels(big: int) -> Tuple[str, str]:
    """Labels of the rows measured on the big snapshot (``--conversations``, 1000 by default)."""
    return f"Conversations.from_json, {big} conversations, GC on", f"GET /conversations, {big} conversations"


def goals(big: int) -> List[Tuple[str, str, Optional[float]]]:
    """The goals of issues 9, 13 and 22: (row label, contender compared with, highest ratio allowed)."""
    parse_gc, get_big = big_labels(big)
    return [
        (parse_gc, "floor", 2.2),
        (get_big, "floor", 2.3),
        (GET100, "floor", 2.0),
        (IDS + PAIRED, "floor", 1.15),
        (DELETE + PAIRED, "floor", 1.10),
        (CREATE + PAIRED, "floor", 1.20),
        (READY, "official", 0.30),
        (FIRST_TYPED, "official", 0.35),  # issue 22: with the lowest and the newest allowed pydantic
        (FIRST_GET, "official", None),
        (PEAK_READY, "official", 0.50),
        (SEED_JSON + PAIRED, "floor", 1.0),
        (CLI_HELP, "official", 0.15),
        (CLI_LIST, "official", 0.40),
    ]


def build_rows(data: Dict[str, Dict[str, Any]], errors: List[str], big: int = 1000) -> List[Row]:
    """Turn the raw measurements into table rows; records failures in ``errors``."""
    rows: List[Row] = []
    parse_gc_label, get_big_label = big_labels(big)

    def pick(section: str, getter: Callable[[Any], Any]) -> Dict[str, Any]:
        values: Dict[str, Any] = {}
        for name in CONTENDERS:
            block = data.get(name, {}).get(section)
            if block is None:  # contender not measured
                values[name] = None
                continue
            try:
                values[name] = getter(block)
            except (KeyError, TypeError, IndexError, AttributeError, statistics.StatisticsError):
                values[name] = None
        return values

    def failure(name: str, what: str, block: Any) -> Optional[str]:
        if isinstance(block, dict) and "error" in block:
            message = f"{name}, {what}: {block['error']}"
            if message not in errors:
                errors.append(message)
            return "error"
        return None

    def cold(key: str, scale: float = 1.0) -> Callable[[Any], Any]:
        def get(samples: Any) -> Any:
            found = [s[key] for s in samples if _num(s.get(key)) is not None]
            return statistics.median(found) * scale if found else None
        return get

    def cold_errors(key: str, what: str) -> Callable[[Any], Any]:
        def get(samples: Any) -> Any:
            for sample in samples:
                for block in (sample, sample.get(key)):
                    if isinstance(block, dict) and "error" in block:
                        return block
            return None
        return get

    ms, mb, us = 1e3, 1 / 1e6, 1e6

    def cold_row(label: str, mode: str, key: str, scale: float, unit: str = "ms", note: str = "") -> None:
        values = pick(mode, cold(key, scale))
        for name, block in pick(mode, cold_errors(key, label)).items():
            if failure(name, label, block):
                values[name] = "error"
        rows.append(Row(label, unit, "lower", values, note))

    cold_row("import pieces_os_client", "cold", "import_package_s", ms, note="floor: import urllib3")
    cold_row("import to first call path", "cold", "import_call_path_s", ms,
             note="ConversationsApi + ApiClient + Configuration")
    cold_row(READY, "cold", "ready_s", ms,
             note="the call path + Conversation, Conversations, SeededConversation, FlattenedConversations")
    cold_row("modules loaded at ready", "cold", "modules_ready", 1, "count")
    cold_row("RSS at ready", "cold", "rss_ready", mb, "MB")
    cold_row(PEAK_READY, "cold", "peak_rss_ready", mb, "MB", "VmHWM")
    cold_row(FIRST_TYPED, "first_parse", "first_typed_s", ms,
             note="fresh process: imports + Conversations.from_json of 10 conversations")
    cold_row(FIRST_GET, "first_get", "first_get_s", ms,
             note="fresh process: imports + client + conversations_snapshot(), 10 conversations")
    cold_row("first parse of the big document", "cold", "first_parse_s", ms,
             note="after ready: schema building (ours) + the first validation")
    cold_row("RSS after first parse", "cold", "rss_after_parse", mb, "MB")

    def stat(section: str, op: str, key: str, scale: float = 1.0, what: str = "") -> Dict[str, Any]:
        values = pick(section, lambda block: block[op][key] * scale)
        for name, block in pick(section, lambda block: block.get(op) if "error" not in block else block).items():
            if failure(name, what or op, block):
                values[name] = "error"
            elif isinstance(block, dict) and "skipped" in block:
                values[name] = "n/a"
        return values

    rows.append(Row("parse, gc pass between runs", "ms", "lower", stat("speed", "parse", "median_s", ms, "parse"),
                    "median; ours: from_json(bytes), official: from_json(str), floor: json.loads"))
    doc_bytes = next((d["speed"]["doc_bytes"] for d in data.values() if "doc_bytes" in d.get("speed", {})), None)
    throughput = {k: (doc_bytes / 1e6 / (v / ms) if _num(v) and doc_bytes else v)
                  for k, v in stat("speed", "parse", "median_s", ms, "parse").items()}
    rows.append(Row("parse throughput", "MB/s", "higher", throughput))
    rows.append(Row(parse_gc_label, "ms", "lower", stat("speed", "parse_gc", "mean_s", ms, "parse, GC on"),
                    "mean; nothing forced between runs, the previous result alive"))
    rows.append(Row("to_dict() on the parsed model", "ms", "lower", stat("speed", "to_dict", "median_s", ms)))
    rows.append(Row("to_json() on the parsed model", "ms", "lower", stat("speed", "to_json", "median_s", ms),
                    "floor: json.dumps"))
    same = pick("speed", lambda block: block.get("to_json_same_document"))
    rows.append(Row("to_json() gives back the document read", "", "identical",
                    {k: (v if isinstance(v, str) else "n/a") for k, v in same.items()},
                    "compared as JSON values"))
    rows.append(Row(SEED_JSON, "us", "lower", stat("speed", "seed_to_json", "median_s", us, "SeededConversation"),
                    "median; a seeded conversation with 6 messages; floor: json.dumps of the dict"))

    for op, label, mean in (
        ("ids", IDS, False), ("snapshot100", GET100, True), ("snapshot1000", get_big_label, True),
        ("create", CREATE, False), ("delete", DELETE, False),
    ):
        if mean:
            rows.append(Row(label, "ms", "lower", stat("requests", op, "mean_s", ms, label),
                            "mean per call: collector work included"))
        rows.append(Row(f"{label} p50" if mean else label, "ms", "lower",
                        stat("requests", op, "median_s", ms, label), "" if mean else "median"))
        rows.append(Row(f"{label} p99", "ms", "lower", stat("requests", op, "p99_s", ms, label)))

    # The small calls again, each SDK alternating call by call with the floor in one process;
    # the floor column is the floor measured next to ours.
    for op, label, unit, scale in (("ids", IDS, "ms", ms), ("create", CREATE, "ms", ms), ("delete", DELETE, "ms", ms),
                                   ("seed_to_json", SEED_JSON, "us", us)):
        values = stat("paired", op, "median_s", scale, label + PAIRED)
        values["floor"] = _num(data.get("ours", {}).get("paired", {}).get(f"floor_{op}", {}).get("median_s"))
        if values["floor"] is not None:
            values["floor"] *= scale
        rows.append(Row(label + PAIRED, unit, "lower", values,
                        "median; the floor's calls alternate with ours in one process"))

    def mem(key: str) -> Dict[str, Any]:
        values = pick("memory", lambda block: block[key] * mb)
        for name, block in pick("memory", lambda block: block.get(key) if isinstance(block, dict) else None).items():
            if failure(name, "memory", block):
                values[name] = "error"
        for name in CONTENDERS:
            block = data.get(name, {}).get("memory")
            if failure(name, "memory", block):
                values[name] = "error"
        return values

    cli = data.get("cli", {})

    def cli_values(ours_key: str, key: str, scale: float) -> Dict[str, Any]:
        values: Dict[str, Any] = {}
        for column, name in (("ours", ours_key), ("official", "official"), ("floor", "floor")):
            samples = cli.get(name)
            if not samples:
                values[column] = None
                continue
            broken = next((s for s in samples if "error" in s), None)
            if broken is not None:
                message = f"CLI, {name}: {broken['error']}"
                if message not in errors:
                    errors.append(message)
                values[column] = "error"
                continue
            found = [s[key] for s in samples if _num(s.get(key)) is not None]
            values[column] = statistics.median(found) * scale if found else None
        return values

    rows.append(Row(CLI_HELP, "ms", "lower", cli_values("ours_help", "wall_s", ms),
                    "fresh process, wall, median of alternating runs; floor: python -I -c pass"))
    rows.append(Row(CLI_LIST, "ms", "lower", cli_values("ours_list", "wall_s", ms),
                    "ours: against the 10-conversation emulator"))
    rows.append(Row(CLI_HELP_RSS, "MB", "lower", cli_values("ours_help", "peak_rss", mb),
                    "VmHWM of the process at exit, median of 3 runs (Linux only)"))
    rows.append(Row(CLI_LIST_RSS, "MB", "lower", cli_values("ours_list", "peak_rss", mb)))
    rows.append(Row("RSS peak while parsing", "MB", "lower", mem("rss_peak_parse"), "above the RSS before parsing"))
    rows.append(Row("RSS held by the parsed result", "MB", "lower", mem("rss_held")))
    rows.append(Row("tracemalloc peak while parsing", "MB", "lower", mem("traced_peak_parse")))
    rows.append(Row("tracemalloc held by the result", "MB", "lower", mem("traced_held")))
    return rows


def goal_lines(rows: List[Row], big: int) -> List[str]:
    """The goals table: each goal's ratio from this run, and whether it was met."""
    by_label = {row.label: row for row in rows}
    lines = [
        "| goal | ours / | ratio | goal | result |",
        "|---|---|--:|--:|---|",
    ]
    for label, other, limit in goals(big):
        row = by_label.get(label)
        x, y = (_num(row.values.get("ours")), _num(row.values.get(other))) if row else (None, None)
        ratio = x / y if x is not None and y else None
        if limit is None:
            verdict = "no goal set"
        elif ratio is None:
            verdict = "not measured"
        elif ratio <= limit:
            verdict = "met"
        else:
            verdict = f"missed by {ratio / limit - 1:.0%}"
        lines.append(
            f"| {label} | {other} | {'n/a' if ratio is None else f'{ratio:.2f}x'} | "
            f"{'-' if limit is None else f'<= {limit:.2f}x'} | {verdict} |"
        )
    return lines


def render(rows: List[Row], meta: Dict[str, Any], errors: List[str]) -> str:
    lines = [
        f"# Benchmark results{' (quick run)' if meta['quick'] else ''}",
        "",
        f"- date: {meta['date']}; total run time {meta['run_seconds']:.0f} s",
        f"- machine: {meta['cpus']} CPUs, {meta['platform']}, Python {meta['python']}",
        f"- ours: pieces_os_client {meta['ours_version']} (this checkout); "
        f"official: pieces-os-client {meta['official_version']}; floor: urllib3 {meta['urllib3']} + json; "
        f"official CLI: pieces-cli {meta.get('official_cli_version', 'unavailable')}",
        f"- document: Conversations snapshot, {meta['conversations']} conversations, "
        f"{meta['doc_bytes'] / 1e6:.2f} MB ({meta['doc_bytes']:,} bytes); 10 conversations: "
        f"{meta['doc10_bytes']:,} bytes; identifiers (10): {meta['ids_bytes']:,} bytes",
        "- ratios are ours / other: below 1.00x is better for ours where lower is better, "
        "above 1.00x where higher is better",
        "",
        "Goals (issues 9 and 13), from this run:",
        "",
        *goal_lines(rows, meta["conversations"]),
        "",
        "All measurements:",
        "",
        "| metric | unit | better | ours | official | floor | ours/official | ours/floor | note |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        v = row.values
        lines.append(
            f"| {row.label} | {row.unit} | {row.better} | {_fmt(v.get('ours'))} | {_fmt(v.get('official'))} | "
            f"{_fmt(v.get('floor'))} | {_ratio(v.get('ours'), v.get('official'))} | "
            f"{_ratio(v.get('ours'), v.get('floor'))} | {row.note} |"
        )
    if errors:
        lines += ["", "Failures (measured, not hidden):", ""]
        lines += [f"- {message}" for message in errors]
    return "\n".join(lines) + "\n"


README = BENCH / "README.md"
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(table: str) -> bool:
    """Put ``table`` between the results markers of benchmarks/README.md, if it has them."""
    try:
        text = README.read_text(encoding="utf-8")
    except OSError:
        return False
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    body = table.replace("# Benchmark results", "### Latest run", 1)
    README.write_text(text[: start + len(README_START)] + "\n" + body + text[end:], encoding="utf-8")
    return True


# ---------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller budgets; writes results/quick.{md,json}")
    parser.add_argument("--official-python", metavar="PATH",
                        help="an interpreter that has pieces-os-client 5.0.1 (default: benchmarks/.venv-official)")
    parser.add_argument("--conversations", type=int, default=1000,
                        help="conversations in the big snapshot (1000); 10 and 100 are always measured too")
    parser.add_argument("--messages", type=int, default=6, help="messages per seeded conversation (6)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    budgets = QUICK if args.quick else FULL
    started = time.perf_counter()

    compile_checkout()
    official, official_version = official_python(args.official_python)
    if official is None:
        log(f"official SDK unavailable: {official_version}")
    interpreters = {
        "ours": Interpreter("ours", sys.executable, _clean_env(PYTHONPATH=str(ROOT)), isolated=False),
        "floor": Interpreter("floor", sys.executable, _clean_env(), isolated=True),
    }
    if official is not None:
        interpreters["official"] = Interpreter("official", official, _clean_env(), isolated=True)

    import urllib3

    cli_home = tempfile.mkdtemp(prefix="pieces-bench-cli-home-")
    official_cli_command, official_cli_version = official_cli(cli_home)
    if official_cli_command is None:
        log(f"official CLI unavailable, its rows are skipped: {official_cli_version}")

    data: Dict[str, Dict[str, Any]] = {name: {} for name in CONTENDERS}
    errors: List[str] = []
    if official is None:
        errors.append(f"official: not measured ({official_version})")
    names = [name for name in CONTENDERS if name in interpreters]
    sizes = sorted({10, 100, args.conversations})
    log(f"starting emulators with {', '.join(map(str, sizes))} conversations ...")
    emulator = EmulatorProcess(sizes, args.messages)
    # The request rows name the emulators by these keys, whatever --conversations says.
    urls = {"10": emulator.urls["10"], "100": emulator.urls["100"], "1000": emulator.urls[str(args.conversations)]}
    try:
        doc = fetch(urls["1000"] + "/conversations")
        doc10 = fetch(urls["10"] + "/conversations")
        ids_doc = fetch(urls["10"] + "/conversations/identifiers")
        with tempfile.TemporaryDirectory(prefix="pieces-bench-") as workdir:
            doc_path, small_path = Path(workdir, "snapshot.json"), Path(workdir, "small.json")
            doc10_path = Path(workdir, "snapshot10.json")
            doc_path.write_bytes(doc)
            small_path.write_bytes(small_document(doc))
            doc10_path.write_bytes(doc10)
            cfg = {**budgets, "urls": urls, "doc": str(doc_path), "small_doc": str(small_path),
                   "doc10": str(doc10_path), "seed": emulator.seed}

            cold_modes = ("cold", "first_parse", "first_get")
            log(f"cold starts: {budgets['cold_samples']} fresh processes per contender and mode ...")
            for name in names:
                for mode in cold_modes:
                    data[name][mode] = []
            for _ in range(budgets["cold_samples"]):
                for mode in cold_modes:
                    for name in names:  # interleaved, so slow drift hits every contender alike
                        data[name][mode].append(interpreters[name].run(mode, cfg, workdir))
            # Timed modes run in rounds, contenders interleaved, each round with a share of
            # the budget: load from elsewhere on the machine then hits all three alike.
            rounds = budgets["rounds"]
            share = {k: (v / rounds if k.endswith("_budget_s") else v) for k, v in cfg.items()}
            for mode in ("speed", "requests", "paired"):
                parts: Dict[str, List[Dict[str, Any]]] = {name: [] for name in names}
                for index in range(rounds):
                    for name in names:
                        log(f"{mode}, round {index + 1}/{rounds}: {name} ...")
                        parts[name].append(interpreters[name].run(mode, share, workdir))
                for name in names:
                    data[name][mode] = merge_rounds(parts[name])
            for name in names:
                log(f"memory: {name} ...")
                data[name]["memory"] = interpreters[name].run("memory", cfg, workdir)
            log(f"CLI: {budgets['cli_samples']} fresh processes per command ...")
            data["cli"] = measure_cli(int(budgets["cli_samples"]), urls["10"], official_cli_command, cli_home, workdir)
    finally:
        emulator.stop()
        shutil.rmtree(cli_home, ignore_errors=True)
    if official_cli_command is None:
        errors.append(f"official CLI: not measured ({official_cli_version})")

    for name in names:  # make sure each contender measured the package it claims to be
        where = next((s.get("package_file") for s in data[name]["cold"] if s.get("package_file")), None)
        inside = where is not None and Path(where).resolve().is_relative_to(ROOT / "pieces_os_client")
        if name == "ours" and not inside:
            errors.append("ours: the worker did not import this checkout's pieces_os_client")
        if name == "official" and inside:
            errors.append("official: the worker imported this checkout instead of the official SDK")
        for section in data[name].values():  # no machine paths in the results
            for block in section if isinstance(section, list) else [section]:
                if isinstance(block, dict):
                    block.pop("package_file", None)
        for mode in cold_modes:
            for block in data[name][mode]:
                block.pop("package_file", None)
                if "error" in block:
                    errors.append(f"{name}, {mode}: {block['error']}")
                    break

    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "ours_version": next((s.get("package_version") for s in data["ours"].get("cold", [])), None),
        "official_version": official_version if official else "unavailable",
        "urllib3": urllib3.__version__,
        "official_cli_version": official_cli_version if official_cli_command else "unavailable",
        "conversations": emulator.conversations[str(args.conversations)],
        "doc_bytes": len(doc),
        "doc10_bytes": len(doc10),
        "ids_bytes": len(ids_doc),
        "budgets": budgets,
    }
    rows = build_rows(data, errors, meta["conversations"])
    meta["run_seconds"] = time.perf_counter() - started
    table = render(rows, meta, errors)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        stem = "quick" if args.quick else "latest"
        (RESULTS / f"{stem}.md").write_text(table, encoding="utf-8")
        payload = {
            "meta": meta,
            "rows": [{"metric": r.label, "unit": r.unit, "better": r.better, **r.values} for r in rows],
            "errors": errors,
            "raw": data,
        }
        (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {(RESULTS / stem).relative_to(ROOT)}.md and .json in {meta['run_seconds']:.0f} s")
        if not args.quick and update_readme(table):
            log("updated the results section of benchmarks/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
