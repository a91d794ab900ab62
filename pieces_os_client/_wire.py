"""urllib3's connections and pools, held to the exchange rules of :mod:`pieces_os_client._core.exchange`.

The sync transport (:mod:`pieces_os_client.rest`) builds its pool managers with these classes:

* :class:`_Connection` (and its TLS twin) knows whether it is carrying its first exchange or a
  reused one, reads the response head under a deadline through :class:`_HeadReader`, skips
  interim ``1xx`` answers, decides how the body is delimited (``_core.framing``; an invalid
  framing raises ``FramingError`` before urllib3 reads the head), and turns the failure of a
  reused connection before any byte of an answer into :class:`StaleConnection`, which the
  transport may resend.
* :class:`_Pool` (and its TLS twin) closes a connection whose response was not read to the end
  instead of pooling it, recovers the slot of a connection that was lost (dropped by an
  interrupt, or collected with an unread response), and frees the slot queue's lock when an
  interrupt left it held (nobody holds it for more than microseconds otherwise), so that no
  call waits past ``pool_timeout``.

Everything the sync transport uses of urllib3, http.client, queue and threading that they do
not document as public is in this module (docs/threads-processes-limits.md lists it, and
test/sync/test_upstream_pins.py pins each item).
"""

from __future__ import annotations

import http.client
import io
import logging
import queue
import socket
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool, port_by_scheme
from urllib3.exceptions import ClosedPoolError, EmptyPoolError
from urllib3.util import is_connection_dropped, parse_url

from pieces_os_client._core.exchange import MAX_INTERIM_HEADER_LINES, MAX_LINE, head_deadline, is_interim
from pieces_os_client._core.failures import HeadTimeout
from pieces_os_client._core.framing import SWITCHED_PROTOCOLS, Framing, FramingError, body_framing

__all__ = [
    "HeadTimeout", "StaleConnection", "close_when_collected", "install", "pool_classes", "pool_route", "watch_of",
]

logger = logging.getLogger("pieces_os_client")

#: how long a waiting caller sleeps between looks for a lost slot
_SLICE = 0.25
#: how far the socket's per-read timeout may outlast the head's deadline before it is shortened
_SLACK = 0.05
#: the longest wait for the slot queue's lock when putting a connection back (then it is closed)
_WEDGED_AFTER = 2.0


#: the most times one thread can have taken the slot queue's lock (the queue's own code takes it once)
_MAX_HOLDS = 64

#: no connection taken yet (None is a slot with no connection in it)
_NOTHING: Any = object()


class StaleConnection(ConnectionResetError):
    """A reused keep-alive connection failed before any byte of an answer: the server had closed it."""


class _Watch:
    """What one exchange's reader is held to, and what it has seen."""

    __slots__ = ("deadline", "framing", "head_cut", "head_request", "phase", "received", "timeout")

    def __init__(self, deadline: Optional[float], timeout: Optional[float], head_request: bool = False) -> None:
        self.deadline = deadline  # a time.monotonic() value, or None
        self.timeout = timeout  # the socket's own per-read timeout
        self.phase = "head"
        self.received = 0
        self.head_cut = False  # the connection closed before the head's closing blank line
        self.head_request = head_request  # the request was a HEAD: the answer has no body
        self.framing: Optional[Framing] = None  # how the body is delimited, once the head is read


class _HeadReader(io.RawIOBase):
    """Socket reads that count the bytes of the answer and stop at the watch's deadline."""

    def __init__(self, sock: socket.socket, watch: _Watch) -> None:
        super().__init__()
        self._sock = sock
        self._io = sock.makefile("rb", buffering=0)  # holds a reference on the socket, as http.client's
        self._watch = watch
        self._shortened = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Optional[int]:
        watch = self._watch
        if watch.deadline is not None:
            left = watch.deadline - time.monotonic()
            if left <= 0:
                raise HeadTimeout(watch.phase, watch.received)
            if watch.timeout is None or left < watch.timeout - _SLACK:
                # the socket's own timeout would outlast the deadline: shorten it (a syscall,
                # so not on the usual first read, where the two are the same)
                self._sock.settimeout(left)
                self._shortened = True
        elif self._shortened:
            self._sock.settimeout(watch.timeout)
            self._shortened = False
        try:
            count = self._io.readinto(buffer)
        except TimeoutError as exc:
            if watch.deadline is not None and time.monotonic() >= watch.deadline:
                raise HeadTimeout(watch.phase, watch.received) from exc
            raise
        if count:
            watch.received += count
        elif count == 0 and watch.phase == "head":
            # http.client reads the headers line by line and takes the end of the stream for the
            # blank line that ends them: only a read that finds the end tells a cut head apart
            watch.head_cut = True
        return count

    def close(self) -> None:
        if not self.closed:
            self._io.close()
        super().close()


class _SocketFiles:
    """Stands in for the socket when http.client asks it for a file to read the answer from."""

    def __init__(self, sock: socket.socket, watch: _Watch) -> None:
        self._sock = sock
        self._watch = watch

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_HeadReader(self._sock, self._watch))


class _WireResponse(http.client.HTTPResponse):
    """http.client's response, reading through a :class:`_HeadReader` and skipping interim answers."""

    def __init__(self, watch: _Watch, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        self.watch = watch
        super().__init__(_SocketFiles(sock, watch), *args, **kwargs)  # type: ignore[arg-type]

    def begin(self) -> None:
        super().begin()
        watch = self.watch
        if watch.head_cut and watch.received:
            raise http.client.RemoteDisconnected(
                f"the connection closed in the middle of the response head ({watch.received} bytes in)"
            )
        # the framing as RFC 9112 has it (_core.framing), where http.client and urllib3 would
        # read an invalid Content-Length as none; FramingError passes through urllib3, which
        # closes the connection
        msg = self.msg
        try:
            watch.framing = body_framing(
                self.status, head_request=watch.head_request,
                content_lengths=msg.get_all("Content-Length") or (),
                transfer_encodings=msg.get_all("Transfer-Encoding") or (),
            )
        except FramingError as exc:
            self.close()  # its file holds the socket: closed with the connection, not left to the collector
            raise exc.answered(self.status, self.reason, msg.items()) from None
        if self.length is None and watch.framing.length is not None and not self.chunked:
            # http.client reads a repeated value ("2, 2") as no length and would wait for the close
            self.length = watch.framing.length

    def _read_status(self) -> Any:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not is_interim(status):
                if status == 101:
                    raise http.client.HTTPException(SWITCHED_PROTOCOLS)
                return version, status, reason
            self._skip_interim_headers()

    def _skip_interim_headers(self) -> None:
        assert self.fp is not None
        for _ in range(MAX_INTERIM_HEADER_LINES + 1):
            line = self.fp.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("header line")
            if line in (b"\r\n", b"\n", b""):
                return
        raise http.client.HTTPException(f"an interim answer had more than {MAX_INTERIM_HEADER_LINES} header lines")


def watch_of(response: Any) -> Optional[_Watch]:
    """The watch of a urllib3 response made by these connections, while it holds its connection (else None)."""
    return getattr(getattr(response, "connection", None), "exchange_watch", None)


class _ExchangeCounting:
    """Mixed into urllib3's connection classes: see the module docstring."""

    sock: Optional[socket.socket]
    timeout: Any
    _exchanges_on_socket = 0
    _reused = False
    _head_request = False
    _current: Optional[http.client.HTTPResponse] = None
    #: the latest exchange's watch (read through ``watch_of`` while its response holds the connection)
    exchange_watch: Optional[_Watch] = None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._exchanges_on_socket = 0

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        self._exchanges_on_socket = 0
        self._current = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._reused = self.sock is not None and self._exchanges_on_socket > 0
        method = args[0] if args else kwargs.get("method")
        self._head_request = isinstance(method, str) and method.upper() == "HEAD"
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._exchanges_on_socket += 1

    def getresponse(self) -> Any:
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        watch = _Watch(head_deadline(time.monotonic(), timeout), timeout, self._head_request)
        self.exchange_watch = watch
        made: List[_WireResponse] = []

        def build(sock: socket.socket, *args: Any, **kwargs: Any) -> _WireResponse:
            response = _WireResponse(watch, sock, *args, **kwargs)
            made.append(response)
            return response

        # http.client builds the response it reads from its connection's response_class: ours
        # for this exchange only. The class's own is back as soon as the head is read, so
        # nothing else on this connection object (a proxy CONNECT on a later connect()) reads
        # through this exchange's watch and its deadline.
        setattr(self, "response_class", build)  # noqa: B010 - http.client's hook, see docs
        try:
            response = super().getresponse()  # type: ignore[misc]
        except (ConnectionError, http.client.BadStatusLine) as exc:
            if self._reused and watch.received == 0:
                raise StaleConnection(f"the reused connection was closed by the server: {exc!r}") from exc
            raise
        finally:
            vars(self).pop("response_class", None)
        watch.deadline = None
        watch.phase = "body"
        self._current = made[-1] if made else None
        return response

    def exchange_open(self) -> bool:
        """True while the latest response on this connection has not been read to its end."""
        current = self._current
        return current is not None and not current.isclosed()


class _Connection(_ExchangeCounting, HTTPConnection):
    pass


class _TLSConnection(_ExchangeCounting, HTTPSConnection):
    pass


class _SlotQueue(queue.LifoQueue):  # type: ignore[type-arg]
    """urllib3's slot queue, counting the items being handed out (under its own lock)."""

    abandoned: bool
    taking: Dict[int, None]

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        # A reentrant lock: an interrupt (signal handlers run in the main thread) that leaves it
        # held cannot lock that thread out, and the pool can tell that it is held by the very
        # thread that is asking, outside any queue operation, and free it (_SlotKeeping._unwedged).
        self.mutex = threading.RLock()  # type: ignore[assignment]
        self.not_empty = threading.Condition(self.mutex)
        self.not_full = threading.Condition(self.mutex)
        self.all_tasks_done = threading.Condition(self.mutex)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        # urllib3 drains the queue with get(block=False) on close, and at exit: a lock held for
        # good by another thread ends that drain instead of hanging it
        if not block:
            if self.abandoned or not _acquire(self.mutex, _WEDGED_AFTER):
                self.abandoned = True  # its lock is lost for good: hand out what is left, unlocked
                if self.queue:
                    return self.queue.pop()
                raise queue.Empty
            self.mutex.release()
        return super().get(block, timeout)

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        # threads between taking an item and recording it (see _SlotKeeping._get_conn); each
        # thread's entry is removed by that thread in a finally, whatever interrupts it
        self.taking = {}
        self.abandoned = False

    def _get(self) -> Any:
        item = super()._get()
        self.taking[threading.get_ident()] = None
        return item


class _SlotKeeping:
    """Mixed into urllib3's pool classes: see the module docstring."""

    QueueCls = _SlotQueue
    block: bool
    host: str
    _new_conn: Callable[[], Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # connections handed out, by id: plain references to weak references, with no
        # callbacks (an interrupt inside a WeakSet's removal callback would leave a dead entry)
        self._out: Dict[int, weakref.ref[Any]] = {}
        q = self._queue()
        self._slots: int = q.maxsize if q is not None else 0

    def _queue(self) -> Optional[_SlotQueue]:
        return cast("Optional[_SlotQueue]", self.__dict__.get("pool"))

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        q = self._queue()
        if q is None:
            raise ClosedPoolError(self, "Pool is closed.")  # type: ignore[arg-type]
        if not self.block:
            return super()._get_conn(timeout)  # type: ignore[misc]
        self._unwedged(q)
        me = threading.get_ident()
        conn: Any = _NOTHING
        mutex = q.mutex
        try:
            if mutex.acquire(blocking=False):
                # the usual case: a slot is free and nobody holds the lock; take it as q.get()
                # would (nobody waits on not_full: connections come back through _put_conn)
                try:
                    if q.queue:
                        q.taking[me] = None  # before the item leaves the queue: never counted lost
                        conn = q.queue.pop()
                finally:
                    mutex.release()
            if conn is _NOTHING:
                conn = self._wait_for_slot(q, timeout)
            if conn and is_connection_dropped(conn):
                conn.close()
            conn = conn or self._new_conn()
            self._out[id(conn)] = weakref.ref(conn)
        finally:
            q.taking.pop(me, None)  # one dict operation: nothing can interrupt it half-done
        return conn

    def _wait_for_slot(self, q: _SlotQueue, timeout: Optional[float]) -> Any:
        """Wait up to ``timeout`` for a slot, giving back lost ones meanwhile; EmptyPoolError if none comes."""
        end = None if timeout is None else time.monotonic() + timeout
        if not _acquire(q.mutex, _SLICE if end is None else max(0.0, end - time.monotonic())):
            raise EmptyPoolError(self, "The pool's lock is held by another thread.")  # type: ignore[arg-type]
        q.mutex.release()
        while True:
            wait = _SLICE if end is None else max(0.0, min(_SLICE, end - time.monotonic()))
            try:
                return q.get(block=True, timeout=wait)
            except queue.Empty:
                if end is not None and time.monotonic() >= end:
                    raise EmptyPoolError(
                        self,  # type: ignore[arg-type]
                        "Pool is empty and a new connection can't be opened due to blocking mode.",
                    ) from None
                self._recover_lost_slots(q)

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            finalizer = conn.__dict__.pop("_on_collect", None)
            if finalizer is not None:
                finalizer.detach()
            if conn.exchange_open():
                conn.close()  # part of a response is unread: the connection cannot carry another exchange
        q = self._queue()
        kept = False
        if q is not None:
            self._unwedged(q)
        if q is not None and _acquire(q.mutex, _WEDGED_AFTER):
            try:
                if len(q.queue) < q.maxsize:
                    q.queue.append(conn)
                    q.not_empty.notify()
                    kept = True
            finally:
                q.mutex.release()
        if conn is not None:
            self._out.pop(id(conn), None)
            if not kept:
                conn.close()

    def _unwedged(self, q: _SlotQueue) -> None:
        """Free ``q``'s lock if an interrupt left it held by this thread (see ``_SlotQueue``)."""
        mutex: Any = q.mutex
        if mutex._is_owned():  # this thread is in no queue operation: an interrupt left it so
            logger.warning("the connection pool for %s was left locked by an interrupt; unlocking it", self.host)
            # release() once for each time it was taken (an RLock's release() raises
            # RuntimeError once this thread no longer holds it); bounded all the same
            for _ in range(_MAX_HOLDS):
                try:
                    mutex.release()
                except RuntimeError:
                    break
            self._recover_lost_slots(q)

    def _recover_lost_slots(self, q: _SlotQueue) -> None:
        """Give back the slots of connections that are gone (dropped by an interrupt, or collected)."""
        if not _acquire(q.mutex, _WEDGED_AFTER):
            return
        try:
            for key, ref in list(self._out.items()):
                if ref() is None:  # gone without coming back: its slot is lost
                    self._out.pop(key, None)
            missing = self._slots - len(q.queue) - len(q.taking) - len(self._out)
            if missing > 0:
                q.queue.extend([None] * missing)
                q.not_empty.notify(missing)
        finally:
            q.mutex.release()


def _acquire(lock: Any, timeout: float) -> bool:
    if lock.acquire(blocking=False):  # the usual case, and the cheapest call
        return True
    return bool(lock.acquire(timeout=timeout)) if timeout > 0 else False


class _Pool(_SlotKeeping, HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(_SlotKeeping, HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


def install(manager: Any) -> None:
    """Make ``manager`` (a urllib3 PoolManager or ProxyManager) build its pools from these classes."""
    manager.pool_classes_by_scheme = pool_classes()


def pool_route(manager: Any, origin: str) -> Tuple[Any, Dict[str, Any]]:
    """The pool key and pool context of ``origin``, as ``PoolManager.connection_from_host`` makes them.

    For ``manager.connection_from_pool_key(key, request_context=context)``.
    """
    parsed = parse_url(origin)
    scheme = (parsed.scheme or "http").lower()
    context: Dict[str, Any] = dict(manager.connection_pool_kw)
    context.update(scheme=scheme, host=parsed.host, port=parsed.port or port_by_scheme.get(scheme, 80))
    return manager.key_fn_by_scheme[scheme](context), context


def pool_classes() -> Dict[str, type]:
    """The pool class for each scheme, for a urllib3 PoolManager's ``pool_classes_by_scheme``."""
    return {"http": _Pool, "https": _TLSPool}


def close_when_collected(response: Any) -> None:
    """Close the connection of a response handed to the caller unread, if the caller drops it unreleased.

    The pool then gets the connection's slot back (see ``_recover_lost_slots``).
    """
    conn = getattr(response, "connection", None)
    if conn is not None:
        conn.__dict__["_on_collect"] = weakref.finalize(response, conn.close)

