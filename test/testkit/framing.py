"""Malformed and stalled answers, one table for both clients.

Each :class:`Case` is the raw bytes a server on 127.0.0.1 sends after reading a request head,
and the one outcome both clients must give for it: the result, or the SDK error's class, a
fragment of its message and the phase of the exchange its message names. The sync client runs
the table in test/sync/test_framing.py, the asyncio client in test/aio/test_framing.py, which
also runs the sync client beside it and compares the two messages whole.

Stalls end by the client's own read timeout (:data:`SETTINGS`); every server connection ends
by itself when the client goes, or at :data:`LIFETIME` at the latest.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    OpenApiException,
    ResponseFormatError,
    ResponseTooLargeError,
)

#: the operation every case answers, and the ids its body holds when it succeeds
PATH = "/conversations/identifiers"
BODY = b'{"iterable":[{"id":"a"}]}'
IDS = ["a"]
#: the client settings of every case (a case may change some): stalls end at the read timeout,
#: which leaves the server's first bytes a second to arrive; one retry, so a test sees which
#: answers are sent again
SETTINGS: Dict[str, Any] = {
    "read_timeout": 1.0, "max_retries": 1, "backoff_factor": 0.0, "backoff_jitter": 0.0,
    "max_response_size": 1 << 20,
}
#: the longest a server connection lives
LIFETIME = 10.0
#: what each phase's message says: the part of the exchange that went wrong
PHASES = {
    "head": "did not finish the status line and headers",
    "framing": "with a malformed response",
    "size": "is larger than max_response_size allows",
    "body": "while reading the response body",
}
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
LENGTH = str(len(BODY)).encode()
CHUNKED_BODY = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)


@dataclass(frozen=True)
class Case:
    """One answer and its outcome (``error`` None: the call returns :data:`IDS`)."""

    name: str
    answer: bytes
    error: Optional[type] = None
    fragment: str = ""  # in the message, after str.format(host=..., url=...)
    phase: str = ""  # a key of PHASES
    requests: int = 1  # requests the server reads, retries included
    repeat: bytes = b""  # sent again every `every` seconds after the answer, until the client goes
    every: float = 0.05
    close: bool = False  # close the connection after the answer (else keep it open, as keep-alive)
    settings: Dict[str, Any] = field(default_factory=dict)


STALLS = {"max_retries": 0}  # a stall costs a read timeout per attempt: one attempt

CASES: List[Case] = [
    Case("head stalls after its first bytes", b"HTTP/1.1 200 OK\r\nContent-Type: appl", ApiTimeoutError,
         "began answering GET {url} but did not finish the status line and headers within the read timeout "
         "(1.0 s; it bounds the whole response head) (", "head", settings=STALLS),
    Case("head trickled line by line", b"HTTP/1.1 200 OK\r\n", ApiTimeoutError,
         "began answering GET {url} but did not finish the status line and headers", "head",
         repeat=b"X-Slow: 1\r\n", settings=STALLS),
    Case("endless 100 Continue", b"HTTP/1.1 100 Continue\r\n\r\n", ApiTimeoutError,
         "began answering GET {url} but did not finish the status line and headers", "head",
         repeat=b"HTTP/1.1 100 Continue\r\n\r\n", every=0.01, settings=STALLS),
    Case("equal Content-Length fields", HEAD + b"Content-Length: %s\r\nContent-Length: %s\r\n\r\n%s"
         % (LENGTH, LENGTH, BODY)),
    Case("equal Content-Length list", HEAD + b"Content-Length: %s, %s\r\n\r\n%s" % (LENGTH, LENGTH, BODY)),
    Case("differing Content-Length fields", HEAD + b"Content-Length: %s\r\nContent-Length: 99\r\n\r\n%s"
         % (LENGTH, BODY), ResponseFormatError,
         f"Pieces OS at {{host}} answered 200 with a malformed response: its Content-Length values differ "
         f"('{len(BODY)}', '99')", "framing"),
    Case("differing Content-Length list", HEAD + b"Content-Length: %s, 99\r\n\r\n%s" % (LENGTH, BODY),
         ResponseFormatError, f"its Content-Length values differ ('{len(BODY)}', '99')", "framing"),
    Case("negative Content-Length", HEAD + b"Content-Length: -1\r\n\r\n" + BODY, ResponseFormatError,
         "answered 200 with a malformed response: Content-Length '-1' is not a number of bytes", "framing"),
    Case("non-numeric Content-Length", HEAD + b"Content-Length: abc\r\n\r\n" + BODY, ResponseFormatError,
         "answered 200 with a malformed response: Content-Length 'abc' is not a number of bytes", "framing"),
    Case("Transfer-Encoding with Content-Length", HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 1000\r\n\r\n"
         + CHUNKED_BODY),
    Case("a transfer coding other than chunked", HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + CHUNKED_BODY,
         ResponseFormatError, "Transfer-Encoding 'gzip, chunked', which the client cannot read", "framing"),
    Case("Content-Length of 10**30", HEAD + b"Content-Length: %d\r\n\r\n%s" % (10**30, BODY), ResponseTooLargeError,
         "The response from {host} (status 200) is larger than max_response_size allows (1048576 bytes, 1 MiB): "
         "its Content-Length is 1000000000000000000000000000000 bytes", "size"),
    Case("Content-Length beyond the body, then close", HEAD + b"Content-Length: 1000\r\n\r\n" + BODY,
         ApiConnectionError,
         f"The connection to {{host}} broke while reading the response body (status 200): Connection broken: "
         f"IncompleteRead({len(BODY)} bytes read, {1000 - len(BODY)} more expected)", "body",
         requests=2, close=True),  # a GET whose body broke off is sent once more
]

class Result(NamedTuple):
    """A call that succeeded: the ids it returned and the response headers (as the client shows them)."""

    ids: List[str]
    headers: List[Tuple[str, str]]

    @classmethod
    def of(cls, ids: List[str], headers: Optional[Mapping[str, str]]) -> Result:
        return cls(ids, sorted((name.lower(), value) for name, value in (headers or {}).items()))


Outcome = Union[Result, OpenApiException]


def settings_of(case: Case) -> Dict[str, Any]:
    return {**SETTINGS, **case.settings}


def check(case: Case, outcome: Outcome, host: str) -> None:
    """``outcome`` (ids, or the error raised) is the one ``case`` calls for, against a server at ``host``."""
    if case.error is None:
        assert isinstance(outcome, Result) and outcome.ids == IDS, outcome
        return
    assert type(outcome) is case.error, repr(outcome)
    message = str(outcome)
    assert case.fragment.format(host=host, url=host + PATH) in message, message
    assert PHASES[case.phase] in message, message
    for other, words in PHASES.items():
        assert other == case.phase or words not in message, message


def shown(outcome: Outcome, host: str) -> str:
    """``outcome`` as text to compare between the clients (the host, and byte counts that vary, masked)."""
    if isinstance(outcome, Result):
        return repr(outcome)
    text = f"{type(outcome).__name__}: {outcome}".replace(host, "{host}")
    return re.sub(r"\(\d+ bytes arrived\)", "(N bytes arrived)", text)


def sync_call(host: str, case: Case) -> Outcome:
    """The case's call through the sync client."""
    with ApiClient(Configuration(host=host, **settings_of(case))) as client:
        try:
            result = ConversationsApi(client).conversations_identifiers_snapshot_with_http_info()
        except OpenApiException as exc:
            return exc
    return Result.of([item.id for item in result.data.iterable], result.headers)


class AnswerServer:
    """A raw HTTP/1.1 server on 127.0.0.1 giving ``case.answer`` to every request; ``requests`` counts them."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> AnswerServer:
        self._threads[0].start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(LIFETIME)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        case, end = self.case, time.monotonic() + LIFETIME
        with conn:
            conn.settimeout(0.05)
            try:
                while self._read_head(conn, end):
                    with self._lock:
                        self.requests += 1
                    conn.sendall(case.answer)
                    if case.close:
                        return
                    while case.repeat and time.monotonic() < end and not self._stop.is_set():
                        time.sleep(case.every)
                        conn.sendall(case.repeat)  # fails once the client has closed the connection
            except OSError:
                return

    def _read_head(self, conn: socket.socket, end: float) -> bool:
        """Read one request head (the SDK's GET has no body); False when the client went or time is up."""
        data = b""
        while b"\r\n\r\n" not in data:
            if self._stop.is_set() or time.monotonic() > end:
                return False
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return False
            data += chunk
        return True
