"""Find a running Pieces OS on this machine.

Pieces OS has listened on different ports over time: 1000 (macOS/Windows, before 11),
5323 (Linux, before 11), and since version 11 the first free port in 39300-39333. A host
answers when ``GET /.well-known/health`` returns 200. The ``PIECES_OS_URL`` environment
variable, when set, wins over any scan.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
from typing import Iterable, Iterator, Optional

__all__ = ["CANDIDATE_PORTS", "ENV_VAR", "candidate_urls", "find_pieces_os", "is_pieces_os"]

ENV_VAR = "PIECES_OS_URL"
CANDIDATE_PORTS: tuple[int, ...] = (*range(39300, 39334), 1000, 5323)

logger = logging.getLogger("pieces_os_client")


def candidate_urls(ports: Iterable[int] = CANDIDATE_PORTS, host: str = "localhost") -> Iterator[str]:
    for port in ports:
        yield f"http://{host}:{port}"


def is_pieces_os(url: str, timeout: float = 0.5) -> bool:
    """True when ``url`` answers ``GET /.well-known/health`` with 200 within ``timeout``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, port, timeout=timeout)
    try:
        conn.request("GET", parts.path.rstrip("/") + "/.well-known/health")
        response = conn.getresponse()
        response.read(4096)
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_pieces_os(
    ports: Iterable[int] = CANDIDATE_PORTS, host: str = "localhost", timeout: float = 0.5
) -> Optional[str]:
    """The base URL of a running Pieces OS, or None.

    ``PIECES_OS_URL`` is returned as is when set (it is the user's explicit choice). Else
    each candidate port is tried: a refused port costs microseconds on loopback, so the
    whole scan takes milliseconds when nothing runs.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return explicit.rstrip("/")
    for port in ports:
        if not _port_open(host, port, timeout):
            continue
        url = f"http://{host}:{port}"
        if is_pieces_os(url, timeout):
            logger.debug("found Pieces OS at %s", url)
            return url
    return None
