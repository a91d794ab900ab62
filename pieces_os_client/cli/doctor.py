"""``doctor``: one report answering "why doesn't it work?".

It follows the discovery chain step by step (:func:`pieces_os_client.discovery.trace_discovery`),
then asks the chosen host for its health and version, times each read endpoint, opens the
identifiers stream, and lists versions and non-default settings. Nothing is written to the
server (GETs and one WebSocket only).

Every wait has an end: each probe (a health or version GET, one endpoint call, the stream's
opening, its first snapshot) is over within ``--timeout`` seconds however the server paces its
bytes, and the discovery search as a whole within ``--discovery-timeout``. :func:`worst_case`
is the resulting bound on a whole run; docs/cli.md states it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from pieces_os_client._core.deadline import Deadline, seconds_text
from pieces_os_client._core.text import shown_value
from pieces_os_client.cli import EXIT_FAILURE, EXIT_OK, PROG
from pieces_os_client.cli._output import color, describe_error, print_json, printable, wants_color
from pieces_os_client.discovery import SEARCH_TIMEOUT, port_ranges

__all__ = ["diagnose", "port_ranges", "run", "worst_case"]

#: How many times each read endpoint is called; the report gives the median latency.
CALLS_PER_ENDPOINT = 3
#: The read endpoints doctor times.
ENDPOINTS = 3
#: How long closing the identifiers stream may wait for its reader thread, in seconds.
STREAM_CLOSE_TIMEOUT = 0.5
DEPENDENCIES = (
    "urllib3", "pydantic", "pydantic-core", "python-dateutil", "typing-extensions", "aiohttp",
)
_SECRET_WORDS = ("key", "token", "password", "secret", "auth", "cookie")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def worst_case(timeout: float, discovery_timeout: float = SEARCH_TIMEOUT) -> float:
    """The longest a whole ``doctor`` run can take, in seconds, whatever the servers do.

    Discovery (``discovery_timeout``), then one ``timeout`` each for the health and version
    GETs, one per endpoint call (three calls to each of three endpoints), and two for the
    stream (opening it, then its first snapshot) plus the wait for its reader thread on close.
    A local run adds a few milliseconds of its own on top (and Python's start-up).
    """
    probes = 2 + ENDPOINTS * CALLS_PER_ENDPOINT + 2
    return discovery_timeout + probes * timeout + STREAM_CLOSE_TIMEOUT


# ------------------------------------------------------------------ probes
def _discovery(
    ports: Optional[Sequence[int]], timeout: float, total: float
) -> tuple[Dict[str, Any], Optional[str]]:
    from pieces_os_client._core.urls import mask_userinfo
    from pieces_os_client.discovery import CANDIDATE_PORTS, trace_discovery

    scanned = list(ports) if ports is not None else list(CANDIDATE_PORTS)
    started = time.perf_counter()
    steps, url = trace_discovery(scanned, timeout=timeout, total=total)
    rows = []
    for step in steps:
        row = step._asdict()
        if step.source == "env":
            row["where"] = mask_userinfo(step.where)
        rows.append(row)
    return {
        "skipped": False,
        "ports": port_ranges(scanned),
        "seconds_allowed": total,
        "steps": rows,
        "chosen": mask_userinfo(url) if url else None,
        "seconds": round(time.perf_counter() - started, 3),
    }, url


def _get_text(url: str, path: str, timeout: float) -> Dict[str, Any]:
    from pieces_os_client.discovery import probe

    started = time.perf_counter()
    seen = probe(url, path, Deadline.after(time.monotonic(), timeout))
    if not seen.complete or seen.status is None:
        error = seen.problem if seen.status is None else f"answered {seen.status}, but {seen.problem}"
        return {"ok": False, "status": seen.status, "error": error}
    return {
        "ok": seen.status == 200,
        "status": seen.status,
        "text": seen.body.decode("utf-8", "replace").strip()[:200],
        "ms": _ms(time.perf_counter() - started),
    }


def _health(url: str, timeout: float) -> Dict[str, Any]:
    from pieces_os_client._core.urls import mask_userinfo
    from pieces_os_client.discovery import HEALTH_PATH, probe_health

    started = time.perf_counter()
    check, seen = probe_health(url, Deadline.after(time.monotonic(), timeout))
    elapsed = time.perf_counter() - started
    return {"url": mask_userinfo(url + HEALTH_PATH), "ok": check.looks_like_pieces_os, "answered": check.answered,
            "connected": seen.connected, "timed_out": seen.timed_out, "detail": check.detail, "ms": _ms(elapsed)}


def _endpoints(host: str, timeout: float) -> List[Dict[str, Any]]:
    from pieces_os_client.api.conversations_api import ConversationsApi
    from pieces_os_client.api_client import ApiClient
    from pieces_os_client.configuration import Configuration

    config = Configuration(host=host, connect_timeout=timeout, read_timeout=timeout, max_retries=0)
    # A number bounds each call as a whole, the body included, however the server paces it.
    # Each call has a client (so a connection) of its own: a call on a kept-alive connection
    # that the server closes unanswered is sent once more (see _core.exchange), which could
    # make it take twice --timeout.
    probes: List[tuple[str, Callable[[Any], Any]]] = [
        ("GET /conversations/identifiers",
         lambda api: api.conversations_identifiers_snapshot_with_http_info(_request_timeout=timeout)),
        ("GET /conversations?transferables=false",
         lambda api: api.conversations_snapshot_with_http_info(False, _request_timeout=timeout)),
        ("GET /conversations", lambda api: api.conversations_snapshot_with_http_info(_request_timeout=timeout)),
    ]
    results: List[Dict[str, Any]] = []
    for name, call in probes:
        times: List[float] = []
        entry: Dict[str, Any] = {"endpoint": name, "ok": True, "status": None}
        for _ in range(CALLS_PER_ENDPOINT):
            with ApiClient(config) as client:
                api = ConversationsApi(client)
                started = time.perf_counter()
                try:
                    response = call(api)
                except Exception as exc:  # reported, never raised
                    entry.update(ok=False, status=getattr(exc, "status", None), error=describe_error(exc))
                    break
                times.append(time.perf_counter() - started)
            entry["status"] = response.status_code
            entry["count"] = len(response.data.iterable or [])
        if times:
            entry["median_ms"] = _ms(statistics.median(times))
            entry["calls"] = len(times)
        results.append(entry)
    return results


def _stream(host: str, timeout: float) -> Dict[str, Any]:
    from pieces_os_client.api.conversations_api import ConversationsApi
    from pieces_os_client.api_client import ApiClient
    from pieces_os_client.configuration import Configuration

    first = threading.Event()
    count: List[int] = []

    def on_message(message: Any) -> None:
        if not first.is_set():
            count.append(len(message.iterable or []))
            first.set()

    config = Configuration(host=host, connect_timeout=timeout, read_timeout=timeout, max_retries=0)
    started = time.perf_counter()
    with ApiClient(config) as client:
        try:
            stream = ConversationsApi(client).conversations_stream_identifiers(
                on_message=on_message, reconnect=False, ping_interval=None, connect_timeout=timeout,
                close_timeout=STREAM_CLOSE_TIMEOUT,
            )
        except Exception as exc:  # reported, never raised
            return {"opened": False, "snapshot": False, "error": describe_error(exc)}
        opened = time.perf_counter() - started
        try:
            got = first.wait(timeout)
            elapsed = time.perf_counter() - started
        finally:
            stream.close()
    result: Dict[str, Any] = {"opened": True, "open_ms": _ms(opened), "snapshot": got}
    if got:
        result.update(snapshot_ms=_ms(elapsed), count=count[0])
    else:
        error = stream.error
        result["error"] = describe_error(error) if error else f"no snapshot within {timeout:g} s"
    return result


def _environment() -> Dict[str, Any]:
    from importlib import metadata

    from pieces_os_client._version import __version__

    versions: Dict[str, Optional[str]] = {}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "sdk": __version__,
        "sdk_location": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "executable": sys.executable,
        "platform": platform.platform(),
        "dependencies": versions,
    }


def mask(name: str, value: Any) -> Any:
    """A setting's value fit to show: credentials as ``***``, ``user:password@`` in URLs masked.

    A value is a credential when its name (or, in a dict, its key) mentions a key, token,
    password, secret, authorization or cookie: ``api_key``, ``proxy_headers.Proxy-Authorization``.
    """
    from pieces_os_client._core.urls import mask_userinfo

    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): mask(f"{name}.{k}", v) for k, v in value.items()}
    if any(word in name.lower() for word in _SECRET_WORDS):
        return "***"
    if isinstance(value, str):
        return mask_userinfo(value)
    if isinstance(value, (int, float, bool)):
        return value
    return mask_userinfo(repr(value))


def settings_changed(config: Any) -> Dict[str, Any]:
    """The configuration's settings that differ from their defaults, credentials masked."""
    from pieces_os_client.configuration import SETTINGS

    changed: Dict[str, Any] = {}
    if config.host_was_given:
        changed["host"] = mask("host", config.host)
    for name in ("api_key", "api_key_prefix", "username", "password", "access_token", "ssl_ca_cert", "retries"):
        value = getattr(config, name, None)
        if value:
            changed[name] = mask(name, value)
    for name, setting in SETTINGS.items():
        value = getattr(config, name, setting.default)
        if value != setting.default:
            changed[name] = mask(name, value)
    return changed


# ------------------------------------------------------------------ diagnosis
def _problem(cause: str, fix: str) -> Dict[str, str]:
    return {"cause": cause, "fix": fix}


def _not_found_problems(discovery: Dict[str, Any], timeout: float) -> List[Dict[str, str]]:
    from pieces_os_client.discovery import ENV_VAR

    problems: List[Dict[str, str]] = []
    steps = discovery["steps"]
    env = steps[0]
    if env["source"] == "env" and env["outcome"] == "invalid":
        return [_problem(
            f"{ENV_VAR} {shown_value(env['where'])} {env['detail']}",
            f"set {ENV_VAR} to the URL of Pieces OS (for example http://localhost:39300), or unset it to let "
            "the client search",
        )]
    if env["source"] == "env" and env["outcome"] == "not_pieces_os":
        return [_problem(
            f"{ENV_VAR} is {env['where']}, but the server there is not Pieces OS: {env['detail']}",
            f"point {ENV_VAR} at Pieces OS (or the emulator), or unset it to let the client search",
        )]
    for step in steps:
        if step["source"] == "port_file" and step["outcome"] in ("no_answer", "not_pieces_os"):
            what = "nothing answers there" if step["outcome"] == "no_answer" else "the server there is not Pieces OS"
            problems.append(_problem(
                f"the port file {step['where']} names port {step['port']}, but {what} ({step['detail']})",
                "Pieces OS may have stopped without removing its port file: start (or restart) Pieces OS",
            ))
    foreign = [s for s in steps if s["source"] == "scan" and s["outcome"] == "not_pieces_os"]
    silent = [s for s in steps if s["source"] == "scan" and s["outcome"] == "no_answer"]
    untried = [s["port"] for s in steps if s["outcome"] == "out_of_time" and s["port"] is not None]
    for step in foreign:
        problems.append(_problem(
            f"port {step['port']} answers but is not Pieces OS: {step['detail']}",
            "stop that server or move it to another port, then start Pieces OS; or name Pieces OS with "
            f"{ENV_VAR} or --host",
        ))
    for step in silent:
        problems.append(_problem(
            f"port {step['port']} accepts connections but gives no complete HTTP answer: {step['detail']}",
            "if this is Pieces OS, it may be starting or hung: wait or restart it; otherwise free the port",
        ))
    if untried:
        allowed = seconds_text(discovery["seconds_allowed"])
        problems.append(_problem(
            f"the search stopped after {allowed}, before trying port{'s' if len(untried) > 1 else ''} "
            f"{port_ranges(untried)}",
            f"name Pieces OS with {ENV_VAR} or --host, or give the search more time with --discovery-timeout",
        ))
    if not foreign and not silent and not untried:
        problems.append(_problem(
            f"nothing listens on ports {discovery['ports']}; is Pieces OS running?",
            f"start Pieces OS (or the stand-in: {PROG} emulator), or name it with {ENV_VAR} or --host",
        ))
    return problems


def _host_problem(host: str, health: Dict[str, Any], source: str) -> Dict[str, str]:
    from pieces_os_client.discovery import ENV_VAR

    where = f"{ENV_VAR} is {host}, but" if source == "env" else f"at {host}"
    slow = "Pieces OS may be starting, overloaded or hung: wait a moment, or restart it; try a larger --timeout"
    if health["answered"] and health["timed_out"]:
        return _problem(f"{where} the server began to answer but did not finish: {health['detail']}", slow)
    if health["answered"]:
        return _problem(
            f"{where} the server is not Pieces OS: {health['detail']}",
            f"point {'--host' if source == 'host' else ENV_VAR} at Pieces OS (or the emulator)",
        )
    if health["connected"]:
        return _problem(f"{where} the server accepts connections yet does not answer in time: {health['detail']}", slow)
    return _problem(
        f"{where} nothing answers: {health['detail']}",
        "start Pieces OS (or the emulator), or correct the URL" + (f" or unset {ENV_VAR}" if source == "env" else ""),
    )


def diagnose(
    host: Optional[str], timeout: float, ports: Optional[Sequence[int]] = None,
    discovery_timeout: float = SEARCH_TIMEOUT,
) -> Dict[str, Any]:
    """The whole report as JSON-ready data; ``report["ok"]`` says whether all is well.

    Over within :func:`worst_case` seconds, whatever the servers it talks to do.
    """
    from pieces_os_client._core.urls import mask_userinfo
    from pieces_os_client.configuration import DEFAULT_HOST

    problems: List[Dict[str, str]] = []
    report: Dict[str, Any] = {"ok": False, "problems": problems}
    if host is not None:
        report["discovery"] = {"skipped": True, "reason": "--host was given", "steps": [], "chosen": None}
        source = "host"
    else:
        report["discovery"], host = _discovery(ports, timeout, discovery_timeout)
        source = report["discovery"]["steps"][-1]["source"] if host else "none"
        if host is None:
            problems += _not_found_problems(report["discovery"], timeout)
            report["discovery"]["fallback"] = DEFAULT_HOST
    report["host"] = mask_userinfo(host) if host else None
    health: Optional[Dict[str, Any]] = None
    if host is not None:
        health = report["health"] = _health(host, timeout)
        report["version"] = _get_text(host, "/.well-known/version", timeout) if health["answered"] else None
        if not health["ok"]:
            problems.append(_host_problem(report["host"], health, source))
    if health is not None and health["ok"] and host is not None:
        endpoints = report["endpoints"] = _endpoints(host, timeout)
        counts = [e["count"] for e in endpoints if "count" in e]
        report["conversations"] = counts[0] if counts else None
        for entry in endpoints:
            if not entry["ok"]:
                problems.append(_problem(
                    f"{entry['endpoint']} failed: {entry.get('error')}",
                    "Pieces OS answers its health check but this endpoint fails: restart Pieces OS, and update "
                    "it if the problem stays; attach `doctor --json` to a bug report",
                ))
        stream = report["stream"] = _stream(host, timeout)
        if not stream["snapshot"]:
            problems.append(_problem(
                f"the identifiers stream {'gave no first snapshot' if stream['opened'] else 'did not open'}: "
                f"{stream.get('error')}",
                "something between the client and Pieces OS (a proxy, a firewall, a VPN) may block WebSockets; "
                "`conversations watch` will not work until it opens",
            ))
    else:
        report["endpoints"] = None
        report["stream"] = None
    report["environment"] = _environment()
    try:
        from pieces_os_client.configuration import Configuration

        config = Configuration(host=host) if source == "host" and host else Configuration(discover=False)
        report["settings_changed"] = settings_changed(config)
    except Exception as exc:  # reported, never raised
        report["settings_changed"] = {"error": describe_error(exc)}
    from pieces_os_client.discovery import ENV_VAR

    report["environment_variables"] = {
        name: mask(name, os.environ[name])
        for name in (ENV_VAR, "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
        if name in os.environ
    }
    report["ok"] = not problems
    return report


# ------------------------------------------------------------------ text
def _discovery_lines(discovery: Dict[str, Any]) -> List[str]:
    from pieces_os_client.discovery import ENV_VAR, _tilde

    if discovery["skipped"]:
        return ["  discovery skipped: --host was given"]
    lines: List[str] = []
    grouped: Dict[str, List[int]] = {"closed": [], "out_of_time": []}
    said = {"closed": "closed (nothing listens)", "out_of_time": "not tried (the search's time was used up)"}

    def flush_closed() -> None:
        for outcome, ports in grouped.items():
            if ports:
                label = f"ports {port_ranges(ports)}" if len(ports) > 1 else f"port {ports[0]}"
                lines.append(f"  {label:<28} {said[outcome]}")
                ports.clear()

    for step in discovery["steps"]:
        outcome, detail = step["outcome"], printable(step["detail"])
        mark = "  <- chosen" if step["chosen"] else ""
        if step["source"] == "scan" and outcome in grouped:
            if any(grouped[other] for other in grouped if other != outcome):
                flush_closed()
            grouped[outcome].append(step["port"])
            continue
        flush_closed()
        if step["source"] == "env":
            if outcome == "unset":
                text = "not set"
            elif outcome == "invalid":
                text = f"{printable(shown_value(step['where']))} {detail}"
            else:
                text = f"{printable(step['where'])}: {_outcome(outcome, detail)}"
            lines.append(f"  {ENV_VAR:<28} {text}{mark}")
        elif step["source"] == "port_file":
            lines.append(f"  port file {printable(_tilde(Path(step['where'])))}")
            if outcome in ("missing", "no_port", "duplicate"):
                lines.append(f"  {'':<28} {detail}")
            else:
                lines.append(f"  {'':<28} names port {step['port']}: {_outcome(outcome, detail)}{mark}")
        else:
            lines.append(f"  {'port ' + str(step['port']):<28} {_outcome(outcome, detail)}{mark}")
    flush_closed()
    chosen = discovery["chosen"] or f"none (requests would go to {discovery.get('fallback')}, and fail)"
    lines.append(f"  {'chosen host':<28} {printable(chosen)}   ({discovery['seconds'] * 1000:.0f} ms)")
    return lines


def _outcome(outcome: str, detail: str) -> str:
    return {
        "pieces_os": "Pieces OS",
        "not_pieces_os": f"open, not Pieces OS: {detail}",
        "no_answer": f"no answer: {detail}",
        "out_of_time": detail,
    }.get(outcome, detail)


def render(report: Dict[str, Any], colored: bool) -> str:
    ok, bad = color("ok", "32", colored), color("FAIL", "31", colored)
    lines = ["Discovery", *_discovery_lines(report["discovery"])]
    health = report.get("health")
    if health is not None:
        lines += ["", f"Pieces OS at {printable(report['host'])}"]
        lines.append(f"  {'health':<40} {ok if health['ok'] else bad}  {printable(health['detail'])}"
                     f"  ({health['ms']:.0f} ms)")
        version = report.get("version")
        if version is not None:
            shown = printable(version.get("text") or "") if version["ok"] else printable(
                version.get("error") or f"answered {version['status']}")
            lines.append(f"  {'version':<40} {shown}")
    for entry in report.get("endpoints") or []:
        if entry["ok"]:
            text = (f"{ok}  {entry['status']}  {entry['median_ms']:.0f} ms (median of {entry['calls']})"
                    f"  {entry['count']} conversations")
        else:
            text = f"{bad}  {printable(entry.get('error') or '')}"
        lines.append(f"  {entry['endpoint']:<40} {text}")
    stream = report.get("stream")
    if stream is not None:
        if stream["snapshot"]:
            text = (f"{ok}  opened in {stream['open_ms']:.0f} ms, first snapshot after {stream['snapshot_ms']:.0f} ms"
                    f" ({stream['count']} conversations)")
        else:
            text = f"{bad}  {printable(stream.get('error') or '')}"
        lines.append(f"  {'identifiers stream (WebSocket)':<40} {text}")
    env = report["environment"]
    deps = ", ".join(f"{name} {version}" for name, version in env["dependencies"].items() if version)
    lines += [
        "",
        "Environment",
        f"  pieces_os_client {env['sdk']} ({printable(env['sdk_location'])})",
        f"  Python {env['python']} on {env['platform']}",
        f"  {deps}",
    ]
    changed = {**report.get("environment_variables", {}), **report.get("settings_changed", {})}
    if changed:
        lines.append("  set: " + ", ".join(f"{k}={printable(str(v))}" for k, v in changed.items()))
    lines.append("")
    if report["ok"]:
        lines.append(f"Result: {ok}, Pieces OS works from here.")
    else:
        count = len(report["problems"])
        lines.append(f"Result: {bad}, {count} problem{'s' if count != 1 else ''}:")
        for problem in report["problems"]:
            lines.append(f"  - {printable(problem['cause'])}")
            lines.append(f"    what to do: {printable(problem['fix'])}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    report = diagnose(args.host, args.timeout, args.ports, args.discovery_timeout)
    if args.json:
        print_json(report)
    else:
        sys.stdout.write(render(report, wants_color(sys.stdout)))
    return EXIT_OK if report["ok"] else EXIT_FAILURE
