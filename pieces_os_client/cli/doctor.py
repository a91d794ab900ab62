"""``doctor``: one report answering "why doesn't it work?".

It follows the discovery chain step by step (:func:`pieces_os_client.discovery.trace_discovery`),
then asks the chosen host for its health and version, times each read endpoint, opens the
identifiers stream, and lists versions and non-default settings. Every probe is bounded by
``--timeout``; nothing is written to the server (GETs and one WebSocket only).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from pieces_os_client.cli import EXIT_FAILURE, EXIT_OK, PROG
from pieces_os_client.cli._output import color, describe_error, print_json, printable, wants_color

__all__ = ["diagnose", "run"]

#: How many times each read endpoint is called; the report gives the median latency.
CALLS_PER_ENDPOINT = 3
DEPENDENCIES = (
    "urllib3", "pydantic", "pydantic-core", "python-dateutil", "typing-extensions", "aiohttp",
)
_SECRET_WORDS = ("key", "token", "password", "secret", "auth", "cookie")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def port_ranges(ports: Sequence[int]) -> str:
    """``[39300, 39301, 39302, 1000]`` -> ``"39300-39302, 1000"``."""
    parts: List[str] = []
    start = prev = None
    for port in [*ports, None]:
        if start is not None and port is not None and prev is not None and port == prev + 1:
            prev = port
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = port
    return ", ".join(parts)


# ------------------------------------------------------------------ probes
def _discovery(ports: Optional[Sequence[int]], timeout: float) -> tuple[Dict[str, Any], Optional[str]]:
    from pieces_os_client._core.urls import mask_userinfo
    from pieces_os_client.discovery import CANDIDATE_PORTS, trace_discovery

    scanned = list(ports) if ports is not None else list(CANDIDATE_PORTS)
    started = time.perf_counter()
    steps, url = trace_discovery(scanned, timeout=timeout)
    rows = []
    for step in steps:
        row = step._asdict()
        if step.source == "env":
            row["where"] = mask_userinfo(step.where)
        rows.append(row)
    return {
        "skipped": False,
        "ports": port_ranges(scanned),
        "steps": rows,
        "chosen": mask_userinfo(url) if url else None,
        "seconds": round(time.perf_counter() - started, 3),
    }, url


def _get_text(url: str, path: str, timeout: float) -> Dict[str, Any]:
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname or "localhost", parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("GET", parts.path.rstrip("/") + path, headers={"Accept": "text/plain"})
        response = conn.getresponse()
        body = response.read(4096)
    except (OSError, http.client.HTTPException) as exc:
        return {"ok": False, "status": None, "error": _network_error(exc, timeout)}
    finally:
        conn.close()
    return {
        "ok": response.status == 200,
        "status": response.status,
        "text": body.decode("utf-8", "replace").strip()[:200],
        "ms": _ms(time.perf_counter() - started),
    }


def _network_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return str(exc) or type(exc).__name__


def _health(url: str, timeout: float) -> Dict[str, Any]:
    from pieces_os_client.discovery import HEALTH_PATH, check_health

    started = time.perf_counter()
    check = check_health(url, timeout)
    elapsed = time.perf_counter() - started
    detail = check.detail
    if not check.answered and ("timed out" in detail or elapsed >= timeout * 0.9):
        detail = f"no answer within {timeout:g} s ({detail})"
    from pieces_os_client._core.urls import mask_userinfo

    return {"url": mask_userinfo(url + HEALTH_PATH), "ok": check.looks_like_pieces_os, "answered": check.answered,
            "detail": detail, "ms": _ms(elapsed)}


def _endpoints(host: str, timeout: float) -> List[Dict[str, Any]]:
    from pieces_os_client.api.conversations_api import ConversationsApi
    from pieces_os_client.api_client import ApiClient
    from pieces_os_client.configuration import Configuration

    config = Configuration(host=host, connect_timeout=timeout, read_timeout=timeout, max_retries=0)
    results: List[Dict[str, Any]] = []
    with ApiClient(config) as client:
        api = ConversationsApi(client)
        probes: List[tuple[str, Callable[[], Any]]] = [
            ("GET /conversations/identifiers", api.conversations_identifiers_snapshot_with_http_info),
            ("GET /conversations?transferables=false", lambda: api.conversations_snapshot_with_http_info(False)),
            ("GET /conversations", api.conversations_snapshot_with_http_info),
        ]
        for name, call in probes:
            times: List[float] = []
            entry: Dict[str, Any] = {"endpoint": name, "ok": True, "status": None}
            for _ in range(CALLS_PER_ENDPOINT):
                started = time.perf_counter()
                try:
                    response = call()
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
    for step in foreign:
        problems.append(_problem(
            f"port {step['port']} answers but is not Pieces OS: {step['detail']}",
            "stop that server or move it to another port, then start Pieces OS; or name Pieces OS with "
            f"{ENV_VAR} or --host",
        ))
    for step in silent:
        problems.append(_problem(
            f"port {step['port']} accepts connections but sends no HTTP answer within {timeout:g} s ({step['detail']})",
            "if this is Pieces OS, it may be starting or hung: wait or restart it; otherwise free the port",
        ))
    if not foreign and not silent:
        problems.append(_problem(
            f"nothing listens on ports {discovery['ports']}; is Pieces OS running?",
            f"start Pieces OS (or the stand-in: {PROG} emulator), or name it with {ENV_VAR} or --host",
        ))
    return problems


def _host_problem(host: str, health: Dict[str, Any], source: str) -> Dict[str, str]:
    from pieces_os_client.discovery import ENV_VAR

    where = f"{ENV_VAR} is {host}, but" if source == "env" else f"at {host}"
    if health["answered"]:
        return _problem(
            f"{where} the server is not Pieces OS: {health['detail']}",
            f"point {'--host' if source == 'host' else ENV_VAR} at Pieces OS (or the emulator)",
        )
    if "no answer within" in health["detail"]:
        return _problem(
            f"{where} the server accepts connections but does not answer: {health['detail']}",
            "Pieces OS may be starting, overloaded or hung: wait a moment, or restart it; try a larger --timeout",
        )
    return _problem(
        f"{where} nothing answers: {health['detail']}",
        "start Pieces OS (or the emulator), or correct the URL" + (f" or unset {ENV_VAR}" if source == "env" else ""),
    )


def diagnose(host: Optional[str], timeout: float, ports: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The whole report as JSON-ready data; ``report["ok"]`` says whether all is well."""
    from pieces_os_client._core.urls import mask_userinfo
    from pieces_os_client.configuration import DEFAULT_HOST

    problems: List[Dict[str, str]] = []
    report: Dict[str, Any] = {"ok": False, "problems": problems}
    if host is not None:
        report["discovery"] = {"skipped": True, "reason": "--host was given", "steps": [], "chosen": None}
        source = "host"
    else:
        report["discovery"], host = _discovery(ports, timeout)
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
    closed: List[int] = []

    def flush_closed() -> None:
        if closed:
            label = f"ports {port_ranges(closed)}" if len(closed) > 1 else f"port {closed[0]}"
            lines.append(f"  {label:<28} closed (nothing listens)")
            closed.clear()

    for step in discovery["steps"]:
        outcome, detail = step["outcome"], printable(step["detail"])
        mark = "  <- chosen" if step["chosen"] else ""
        if step["source"] == "scan" and outcome == "closed":
            closed.append(step["port"])
            continue
        flush_closed()
        if step["source"] == "env":
            text = "not set" if outcome == "unset" else f"{printable(step['where'])}: {_outcome(outcome, detail)}"
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
    report = diagnose(args.host, args.timeout, args.ports)
    if args.json:
        print_json(report)
    else:
        sys.stdout.write(render(report, wants_color(sys.stdout)))
    return EXIT_OK if report["ok"] else EXIT_FAILURE
