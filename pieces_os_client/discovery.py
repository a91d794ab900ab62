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
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Iterable, Iterator, List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

__all__ = [
    "CANDIDATE_PORTS",
    "ENV_VAR",
    "HEALTH_PATH",
    "DiscoveryStep",
    "DiscoveryTrace",
    "HealthCheck",
    "candidate_urls",
    "check_health",
    "find_pieces_os",
    "is_pieces_os",
    "port_file_paths",
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

logger = logging.getLogger("pieces_os_client")

# Servers the latest search passed over, for the "nothing found" error (replaced whole, never
# mutated, so readers on other threads see one search's list or another's, never a mix).
_passed_over: Tuple[str, ...] = ()


class HealthCheck(NamedTuple):
    """What ``GET /.well-known/health`` on one base URL showed."""

    url: str
    answered: bool  # an HTTP response came back at all
    looks_like_pieces_os: bool
    detail: str  # what was seen, for messages: "answered 404 Not Found", "connection refused", ...


def candidate_urls(ports: Iterable[int] = CANDIDATE_PORTS, host: str = "localhost") -> Iterator[str]:
    for port in ports:
        yield f"http://{host}:{port}"


def check_health(url: str, timeout: float = 0.5) -> HealthCheck:
    """Ask ``url`` for ``/.well-known/health`` (within ``timeout`` per step) and judge the answer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return HealthCheck(url, False, False, "not an http:// or https:// URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return HealthCheck(url, False, False, "the port is not a number from 0 to 65535")
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, port, timeout=timeout)
    try:
        conn.request("GET", parts.path.rstrip("/") + HEALTH_PATH, headers={"Accept": "text/plain"})
        response = conn.getresponse()
        body = response.read(_READ_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        return HealthCheck(url, False, False, str(exc) or type(exc).__name__)
    finally:
        conn.close()
    if response.status == 200 and body.strip()[:2].lower() == b"ok":
        return HealthCheck(url, True, True, "answered 200 ok")
    seen = f"answered {response.status} {response.reason}".rstrip()
    if response.status == 200:
        seen += f" with {body[:40]!r}" if body else " with an empty body"
    return HealthCheck(url, True, False, f"GET {HEALTH_PATH} {seen}, not Pieces OS's 200 ok")


def is_pieces_os(url: str, timeout: float = 0.5) -> bool:
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


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tilde(path: Path) -> str:
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except (ValueError, RuntimeError):
        return str(path)


def searched_places() -> str:
    """Where :func:`find_pieces_os` looks, in words, and what the latest search passed over."""
    files = " or ".join(_tilde(path) for path in port_file_paths())
    text = f"{ENV_VAR}, the port file {files} and ports 39300-39333, 1000 and 5323"
    if _passed_over:
        text += "; passed over, as not Pieces OS: " + "; ".join(_passed_over)
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


class DiscoveryStep(NamedTuple):
    """One place :func:`trace_discovery` looked, and what it found there.

    ``source`` is ``"env"`` (``PIECES_OS_URL``), ``"port_file"`` or ``"scan"``. ``where`` is
    the variable's value, the file's path or the scanned URL. ``outcome`` is one of:

    * ``"unset"`` — ``PIECES_OS_URL`` is not set;
    * ``"missing"`` — no port file there; ``"no_port"`` — the file holds no port number;
      ``"duplicate"`` — it names a port already tried;
    * ``"closed"`` — nothing listens on the port;
    * ``"no_answer"`` — something is there (or was named) but no HTTP answer came back;
    * ``"not_pieces_os"`` — a server answered, but not as Pieces OS does;
    * ``"pieces_os"`` — Pieces OS (or the emulator) answered.
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


def trace_discovery(
    ports: Iterable[int] = CANDIDATE_PORTS,
    host: str = "localhost",
    timeout: float = 0.5,
    port_files: Optional[Iterable[Path]] = None,
) -> DiscoveryTrace:
    """Search as :func:`find_pieces_os` does, and return every step as data (for diagnostics).

    The search stops where :func:`find_pieces_os` stops: at the first Pieces OS, or at
    ``PIECES_OS_URL`` when it is set. Never raises for what it finds: a ``PIECES_OS_URL`` that
    names a server which is not Pieces OS is a step with outcome ``"not_pieces_os"`` (and no url).
    """
    steps: List[DiscoveryStep] = []
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        url = explicit.rstrip("/")
        check = check_health(url, timeout)
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
        check = check_health(f"http://{host}:{port}", timeout)
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
        if not _port_open(host, port, timeout):
            steps.append(DiscoveryStep("scan", url, port, "closed", "nothing listens"))
            continue
        check = check_health(url, timeout)
        if check.looks_like_pieces_os:
            logger.debug("found Pieces OS at %s", check.url)
            steps.append(DiscoveryStep("scan", url, port, "pieces_os", check.detail, True))
            return DiscoveryTrace(steps, check.url)
        if check.answered:
            logger.debug("passing over %s: %s", check.url, check.detail)
            steps.append(DiscoveryStep("scan", url, port, "not_pieces_os", check.detail))
        else:
            steps.append(DiscoveryStep("scan", url, port, "no_answer", check.detail))
    return DiscoveryTrace(steps, None)


def find_pieces_os(
    ports: Iterable[int] = CANDIDATE_PORTS,
    host: str = "localhost",
    timeout: float = 0.5,
    port_files: Optional[Iterable[Path]] = None,
) -> Optional[str]:
    """The base URL of a running Pieces OS, or None (see the module docstring for the order).

    ``port_files`` replaces the default port file locations (:func:`port_file_paths`).
    A refused port costs microseconds on loopback, so the whole search takes milliseconds
    when nothing runs. Raises ``ApiConnectionError`` when ``PIECES_OS_URL`` names a server
    that answers but is not Pieces OS. :func:`trace_discovery` is the same search, step by step.
    """
    global _passed_over
    steps, url = trace_discovery(ports, host, timeout, port_files)
    last = steps[-1]
    if last.source == "env" and last.outcome == "not_pieces_os":
        raise _not_pieces_os(last.where, HealthCheck(last.where, True, False, last.detail))
    if url is not None:
        if last.source != "env":
            _passed_over = ()
        return url
    passed_over: List[str] = []
    for step in steps:
        if step.outcome == "not_pieces_os":
            origin = " (from the port file)" if step.source == "port_file" else ""
            passed_over.append(f"port {step.port}{origin}: {step.detail}")
    _passed_over = tuple(passed_over[:5])
    return None
