"""The client side of RFC 6455, sans I/O: one object per connection, shared by both streams.

A shell (the sync stream on a blocking socket, the asyncio stream on a loop) makes a
:class:`ClientProtocol`, writes what :meth:`~ClientProtocol.data_to_send` returns, hands every
byte it reads to :meth:`~ClientProtocol.receive_data` (and the end of the stream to
:meth:`~ClientProtocol.receive_eof`) and acts on :meth:`~ClientProtocol.events_received`. The
object never touches a socket or a clock. It owns every protocol rule, once:

* the opening handshake's answer (:mod:`pieces_os_client._core.handshake`): a ``101`` with the
  right ``Sec-WebSocket-Accept``, no redirect followed, and no extension or subprotocol the
  client did not offer (it offers none);
* frame checks: reserved bits (no extension is ever agreed), a masked server frame, an unknown
  opcode, a fragmented or over-125-byte control frame, a 64-bit length with its top bit set,
  a continuation outside a message or a new message inside one: the connection fails with
  1002, which is sent;
* the message size bound (``max_message_size``), checked against each data frame's header --
  and the running total of a fragmented message -- before any of its payload is kept: 1009;
* fragments joined into one message, control frames allowed between them;
* text checked as UTF-8 as it arrives, fragment by fragment: 1007 at the first bad byte;
* a ping answered by a pong with the same payload;
* the close handshake: a close frame is checked (a 1-byte payload, a code that may not be sent
  such as 999, 1005 or 1006, or a reason that is not UTF-8 fail the connection), answered with
  the same code (an empty close when it had none), and never with a code that is not allowed
  on the wire. After the client sends a close (its own or to fail the connection) it waits at
  most :attr:`~ClientProtocol.close_timeout` seconds for the server's close frame or the end
  of the connection; the shell keeps that clock. After a failure no frame is parsed any more,
  and at most :attr:`~ClientProtocol.close_read_limit` bytes are read while waiting.

Binary messages: the identifiers stream carries JSON, which RFC 8259 defines as UTF-8 bytes.
A binary message is handed on like a text message (``Message.binary`` says which it was)
without the UTF-8 check of text; the stream's JSON parser refuses bytes that are not UTF-8
JSON, as a malformed message.
"""

from __future__ import annotations

import codecs
import enum
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

from pieces_os_client._core import handshake
from pieces_os_client._core.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    MessageTooLarge,
    ProtocolError,
    encode_frame,
)

__all__ = [
    "CLOSE_READ_LIMIT",
    "CLOSE_TIMEOUT",
    "ClientProtocol",
    "Close",
    "Event",
    "Failed",
    "Message",
    "Ping",
    "Pong",
    "State",
    "close_code_allowed",
]

#: seconds the client waits for the server's close after sending its own, unless told otherwise
CLOSE_TIMEOUT = 0.5
#: the status a close frame without a payload stands for (never sent, RFC 6455 section 7.4.1)
NO_STATUS = 1005
#: after failing, the most bytes read while waiting for the server's close before giving up on it,
#: unless told otherwise
CLOSE_READ_LIMIT = 64 * 1024


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class Message:
    """A whole message. ``data`` is the payload (UTF-8 checked for text), ``binary`` its kind."""

    data: Union[bytes, bytearray]
    binary: bool = False


@dataclass(frozen=True)
class Ping:
    data: bytes


@dataclass(frozen=True)
class Pong:
    data: bytes


@dataclass(frozen=True)
class Close:
    """The server's valid close frame: its code (1005 when it had none) and reason."""

    code: int
    reason: str


@dataclass(frozen=True)
class Failed:
    """The connection failed (``error.code`` was sent in a close frame, when one could be)."""

    error: ProtocolError


Event = Union[Message, Ping, Pong, Close, Failed]


def close_code_allowed(code: int) -> bool:
    """A status code an endpoint may put in a close frame (RFC 6455 section 7.4 and the IANA registry)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


class ClientProtocol:
    """One client WebSocket connection's protocol state.

    :param key: the ``Sec-WebSocket-Key`` sent with the upgrade request: the object starts in
        :attr:`State.CONNECTING` and reads the server's answer first. ``None``: the handshake
        was done elsewhere; the object starts :attr:`State.OPEN`.
    :param max_message_size: the largest message accepted, in bytes (``None``: no bound).
    :param close_timeout: how long a shell waits for the server's close after sending one.
    :param close_read_limit: after the connection failed, the most bytes read (and dropped) while
        waiting for the server's close; once more arrive the connection counts as closed.
    :param mask: where the 4-byte masks of the client's frames come from.
    """

    def __init__(
        self,
        key: Optional[str] = None,
        *,
        max_message_size: Optional[int] = None,
        close_timeout: float = CLOSE_TIMEOUT,
        close_read_limit: int = CLOSE_READ_LIMIT,
        offered_extensions: Sequence[str] = (),
        offered_protocols: Sequence[str] = (),
        mask: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.key = key
        self.state = State.CONNECTING if key is not None else State.OPEN
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        self.close_read_limit = close_read_limit
        self._offered_extensions = tuple(offered_extensions)
        self._offered_protocols = tuple(offered_protocols)
        self._mask = mask
        self._buffer = bytearray()
        self._events: List[Event] = []
        self._out: List[bytes] = []
        # the message being assembled from fragments
        self._opcode: Optional[int] = None
        self._fragments = bytearray()
        self._decoder: Optional[codecs.IncrementalDecoder] = None
        self._discarding = False  # after a failure: nothing more is parsed
        self._discarded = 0
        self._need = 0  # payload bytes of the current data frame still to come
        self._fin = False  # that frame ends its message
        self.close_sent = False
        #: the server's close frame, once received
        self.close_received: Optional[Close] = None
        #: why the connection failed, if it did
        self.failure: Optional[ProtocolError] = None
        #: the handshake answer and, when refused, what is wrong with it (state CLOSED)
        self.response: Optional[handshake.Response] = None
        self.refusal: Optional[str] = None
        self.eof = False

    # ------------------------------------------------------------------ output
    def data_to_send(self) -> bytes:
        """The bytes to write now, in order (``b""``: none)."""
        if not self._out:
            return b""
        out, self._out = self._out, []
        return out[0] if len(out) == 1 else b"".join(out)

    def events_received(self) -> List[Event]:
        """What the bytes received so far produced, in order; each event is returned once."""
        events, self._events = self._events, []
        return events

    def send_ping(self, data: bytes = b"") -> None:
        self._send_control(OP_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        self._send_control(OP_PONG, data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Begin the closing handshake (once); the connection is then :attr:`State.CLOSING`.

        :raises ValueError: a code that may not be sent, or a payload over 125 bytes.
        """
        if not close_code_allowed(code):
            raise ValueError(f"the close code {code} may not be sent")
        payload = code.to_bytes(2, "big") + reason.encode("utf-8")
        if len(payload) > 125:
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        if self.close_sent or self.state is not State.OPEN:
            return
        self._out.append(encode_frame(OP_CLOSE, payload, self._mask(4)))
        self.close_sent = True
        self.state = State.CLOSING

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection: send a close frame with ``code`` if none was sent, read no more frames."""
        self._fail(ProtocolError(reason, code))

    def _fail(self, error: ProtocolError) -> None:
        if self._discarding:
            return
        self._discarding = True
        self.failure = error
        if self.state is State.OPEN:
            self.send_close(error.code if close_code_allowed(error.code) else 1002, "")
        elif self.state is State.CONNECTING:
            self.state = State.CLOSED
        self._buffer = bytearray()  # a new one: the old may be in use by the caller
        self._fragments = bytearray()
        self._need = 0
        self._events.append(Failed(error))

    def _send_control(self, opcode: int, data: bytes) -> None:
        if len(data) > 125:
            raise ValueError("a control frame's payload is at most 125 bytes")
        if self.state is State.OPEN:
            self._out.append(encode_frame(opcode, bytes(data), self._mask(4)))

    # ------------------------------------------------------------------ input
    def receive_eof(self) -> None:
        """The server ended the TCP connection."""
        self.eof = True
        self.state = State.CLOSED

    def receive(self, data: Union[bytes, bytearray]) -> List[Event]:
        """What a socket read returned (``b""``: the end of the connection) in; the events it produced
        out. The bytes to write are then :meth:`data_to_send`'s."""
        if data:
            self.receive_data(data)
        else:
            self.receive_eof()
        return self.events_received()

    def receive_data(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Bytes read from the connection."""
        if self._discarding:
            self._discard(len(data))
            return
        if self.state is State.CLOSED and self.refusal is None:
            return
        if self._need:  # inside a long data frame: its payload goes straight into the message
            view = memoryview(data)
            take = min(self._need, len(view))
            self._need -= take
            self._append(view[:take])
            if not self._need and not self._discarding and self._fin:
                self._finish()
            data = view[take:]
            if self._discarding:
                self._discard(len(data))
                return
            if not data:
                return
        self._buffer += data
        if self.state is State.CONNECTING and not self._read_head():
            return
        self._read_frames()

    # ------------------------------------------------------------------ the handshake's answer
    def refusal_body(self, limit: int = 400) -> bytes:
        """The start of a refused answer's body, as far as it arrived."""
        return bytes(self._buffer[:limit])

    def _read_head(self) -> bool:
        """Read the handshake's answer as far as it came; ``True`` once it was accepted."""
        if self.refusal is not None:
            return False  # a refused answer's body: kept for the error message
        buf = self._buffer
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            end += 4
        else:
            lone = buf.find(b"\n\n")
            end = lone + 2 if lone >= 0 else -1
        if end < 0:
            if len(buf) >= handshake.HEAD_LIMIT:
                self._refuse(None, f"an answer over {handshake.HEAD_LIMIT} bytes without the end of its head")
            return False
        if end > handshake.HEAD_LIMIT:
            self._refuse(None, f"an answer over {handshake.HEAD_LIMIT} bytes without the end of its head")
            return False
        head = bytes(buf[:end])
        del buf[:end]
        try:
            response = handshake.parse_head(head)
        except ValueError as exc:
            self._refuse(None, f"not HTTP: {exc}")
            return False
        self.response = response
        assert self.key is not None
        problem = handshake.refusal(response, self.key, self._offered_extensions, self._offered_protocols)
        if problem is not None:
            self._refuse(response, problem)
            return False
        self.state = State.OPEN
        return True

    def _refuse(self, response: Optional[handshake.Response], problem: str) -> None:
        self.response = response
        self.refusal = problem
        self.state = State.CLOSED
        if response is None:
            del self._buffer[:]

    # ------------------------------------------------------------------ frames
    def _read_frames(self) -> None:
        buf = self._buffer
        size = len(buf)
        pos = 0
        while size - pos >= 2 and not self._discarding:
            first, second = buf[pos], buf[pos + 1]
            short = second & 0x7F
            head = 2 if short < 126 else (4 if short == 126 else 10)
            if size - pos < head:
                break
            opcode = first & 0x0F
            fin = first & 0x80
            length = short if head == 2 else int.from_bytes(buf[pos + 2:pos + head], "big")
            problem = self._check_header(first, second, opcode, fin, length)
            if problem is not None:
                self._fail(problem)
                pos += head
                break
            end = pos + head + length
            if opcode >= OP_CLOSE:
                if size < end:
                    break
                pos = end
                self._control(opcode, bytes(buf[end - length:end]))
                continue
            if size >= end and fin and opcode != OP_CONT:  # the common case: a whole message in one frame
                payload = bytes(memoryview(buf)[end - length:end])
                pos = end
                if opcode == OP_TEXT:
                    try:
                        payload.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        self._fail(_not_utf8(exc))
                        break
                if self.close_received is None:
                    self._events.append(Message(payload, opcode == OP_BINARY))
                continue
            if opcode != OP_CONT:
                self._opcode = opcode
                self._decoder = codecs.getincrementaldecoder("utf-8")() if opcode == OP_TEXT else None
            available = min(end, size)
            with memoryview(buf) as view:
                self._append(view[pos + head:available])
            if available < end:  # the rest of the payload is appended as it arrives
                self._need, self._fin = end - available, bool(fin)
                pos = size
                break
            pos = end
            if fin and not self._discarding:
                self._finish()
        if self._discarding:  # failed here: what followed the failing frame (or header) counts
            self._discard(size - pos)
        elif pos:
            del buf[:pos]

    def _discard(self, count: int) -> None:
        """After a failure no frame is read any more; a shell waits for the server's close (the
        end of the connection), but no more than ``close_read_limit`` bytes of whatever comes."""
        self._discarded += count
        if self._discarded > self.close_read_limit:
            self.state = State.CLOSED

    def _append(self, chunk: memoryview) -> None:
        if self._decoder is not None:
            try:
                self._decoder.decode(chunk, False)
            except UnicodeDecodeError as exc:
                self._fail(_not_utf8(exc))
                return
        self._fragments += chunk

    def _finish(self) -> None:
        if self._decoder is not None:
            try:
                self._decoder.decode(b"", True)
            except UnicodeDecodeError as exc:
                self._fail(_not_utf8(exc))
                return
        message = Message(self._fragments, self._opcode == OP_BINARY)
        self._opcode, self._decoder, self._fragments = None, None, bytearray()
        if self.close_received is None:
            self._events.append(message)

    def _check_header(self, first: int, second: int, opcode: int, fin: int, length: int) -> Optional[ProtocolError]:
        if first & 0x70:
            return ProtocolError("a frame has reserved bits set, but no extension was agreed")
        if second & 0x80:
            return ProtocolError("the server masked a frame")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                return ProtocolError(f"a frame has the unknown opcode {opcode:#x}")
            if not fin:
                return ProtocolError("a control frame is fragmented")
            if length > 125:
                return ProtocolError(f"a control frame is {length} bytes long; the most is 125")
            return None
        if opcode > OP_BINARY:
            return ProtocolError(f"a frame has the unknown opcode {opcode:#x}")
        if length >> 63:
            return ProtocolError("a frame length has its most significant bit set")
        if opcode == OP_CONT:
            if self._opcode is None:
                return ProtocolError("a continuation frame arrived outside a message")
            total = len(self._fragments) + length
        else:
            if self._opcode is not None:
                return ProtocolError("a new message began before the previous one ended")
            total = length
        limit = self.max_message_size
        if limit is not None and total > limit:
            return MessageTooLarge(total, limit)
        return None

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._events.append(Ping(payload))
            self._send_control(OP_PONG, payload)
        elif opcode == OP_PONG:
            self._events.append(Pong(payload))
        else:
            self._closed_by_peer(payload)

    def _closed_by_peer(self, payload: bytes) -> None:
        if len(payload) == 1:
            self._fail(ProtocolError("a close frame has a 1-byte payload"))
            return
        code, reason = NO_STATUS, ""
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not close_code_allowed(code):
                self._fail(ProtocolError(f"a close frame has the code {code}, which may not be sent"))
                return
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError as exc:
                self._fail(_not_utf8(exc, "a close frame's reason"))
                return
        close = Close(code, reason)
        self.close_received = close
        if self.state is State.OPEN:  # answer with the same code; an empty close for an empty one
            echo = b"" if code == NO_STATUS else payload[:2]
            self._out.append(encode_frame(OP_CLOSE, echo, self._mask(4)))
            self.close_sent = True
        self.state = State.CLOSED
        self._events.append(close)


def _not_utf8(exc: UnicodeDecodeError, what: str = "a text message") -> ProtocolError:
    return ProtocolError(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})", 1007)
