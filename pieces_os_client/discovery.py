"""Find a running Pieces OS on this machine.

Where it looks, in order (the first that answers like Pieces OS wins):

1. ``PIECES_OS_URL``, the user's explicit choice. Used as given when nothing answers there
   (Pieces OS may still be starting; the first call then names that host); an error when a
   server answers there that is not Pieces OS.
2. The port file Pieces OS writes when it starts: ``com.pieces.os/production/Config/.port.txt``
   under ``~/Library`` on macOS and ``~/Documents`` elsewhere (on Linux also under
   ``$XDG_DATA_HOME``, by default ``~/.local/share``). ``~`` is the home directory
   (``HOME``), so setting ``HOME`` moves the search, as tests do.
3. The ports Pieces OS has used: since version 11 the first free port in 39300-39333; before
   that 1000 (macOS and Windows) and 5323 (Linux).

A server "answers like Pieces OS" when ``GET /.well-known/health`` returns 200 with a text
body starting with ``ok`` (Pieces OS sends ``ok``, possibly followed by more, as does the
bundled emulator). Any other web server on one of those ports is passed over, and the error
raised when nothing was found says which ports were passed over and why.

Every wait has an end. Each probe (looking the host name up, connecting, asking for the health
answer and reading it) is over within ``timeout`` seconds (default 0.5) however the server
paces its bytes, and reads at most 4 KiB of body; the whole search is over within ``total``
seconds (default 5, ``Configuration.discovery_timeout``). Places still untried when that time is
up are reported as such (outcome ``"out_of_time"``), never waited for.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit

from pieces_os_client._core.deadline import Deadline, OutOfTime, seconds_text
from pieces_os_client._core.probe import ProbeAnswer, probe_request
from pieces_os_client._core.text import one_line, shown_value
from pieces_os_client._core.urls import mask_userinfo, url_problem

__all__ = [
    "CANDIDATE_PORTS",
    "ENV_VAR",
    "HEALTH_PATH",
    "PROBE_TIMEOUT",
    "SEARCH_TIMEOUT",
    "DiscoveryStep",
    "DiscoveryTrace",
    "HealthCheck",
    "candidate_urls",
    "check_health",
    "find_pieces_os",
    "is_pieces_os",
    "port_file_paths",
    "port_ranges",
    "read_port_file",
    "searched_places",
    "trace_discovery",
]

ENV_VAR = "PIECES_OS_URL"
CANDIDATE_PORTS: tuple[int, ...] = (*range(39300, 39334), 1000, 5323)
HEALTH_PATH = "/.well-known/health"
_PORT_FILE = ("com.pieces.os", "production", "Config", ".port.txt")
#: How much of a health answer or a port file is read (both are a few bytes when genuine).
_READ_LIMIT = 4096
#: The longest one probe may take, in seconds: look-up, connection, request and answer.
PROBE_TIMEOUT = 0.5
#: The longest a whole search may take, in seconds (``Configuration.discovery_timeout``).
SEARCH_TIMEOUT = 5.0

logger = logging.getLogger("pieces_os_client")

# What the latest search passed over, and what it left untried when its time was up, for the
# "nothing found" error (replaced whole, never mutated, so readers on other threads see one
# search's account or another's, never a mix).
_last_search: Tuple[Tuple[str, ...], str] = ((), "")


class HealthCheck(NamedTuple):
    """What ``GET /.well-known/health`` on one base URL showed."""

    url: str
    answered: bool  # the status line and headers of an HTTP answer came back (in time)
    looks_like_pieces_os: bool
    detail: str  # what was seen, for messages: "answered 404 Not Found", "connection refused", ...


def candidate_urls(ports: Iterable[int] = CANDIDATE_PORTS, host: str = "localhost") -> Iterator[str]:
    for port in ports:
        yield f"http://{host}:{port}"


class ProbeOutcome(NamedTuple):
    """What one probe (a GET on its own connection, within a deadline) saw; see :func:`probe`."""

    connected: bool  # a connection (and TLS session) was made
    status: Optional[int]  # None: no complete status line and headers arrived
    reason: str
    body: bytes  # at most the limit asked for
    complete: bool  # the body arrived in full, or up to the limit
    timed_out: bool  # the probe's time ran out
    problem: str  # why it is not complete ("" when it is)


class _SlowLookup(OutOfTime):
    """Looking the host name up took longer than the probe's deadline allowed."""


def _timeout_left(deadline: Deadline) -> Optional[float]:
    return deadline.wait(time.monotonic())


def _resolve(host: str, port: int, deadline: Deadline) -> List[Any]:
    """``getaddrinfo`` for ``host``, waiting no longer than ``deadline``.

    The system's resolver has no timeout of its own (a missing DNS server can hold it for many
    seconds), so a name is looked up in a daemon thread that is left to finish by itself if it
    outlasts the deadline. An IP address needs no look-up.
    """
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except ValueError:
        pass
    found: List[Any] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name="pieces-os-discovery-lookup", daemon=True).start()
    if not done.wait(_timeout_left(deadline)):
        raise _SlowLookup(f"looking up {host} took longer than {seconds_text(deadline.allowed)}")
    result = found[0]
    if isinstance(result, UnicodeError):
        raise OSError(f"{shown_value(host, 40)} is not a host name DNS can look up")
    if isinstance(result, OSError):
        raise result
    return list(result)


def _connect(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A connection to ``host:port`` (each of its addresses in turn), made before ``deadline``."""
    failure: Optional[OSError] = None
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_timeout_left(deadline))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            failure = exc
    raise failure or OSError(f"{host} has no address")


def probe(url: str, path: str, deadline: Deadline, limit: int = _READ_LIMIT) -> ProbeOutcome:
    """``GET path`` under the base URL ``url`` on a connection of its own, over by ``deadline``.

    Every wait (look-up, connection, TLS handshake, sending, each read) is given only what is
    left of ``deadline``, so a server that trickles its answer a byte at a time cannot hold the
    probe past it. Reads the status line, the headers and at most ``limit`` bytes of body, then
    closes the connection. Never raises for what the server does or fails to do: the outcome
    says it.
    """
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = quote(parts.path.rstrip("/") + path, safe="/%:@!$&'()*+,;=-._~")
    answer = ProbeAnswer(limit)
    phase = "connect"
    sock: Optional[socket.socket] = None
    try:
        name = hostname if hostname.isascii() else hostname.encode("idna").decode("ascii")
        name = f"[{name}]" if ":" in name else name
        authority = name if parts.port is None else f"{name}:{parts.port}"
        sock = _connect(hostname, port, deadline)
        if parts.scheme == "https":
            phase = "tls"
            sock.settimeout(_timeout_left(deadline))  # the handshake as a whole, not per read
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=hostname)
        phase = "exchange"
        sock.settimeout(_timeout_left(deadline))
        sock.sendall(probe_request(authority, target))  # bounded as a whole, as the handshake
        while not answer.done:
            sock.settimeout(_timeout_left(deadline))
            answer.feed(sock.recv(16384))
    except (OSError, ValueError) as exc:  # TimeoutError is an OSError; ProbeError and UnicodeError ValueErrors
        return ProbeOutcome(phase == "exchange", answer.status, answer.reason, bytes(answer.body), False,
                            isinstance(exc, TimeoutError), _problem(exc, phase, answer, deadline))
    finally:
        if sock is not None:
            sock.close()
    return ProbeOutcome(True, answer.status, answer.reason, bytes(answer.body), True, False, "")


def _problem(exc: BaseException, phase: str, answer: ProbeAnswer, deadline: Deadline) -> str:
    """Why a probe got no complete answer, in words."""
    if not isinstance(exc, TimeoutError):
        return one_line(str(exc) or type(exc).__name__)
    within = seconds_text(deadline.allowed)
    if isinstance(exc, _SlowLookup):
        return str(exc)
    if phase == "connect":
        return f"could not connect within {within}"
    if phase == "tls":
        return f"the TLS handshake did not finish within {within}"
    if not answer.received:
        return f"no answer within {within}"
    if not answer.has_head:
        return f"the status line and headers did not finish within {within} ({answer.received} bytes came)"
    return f"the body did not finish within {within} ({len(answer.body)} bytes came)"


def _judge(url: str, outcome: ProbeOutcome) -> HealthCheck:
    if outcome.status is None:
        return HealthCheck(url, False, False, outcome.problem)
    seen = f"answered {outcome.status} {outcome.reason}".rstrip()
    if not outcome.complete:
        return HealthCheck(url, True, False, f"GET {HEALTH_PATH} {seen}, but {outcome.problem}")
    body = outcome.body
    if outcome.status == 200 and body.strip()[:2].lower() == b"ok":
        return HealthCheck(url, True, True, "answered 200 ok")
    if outcome.status == 200:
        seen += f" with {body[:40]!r}" if body else " with an empty body"
    return HealthCheck(url, True, False, f"GET {HEALTH_PATH} {seen}, not Pieces OS's 200 ok")


def probe_health(url: str, deadline: Deadline) -> Tuple[HealthCheck, ProbeOutcome]:
    """Judge ``GET /.well-known/health`` on ``url`` within ``deadline``: the verdict and what the probe saw."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return HealthCheck(url, False, False, "not an http:// or https:// URL"), _NO_PROBE
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return HealthCheck(url, False, False, "the port is not a number from 0 to 65535"), _NO_PROBE
    outcome = probe(url, HEALTH_PATH, deadline)
    return _judge(url, outcome), outcome


_NO_PROBE = ProbeOutcome(False, None, "", b"", False, False, "")


def check_health(url: str, timeout: float = PROBE_TIMEOUT) -> HealthCheck:
    """Ask ``url`` for ``/.well-known/health`` and judge the answer, all within ``timeout`` seconds."""
    return probe_health(url, Deadline.after(time.monotonic(), timeout))[0]


def is_pieces_os(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when ``url`` answers ``GET /.well-known/health`` as Pieces OS does, within ``timeout``."""
    return check_health(url, timeout).looks_like_pieces_os


def port_file_paths(home: Optional[Path] = None, platform: Optional[str] = None) -> List[Path]:
    """Where Pieces OS writes the port it listens on, most likely first, for this platform."""
    home = home if home is not None else Path.home()
    platform = platform or sys.platform
    if platform == "darwin":
        bases = [home / "Library"]
    else:
        bases = [home / "Documents"]
        if platform.startswith("linux"):
            xdg = os.environ.get("XDG_DATA_HOME")
            bases.append(Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share")
    return [base.joinpath(*_PORT_FILE) for base in bases]


def read_port_file(path: Path) -> Optional[int]:
    """The port written in ``path``, or None when there is no such file or it holds no port."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(_READ_LIMIT).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    logger.debug("ignoring the Pieces OS port file %s: %r is not a port number", path, text[:40])
    return None


def _tilde(path: Path) -> str:
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except (ValueError, RuntimeError):
        return str(path)


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


def searched_places() -> str:
    """Where :func:`find_pieces_os` looks, in words, and what the latest search passed over or left untried."""
    files = " or ".join(_tilde(path) for path in port_file_paths())
    text = f"{ENV_VAR}, the port file {files} and ports 39300-39333, 1000 and 5323"
    passed_over, cut_short = _last_search
    if passed_over:
        text += "; passed over, as not Pieces OS: " + "; ".join(passed_over)
    if cut_short:
        text += "; " + cut_short
    return text


def _not_pieces_os(url: str, check: HealthCheck) -> Exception:
    from pieces_os_client.exceptions import ApiConnectionError

    return ApiConnectionError(
        f"{ENV_VAR} is {url}, but the server there does not look like Pieces OS: {check.detail}. "
        f"Point {ENV_VAR} at Pieces OS (or the emulator), or unset it to let the client search.",
        host=url,
        url=url + HEALTH_PATH,
        method="GET",
    )


def _invalid_env(value: str, problem: str) -> Exception:
    from pieces_os_client.exceptions import ApiValueError

    return ApiValueError(
        f"The environment variable {ENV_VAR} {shown_value(mask_userinfo(value))} {problem}. Set it to the URL "
        "of Pieces OS (for example http://localhost:39300), or unset it to let the client search."
    )


class DiscoveryStep(NamedTuple):
    """One place :func:`trace_discovery` looked, and what it found there.

    ``source`` is ``"env"`` (``PIECES_OS_URL``), ``"port_file"`` or ``"scan"``. ``where`` is
    the variable's value, the file's path or the scanned URL. ``outcome`` is one of:

    * ``"unset"`` — ``PIECES_OS_URL`` is not set; ``"invalid"`` — it is not a URL the client
      can use (``detail`` says why, as in "is not an http:// or https:// URL with a host");
    * ``"missing"`` — no port file there; ``"no_port"`` — the file holds no port number;
      ``"duplicate"`` — it names a port already tried;
    * ``"closed"`` — nothing listens on the port;
    * ``"no_answer"`` — something is there (or was named) but no complete HTTP answer came back
      in time;
    * ``"not_pieces_os"`` — a server answered, but not as Pieces OS does;
    * ``"pieces_os"`` — Pieces OS (or the emulator) answered;
    * ``"out_of_time"`` — not tried: the whole search's time was used up before.
    """

    source: str
    where: str
    port: Optional[int]
    outcome: str
    detail: str
    chosen: bool = False


class DiscoveryTrace(NamedTuple):
    """Every step of one search, in order, and its result (``url`` is None when nothing was found)."""

    steps: List[DiscoveryStep]
    url: Optional[str]


def _out_of_time(search: Deadline) -> str:
    return f"not tried: the search's {seconds_text(search.allowed)} were used up"


def trace_discovery(
    ports: Iterable[int] = CANDIDATE_PORTS,
    host: str = "localhost",
    timeout: float = PROBE_TIMEOUT,
    port_files: Optional[Iterable[Path]] = None,
    *,
    total: Optional[float] = SEARCH_TIMEOUT,
) -> DiscoveryTrace:
    """Search as :func:`find_pieces_os` does, and return every step as data (for diagnostics).

    The search stops where :func:`find_pieces_os` stops: at the first Pieces OS, or at
    ``PIECES_OS_URL`` when it is set. Each probe is over within ``timeout`` seconds and the
    whole search within ``total`` (``None``: no bound on the whole, each probe still bounded).
    Never raises for what it finds: a ``PIECES_OS_URL`` that names a server which is not Pieces
    OS is a step with outcome ``"not_pieces_os"`` (and no url), one that is not a usable URL a
    step with outcome ``"invalid"``.
    """
    search = Deadline.after(time.monotonic(), total)
    steps: List[DiscoveryStep] = []
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        problem = url_problem(explicit)
        if problem is not None:
            steps.append(DiscoveryStep("env", explicit, None, "invalid", problem))
            return DiscoveryTrace(steps, None)
        url = explicit.rstrip("/")
        check, _ = probe_health(url, search.within(time.monotonic(), timeout))
        if check.looks_like_pieces_os:
            steps.append(DiscoveryStep("env", url, None, "pieces_os", check.detail, True))
            return DiscoveryTrace(steps, url)
        if check.answered:
            steps.append(DiscoveryStep("env", url, None, "not_pieces_os", check.detail))
            return DiscoveryTrace(steps, None)
        # Pieces OS may still be starting: the user's choice stands, the first call names it.
        steps.append(DiscoveryStep("env", url, None, "no_answer", check.detail, True))
        return DiscoveryTrace(steps, url)
    steps.append(DiscoveryStep("env", "", None, "unset", f"{ENV_VAR} is not set"))
    tried: set[int] = set()
    for path in port_file_paths() if port_files is None else port_files:
        if not path.is_file():
            steps.append(DiscoveryStep("port_file", str(path), None, "missing", "no such file"))
            continue
        port = read_port_file(path)
        if port is None:
            steps.append(DiscoveryStep("port_file", str(path), None, "no_port", "the file holds no port number"))
            continue
        if port in tried:
            steps.append(DiscoveryStep("port_file", str(path), port, "duplicate", f"port {port} was already tried"))
            continue
        tried.add(port)
        now = time.monotonic()
        if search.expired(now):
            steps.append(DiscoveryStep("port_file", str(path), port, "out_of_time", _out_of_time(search)))
            continue
        check, _ = probe_health(f"http://{host}:{port}", search.within(now, timeout))
        if check.looks_like_pieces_os:
            logger.debug("found Pieces OS at %s (from the port file %s)", check.url, path)
            steps.append(DiscoveryStep("port_file", str(path), port, "pieces_os", check.detail, True))
            return DiscoveryTrace(steps, check.url)
        logger.debug("the port file %s names port %d, but %s", path, port, check.detail)
        outcome = "not_pieces_os" if check.answered else "no_answer"
        steps.append(DiscoveryStep("port_file", str(path), port, outcome, check.detail))
    for port in ports:
        if port in tried:
            continue
        url = f"http://{host}:{port}"
        now = time.monotonic()
        if search.expired(now):
            steps.append(DiscoveryStep("scan", url, port, "out_of_time", _out_of_time(search)))
            continue
        check, seen = probe_health(url, search.within(now, timeout))
        if not seen.connected:
            detail = seen.problem if seen.timed_out else "nothing listens"
            steps.append(DiscoveryStep("scan", url, port, "closed", detail))
        elif check.looks_like_pieces_os:
            logger.debug("found Pieces OS at %s", check.url)
            steps.append(DiscoveryStep("scan", url, port, "pieces_os", check.detail, True))
            return DiscoveryTrace(steps, check.url)
        elif check.answered:
            logger.debug("passing over %s: %s", check.url, check.detail)
            steps.append(DiscoveryStep("scan", url, port, "not_pieces_os", check.detail))
        else:
            steps.append(DiscoveryStep("scan", url, port, "no_answer", check.detail))
    return DiscoveryTrace(steps, None)


def find_pieces_os(
    ports: Iterable[int] = CANDIDATE_PORTS,
    host: str = "localhost",
    timeout: float = PROBE_TIMEOUT,
    port_files: Optional[Iterable[Path]] = None,
    *,
    total: Optional[float] = SEARCH_TIMEOUT,
) -> Optional[str]:
    """The base URL of a running Pieces OS, or None (see the module docstring for the order).

    ``port_files`` replaces the default port file locations (:func:`port_file_paths`). Each
    probe is over within ``timeout`` seconds, the whole search within ``total`` seconds
    (``None``: no bound on the whole). A refused port costs microseconds on loopback, so the
    whole search takes milliseconds when nothing runs.

    :raises ApiValueError: ``PIECES_OS_URL`` is not a usable URL (the message says why).
    :raises ApiConnectionError: ``PIECES_OS_URL`` names a server that answers but is not Pieces OS.

    :func:`trace_discovery` is the same search, step by step.
    """
    global _last_search
    steps, url = trace_discovery(ports, host, timeout, port_files, total=total)
    last = steps[-1]
    if last.source == "env" and last.outcome == "invalid":
        raise _invalid_env(last.where, last.detail)
    if last.source == "env" and last.outcome == "not_pieces_os":
        raise _not_pieces_os(last.where, HealthCheck(last.where, True, False, last.detail))
    if url is not None:
        if last.source != "env":
            _last_search = ((), "")
        return url
    passed_over: List[str] = []
    untried: List[int] = []
    for step in steps:
        if step.outcome == "not_pieces_os":
            origin = " (from the port file)" if step.source == "port_file" else ""
            passed_over.append(f"port {step.port}{origin}: {step.detail}")
        elif step.outcome == "out_of_time" and step.port is not None:
            untried.append(step.port)
    cut_short = ""
    if untried:
        cut_short = (f"the search stopped after {seconds_text(total)} (discovery_timeout) before trying "
                     f"port{'s' if len(untried) > 1 else ''} {port_ranges(untried)}")
    _last_search = (tuple(passed_over[:5]), cut_short)
    return None
