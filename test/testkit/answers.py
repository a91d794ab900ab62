"""Hostile answers, for both clients' hostile-server tests: a server that answers every request
with bytes the test chooses, Hypothesis strategies for such answers, and the oracle that says
which outcome docs/errors.md promises for each.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any, NamedTuple, Optional

from hypothesis import strategies as st

from pieces_os_client import ApiResponse
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiException,
    BadRequestException,
    ConflictException,
    ForbiddenException,
    NotFoundException,
    OpenApiException,
    ResponseFormatError,
    ServiceException,
    TooManyRequestsException,
    UnauthorizedException,
    UnprocessableEntityException,
)
from pieces_os_client.models import (
    Conversation,
    Conversations,
    ConversationsCreateFromAssetOutput,
    FlattenedConversations,
)


class ScriptedServer:
    """Answers every HTTP request with ``self.response`` (raw bytes), then closes the connection."""

    def __init__(self) -> None:
        self.response = b""
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="scripted-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                self._read_request(conn)
                self.requests += 1
                conn.sendall(self.response)
                conn.shutdown(socket.SHUT_WR)

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def http_response(status: int, body: bytes, headers: list[tuple[str, str]] | None = None, *,
                  content_length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    names = {name.lower() for name, _ in headers or []}
    lines += [f"{name}: {value}" for name, value in headers or []]
    if "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ---------------------------------------------------------------- strategies
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)

CONVERSATION = {
    "id": "c1",
    "created": {"value": "2024-01-01T00:00:00Z"},
    "updated": {"value": "2024-01-01T00:00:00Z"},
    "messages": {"iterable": []},
    "type": "COPILOT",
}
DOCUMENTS = [
    {"iterable": [{"id": "a"}]},
    {"iterable": [CONVERSATION]},
    CONVERSATION,
    {"conversation": {"id": "c1", "reference": CONVERSATION}},
]


@st.composite
def mangled_documents(draw: st.DrawFn) -> bytes:
    """A real document with one part replaced by something else (wrong type, null, unknown value)."""
    document = json.loads(json.dumps(draw(st.sampled_from(DOCUMENTS))))
    node = document
    path = draw(st.lists(st.sampled_from(["iterable", 0, "reference", "conversation", "messages", "type",
                                          "created", "value", "id"]), max_size=4))
    for step in path:
        if isinstance(node, dict) and isinstance(step, str) and step in node and isinstance(node[step], (dict, list)):
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and node and isinstance(node[0], (dict, list)):
            node = node[0]
    key = draw(st.sampled_from(["id", "type", "iterable", "created", "value", "messages", "extra_field"]))
    if isinstance(node, dict):
        node[key] = draw(json_values)
    return json.dumps(document).encode()


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"iterable": [], "x": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    return b'{"iterable": [{"id": "a", "reference": ' * depth + b"{}" + b"}]}" * depth


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(nested, st.integers(1, 50_000), st.sampled_from(["array", "object", "references"])),
    st.sampled_from([
        b"",
        b"null",
        b'{"iterable": [{"id": "' + b"x" * 2_000_000 + b'"}]}',
        b'{"iterable": [{"id": "\xff\xfe"}]}',
        "{\"iterable\": [{\"id\": \"\u00e9\u2603\"}]}".encode("utf-16"),
        b"<html><body>Not JSON</body></html>",
    ]),
    mangled_documents(),
)
statuses = st.one_of(
    st.sampled_from([200, 200, 200, 201, 204, 301, 400, 404, 418, 429, 500, 503]),
    st.integers(100, 999),
)
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
    "application/json; charset=nonsense", "text/plain", "text/html", "application/octet-stream", "", "*/*",
])
extra_headers = st.lists(
    st.sampled_from([
        ("Content-Encoding", "gzip"), ("Content-Encoding", "deflate"), ("Content-Encoding", "br"),
        ("Content-Encoding", "zstd"), ("Content-Encoding", "bogus"), ("Transfer-Encoding", "chunked"),
        ("Retry-After", "soon"), ("Retry-After", "99999999999"),
        ("Content-Length", "-5"), ("Content-Length", "abc"), ("X-Empty", ""),
    ]),
    max_size=2,
    unique_by=lambda h: h[0],
)


class Drawn(NamedTuple):
    """A generated answer: its bytes, and what they say (for predicting the documented outcome)."""

    raw: bytes
    status: Optional[int] = None  # None: not an HTTP answer at all
    body: bytes = b""
    clean: bool = False  # framed plainly: the declared length is the body's, no encoding claimed


FRAMING_HEADERS = {"content-length", "transfer-encoding", "content-encoding"}


@st.composite
def responses(draw: st.DrawFn) -> Drawn:
    if draw(st.integers(0, 9)) == 0:  # sometimes not HTTP at all
        return Drawn(draw(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"HTTP/1.1 " + b))))
    body = draw(bodies)
    headers = list(draw(extra_headers))
    content_type = draw(content_types)
    if content_type:
        headers.append(("Content-Type", content_type))
    length = draw(st.none() | st.integers(0, len(body) + 100))
    status = draw(statuses)
    clean = (length is None or length == len(body)) and not any(n.lower() in FRAMING_HEADERS for n, _ in headers)
    return Drawn(http_response(status, body, headers, content_length=length), status, body, clean)


#: the class each error status raises (docs/errors.md); 5xx is ServiceException, the rest ApiException
STATUS_CLASSES: dict[int, type[ApiException]] = {
    400: BadRequestException, 401: UnauthorizedException, 403: ForbiddenException, 404: NotFoundException,
    409: ConflictException, 422: UnprocessableEntityException, 429: TooManyRequestsException,
}


def error_class(status: int) -> type[ApiException]:
    return ServiceException if 500 <= status <= 599 else STATUS_CLASSES.get(status, ApiException)


#: what each operation returns on success (delete: nothing)
RESULT_TYPES: dict[str, Any] = {
    "identifiers": FlattenedConversations, "snapshot": Conversations, "create": Conversation,
    "from_asset": ConversationsCreateFromAssetOutput, "delete": type(None), "identifiers_info": ApiResponse,
}


def check_documented_outcome(drawn: Drawn, operation: str, outcome: Any) -> None:
    """The outcome docs/errors.md promises for this answer, as far as the answer decides it."""
    if not isinstance(outcome, OpenApiException):  # a result: of the operation's type, for a 2xx only
        assert type(outcome) is RESULT_TYPES[operation], (operation, outcome)
        assert drawn.status is not None and 200 <= drawn.status <= 299, (drawn.status, operation)
        if operation == "identifiers_info":
            assert outcome.status_code == drawn.status and type(outcome.data) is FlattenedConversations
        if operation != "delete":
            json.loads(drawn.body)  # a typed result came from a body that is JSON
        return
    if drawn.status is None or not drawn.clean:
        return  # not HTTP, or framing the answer itself garbles: any SDK error says so
    if drawn.status < 200:  # an interim answer with nothing after it: the answer never came
        assert isinstance(outcome, ApiConnectionError), (drawn.status, repr(outcome))
    elif drawn.status >= 300:
        # an error status (redirects are not followed; 600-999 are kept as sent): the class the
        # status names, carrying it
        assert type(outcome) is error_class(drawn.status), (drawn.status, repr(outcome))
        assert outcome.status == drawn.status and str(outcome).startswith(f"({drawn.status})")
    else:  # a success status with a body that is not the operation's document
        assert type(outcome) is ResponseFormatError, (drawn.status, operation, repr(outcome))
        assert f"answered {drawn.status}" in str(outcome), str(outcome)


