"""The identifiers WebSocket (``/conversations/stream/identifiers``) as a typed stream.

Pieces OS answers a WebSocket connection on this path with one ``StreamedIdentifiers``
message listing every conversation, then pushes one message per change: an identifier
without ``deleted`` for a conversation that appeared or changed, with ``deleted: true`` for
one that is gone.

Two ways to consume it (see docs/streaming.md):

* **Iterator** — ``with api.conversations_stream_identifiers() as stream: for msg in stream:``
  reads in the calling thread; iteration ends cleanly when ``close()`` is called.
  ``stream.events()`` yields :class:`StreamEvent` wrappers that also say whether the message
  is a full snapshot.
* **Background** — pass ``on_message`` / ``on_event`` (or call :meth:`IdentifiersStream.start`)
  and a daemon thread reads and calls you back; a process that never calls ``close()`` still
  exits.

The socket is opened **eagerly**, in the constructor: a Pieces OS that is not running is
reported right at the call as :class:`~pieces_os_client.exceptions.ApiConnectionError`
naming the URL. After the connection drops the stream reconnects by itself (exponential
backoff with jitter); the first message of every connection is marked ``snapshot=True``.
:class:`ConversationIdsMirror` turns all of this into a thread-safe, always-current set of
conversation ids.

The protocol itself (frames, fragments, pings, the close handshake, UTF-8, the size bound, the
handshake's answer) is :class:`pieces_os_client._core.websocket.ClientProtocol`, shared with the
asyncio stream; this package is the blocking-socket shell around it: ``_connect`` (opening the
socket, proxy tunnel, TLS, the upgrade), ``_link`` (the connection, shutdown, fork), ``_stream``
(reading, keep-alive, reconnects, delivery), ``_mirror`` (the live id set), and ``_events`` /
``_options`` / ``_text``, which re-export what both streams share from ``_core``. Importing it
loads no model; they load on first use.
"""

from __future__ import annotations

from pieces_os_client.stream._connect import IDENTIFIERS_PATH, stream_url
from pieces_os_client.stream._events import (
    CloseCallback,
    ErrorCallback,
    EventCallback,
    MessageCallback,
    MirrorUpdate,
    StreamEvent,
)
from pieces_os_client.stream._mirror import ConversationIdsMirror
from pieces_os_client.stream._stream import IdentifiersStream

__all__ = [
    "IDENTIFIERS_PATH",
    "CloseCallback",
    "ConversationIdsMirror",
    "ErrorCallback",
    "EventCallback",
    "IdentifiersStream",
    "MessageCallback",
    "MirrorUpdate",
    "StreamEvent",
    "stream_url",
]
