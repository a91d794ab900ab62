"""Every error the SDK raises, in one tree.

::

    OpenApiException                         (official root: catch-all for SDK errors)
    ├── ApiTypeError        (+ TypeError)    a wrong argument type, raised before any request
    ├── ApiValueError       (+ ValueError)   a wrong argument value, raised before any request
    ├── ApiKeyError         (+ KeyError)
    ├── ApiAttributeError   (+ AttributeError)
    ├── ApiException                         the server answered, but not with success
    │   ├── BadRequestException              400
    │   ├── UnauthorizedException            401
    │   ├── ForbiddenException               403
    │   ├── NotFoundException                404
    │   ├── ConflictException                409
    │   ├── UnprocessableEntityException     422
    │   ├── TooManyRequestsException         429
    │   ├── ServiceException                 5xx
    │   └── ResponseFormatError              the body is not what the API promises
    │       └── ResponseTooLargeError        the body is larger than max_response_size
    ├── ApiConnectionError  (+ urllib3 MaxRetryError)  Pieces OS could not be reached
    │   └── ApiTimeoutError (+ TimeoutError)           it was reached but did not answer in time
    └── StreamError                          the identifiers WebSocket failed
        └── StreamClosedError                used after close(), or closed by the server for good

Nothing from urllib3, pydantic, json or websocket-client escapes the SDK unwrapped: the
original exception is always kept as ``__cause__``.

An exception never holds a whole response body: ``body`` (and ``data`` when it is text) keeps
at most the first :data:`ERROR_BODY_LIMIT` bytes, followed by a marker saying how much was cut.

``ApiConnectionError`` also derives from ``urllib3.exceptions.MaxRetryError`` so code written
against the official SDK, which catches that urllib3 error around calls, keeps working.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from urllib3.exceptions import MaxRetryError

__all__ = [
    "ERROR_BODY_LIMIT",
    "ApiAttributeError",
    "ApiConnectionError",
    "ApiException",
    "ApiKeyError",
    "ApiTimeoutError",
    "ApiTypeError",
    "ApiValueError",
    "BadRequestException",
    "ConflictException",
    "ForbiddenException",
    "NotFoundException",
    "OpenApiException",
    "ResponseFormatError",
    "ResponseTooLargeError",
    "ServiceException",
    "StreamClosedError",
    "StreamError",
    "TooManyRequestsException",
    "UnauthorizedException",
    "UnprocessableEntityException",
    "render_path",
]

PathItem = Union[str, int]

#: The most of a response body (in bytes, or characters for text) an exception keeps.
ERROR_BODY_LIMIT = 64 * 1024
_MARKER_ROOM = 100  # the "... [cut: ...]" marker fits in this many characters


def body_excerpt(raw: Union[bytes, bytearray], encoding: str = "utf-8") -> str:
    """``raw`` as text, at most :data:`ERROR_BODY_LIMIT` bytes of it, with a marker if cut."""
    kept = raw if len(raw) <= ERROR_BODY_LIMIT else raw[:ERROR_BODY_LIMIT]
    try:
        text = bytes(kept).decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        text = bytes(kept).decode("utf-8", errors="replace")
    return text if kept is raw else text + _cut_marker(len(raw), "bytes")


def bounded_text(text: str) -> str:
    """``text`` cut to :data:`ERROR_BODY_LIMIT` characters, with a marker if cut."""
    if len(text) <= ERROR_BODY_LIMIT + _MARKER_ROOM:  # short, or already cut by body_excerpt
        return text
    return text[:ERROR_BODY_LIMIT] + _cut_marker(len(text), "characters")


def _cut_marker(total: int, unit: str) -> str:
    return f"... [cut: {total - ERROR_BODY_LIMIT} of {total} {unit} not kept]"


def unknown_names_message(what: str, unknown: Sequence[str], valid: Sequence[str]) -> str:
    """``"unknown <what>: a, b (did you mean x?). Valid <what>s: ..."`` for misspelled names."""
    import difflib  # only on this error path

    names = sorted(unknown)
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.75)
        if close:
            hints.append(f"{name}: did you mean {close[0]}?" if len(names) > 1 else f"did you mean {close[0]}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    plural = "s" if len(names) > 1 else ""
    return f"unknown {what}{plural}: {', '.join(names)}{hint}. Valid {what}s: {', '.join(sorted(valid))}"


def render_path(path_to_item: Optional[Sequence[PathItem]]) -> str:
    """Render a location inside nested data as ``['a'][0]`` (the official helper)."""
    return "".join(f"[{item}]" if isinstance(item, int) else f"['{item}']" for item in path_to_item or ())


class OpenApiException(Exception):
    """Root of every exception this package raises."""


class _LocatedError(OpenApiException):
    """An argument error that can say where, inside nested data, the bad value sits."""

    def __init__(
        self,
        msg: str,
        path_to_item: Optional[Sequence[PathItem]] = None,
        valid_classes: Optional[tuple[type, ...]] = None,
        key_type: Optional[bool] = None,
    ) -> None:
        self.path_to_item = list(path_to_item) if path_to_item else None
        self.valid_classes = valid_classes
        self.key_type = key_type
        if path_to_item:
            msg = f"{msg} at {render_path(path_to_item)}"
        super().__init__(msg)


class ApiTypeError(_LocatedError, TypeError):
    """An argument has the wrong type. Raised before anything is sent."""


class ApiValueError(_LocatedError, ValueError):
    """An argument has a value the API cannot take. Raised before anything is sent."""


class ApiAttributeError(_LocatedError, AttributeError):
    """An attribute that does not exist was asked for."""


class ApiKeyError(_LocatedError, KeyError):
    """A key that does not exist was asked for."""


class ApiException(OpenApiException):
    """The server answered with a status that is not a success.

    Attributes (the official ones): ``status``, ``reason``, ``body`` (the body as text),
    ``data`` (the body decoded, when it could be), ``headers``. A body longer than
    :data:`ERROR_BODY_LIMIT` is kept as its first part plus a marker saying how much was cut.
    """

    def __init__(
        self,
        status: Optional[int] = None,
        reason: Optional[str] = None,
        http_resp: Any = None,
        *,
        body: Optional[str] = None,
        data: Any = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.body = bounded_text(body) if isinstance(body, str) else body
        self.data = bounded_text(data) if isinstance(data, str) else data
        self.headers = headers
        if http_resp is not None:
            if self.status is None:
                self.status = getattr(http_resp, "status", None)
            if self.reason is None:
                self.reason = getattr(http_resp, "reason", None)
            if self.body is None:
                raw = getattr(http_resp, "data", None)
                if isinstance(raw, (bytes, bytearray)):
                    self.body = body_excerpt(raw)
            if self.headers is None:
                self.headers = _headers_of(http_resp)
        super().__init__(self.status, self.reason, self.body)

    @classmethod
    def from_response(
        cls,
        *,
        http_resp: Any,
        body: Optional[str],
        data: Any,
    ) -> ApiException:
        """Build the exception that fits the response's status (official signature)."""
        status = int(getattr(http_resp, "status", 0) or 0)
        exc_class = exception_class_for_status(status)
        return exc_class(http_resp=http_resp, body=body, data=data)

    def __str__(self) -> str:
        lines = [f"({self.status})", f"Reason: {self.reason}"]
        if self.headers:
            lines.append(f"HTTP response headers: {dict(self.headers)}")
        if isinstance(self.data, str):
            lines.append(f"HTTP response body: {_snippet(self.data)}")
        elif self.data is not None:
            lines.append(f"HTTP response body: {self.data}")
        elif self.body:
            lines.append(f"HTTP response body: {_snippet(self.body)}")
        return "\n".join(lines) + "\n"


class BadRequestException(ApiException):
    """400: the server rejected the request as malformed."""


class UnauthorizedException(ApiException):
    """401: the request needs credentials it did not carry."""


class ForbiddenException(ApiException):
    """403: the credentials do not allow this."""


class NotFoundException(ApiException):
    """404: no such path or resource."""


class ConflictException(ApiException):
    """409: the request conflicts with the server's current state."""


class UnprocessableEntityException(ApiException):
    """422: the request was well-formed but its content was refused."""


class TooManyRequestsException(ApiException):
    """429: the server asks the client to slow down."""


class ServiceException(ApiException):
    """5xx: the server failed. Pieces OS puts its reason in the text body."""


class ResponseFormatError(ApiException):
    """A body that is not what the API document promises.

    Mostly a success status with a body of the wrong form; with any status, a body in a
    ``Content-Encoding`` the request did not ask for (refused unread) or one too large
    (:class:`ResponseTooLargeError`). The message carries the status, the content type and,
    when the body was read, its first part. ``content_type`` holds the response's content type.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int],
        reason: Optional[str],
        body: Optional[str],
        headers: Optional[Mapping[str, str]],
        content_type: Optional[str],
    ) -> None:
        super().__init__(status, reason, body=body, headers=headers)
        self.content_type = content_type
        self.message = message

    def __str__(self) -> str:
        return self.message


class ResponseTooLargeError(ResponseFormatError):
    """The response body is larger than ``Configuration.max_response_size`` allows.

    Raised while reading, as soon as the limit is passed (or at once, when the
    ``Content-Length`` says so); the rest of the body is not read and the connection is
    dropped. ``limit`` is the limit in bytes, ``host`` the server that sent the body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int],
        reason: Optional[str],
        headers: Optional[Mapping[str, str]],
        content_type: Optional[str],
        limit: int,
        host: str,
    ) -> None:
        super().__init__(message, status=status, reason=reason, body=None, headers=headers,
                         content_type=content_type)
        self.limit = limit
        self.host = host


_STATUS_CLASSES: dict[int, type[ApiException]] = {
    400: BadRequestException,
    401: UnauthorizedException,
    403: ForbiddenException,
    404: NotFoundException,
    409: ConflictException,
    422: UnprocessableEntityException,
    429: TooManyRequestsException,
}


def exception_class_for_status(status: int) -> type[ApiException]:
    """The ``ApiException`` subclass for an HTTP status."""
    if 500 <= status <= 599:
        return ServiceException
    return _STATUS_CLASSES.get(status, ApiException)


class ApiConnectionError(OpenApiException, MaxRetryError):
    """The server could not be reached (refused, reset, DNS, TLS handshake, ...).

    ``host`` is the base URL that was tried; ``url`` the full request URL.
    """

    def __init__(self, message: str, *, host: str, url: str = "", method: str = "") -> None:
        # MaxRetryError keeps pool/url/reason; the pool is not exposed (it is internal state).
        MaxRetryError.__init__(self, None, url or host, None)  # type: ignore[arg-type]
        self.args = (message,)
        self.message = message
        self.host = host
        self.method = method

    def __reduce__(self) -> Any:  # pragma: no cover - pickling support for multiprocessing users
        return (_rebuild_connection_error, (type(self), self.message, self.host, self.url, self.method))

    def __str__(self) -> str:
        return self.message


class ApiTimeoutError(ApiConnectionError, TimeoutError):
    """The server was reached but did not answer (connect or read) within the timeout."""


def _rebuild_connection_error(
    cls: type[ApiConnectionError], message: str, host: str, url: Optional[str], method: str
) -> ApiConnectionError:
    return cls(message, host=host, url=url or "", method=method)


class StreamError(OpenApiException):
    """The identifiers WebSocket failed in a way the stream could not recover from."""


class StreamClosedError(StreamError):
    """The stream is closed: by ``close()``, or by the server with reconnects turned off."""


def _headers_of(http_resp: Any) -> Optional[Mapping[str, str]]:
    getter = getattr(http_resp, "getheaders", None) or getattr(http_resp, "headers", None)
    if callable(getter):
        result = getter()
        return dict(result) if result is not None else None
    if getter is not None:
        return dict(getter)
    return None


def _snippet(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
