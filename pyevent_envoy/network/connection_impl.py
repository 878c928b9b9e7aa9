"""Connections (Envoy's ``source/common/network/connection_impl.cc``).

One EDGE-triggered file event per connection, READ|WRITE while reading,
WRITE|CLOSED while read-disabled (so a peer's FIN is still noticed).  The
I/O methods every request runs on both of its connections (the file event,
the read and the filters it feeds, ``write()`` and the flush) are C methods
of :class:`ConnectionImpl` (``csrc/connection_io.c``): they read and set the
class's slots in place around the socket calls, and call back into this
module for what is rare (connect outcomes, closing, half-close).  A read
loops until ``EAGAIN`` and adds one ``bytes`` to the read buffer however
many ``read()`` calls it took; a flush sends the write buffer's chunks with
gathered ``sendmsg()`` calls, without joining them first.

Differences from Envoy, on purpose:

- ``write()`` buffers, and the buffer is sent once per loop pass in the
  same-iteration phase (a ``post``), instead of on a WRITE injected for
  the next iteration: a response's head and body go out in one ``send``,
  one pass sooner.  Errors are delivered the same way, asynchronously, so
  ``write()`` never closes the connection under its caller.
"""

from __future__ import annotations

import abc
import itertools
import logging
import os
import socket
from typing import Any

from pyevent_envoy import _sockio
from pyevent_envoy._inline_caches import own_copies
from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.event.file_event import FileReadyType, FileTriggerType
from pyevent_envoy.event.libevent import lib
from pyevent_envoy.network.address import Address
from pyevent_envoy.network.buffer import WatermarkBuffer
from pyevent_envoy.network.connection import (
    Connection,
    ConnectionCallbacks,
    ConnectionCloseType,
    ConnectionEvent,
    ConnectionState,
)
from pyevent_envoy.network.filter import FilterStatus, ReadFilter, ReadFilterCallbacks

__all__ = ["ClientConnectionImpl", "ConnectionImpl", "ServerConnectionImpl"]

_log = logging.getLogger("pyevent_envoy.network")

_READ = FileReadyType.READ
_WRITE = FileReadyType.WRITE
_CLOSED = FileReadyType.CLOSED
_READ_WRITE = _READ | _WRITE
# While reading, CLOSED too: reads stop at a short read (no EAGAIN round
# trip), so a FIN that came with the last bytes is learnt from EPOLLRDHUP.
_READING = _READ | _WRITE | _CLOSED
_WRITE_BIT = int(_WRITE)
_CLOSED_BIT = int(_CLOSED)
_READ_OR_CLOSED_BITS = int(_READ | _CLOSED)
# (The TLS connection's reads and writes; the plaintext ones are in C.)
_sock_read = _sockio.read
_sock_write = _sockio.write
# Enum members the request path tests or returns, as module constants: on
# CPython 3.11 every ``Enum.MEMBER`` lookup goes through EnumType.__getattr__'s
# slow attribute hook (about 70 ns each, several per request).
_OPEN = ConnectionState.OPEN
_CLOSING = ConnectionState.CLOSING
_CLOSED_STATE = ConnectionState.CLOSED
_STOP_ITERATION = FilterStatus.STOP_ITERATION

#: Bytes one read call takes from the kernel (it loops until EAGAIN or a
#: short read): a 64 KiB body and its head arrive as one ``bytes``.  Each
#: thread keeps one scratch buffer of this size.
READ_CHUNK = 256 * 1024
#: Envoy's per_connection_buffer_limit_bytes default.
DEFAULT_BUFFER_LIMIT = 1024 * 1024
#: Envoy's HCM delayed_close_timeout default.
DEFAULT_DELAYED_CLOSE_TIMEOUT = 1.0

_ids = itertools.count()


class ConnectionImpl(Connection, ReadFilterCallbacks):
    """The shared half of server and client connections.

    The owner hands the connection to ``dispatcher.deferred_delete`` after it
    reports a close; the file descriptor is already closed by then.
    """

    __slots__ = (
        "_dispatcher",
        "_fd",
        "_id",
        "_state",
        "_remote",
        "_local",
        "_callbacks",
        "_filters",
        "_filter_cursor",
        "_read_buffer",
        "_write_buffer",
        "_read_disable_count",
        "_read_watermark_disabled",
        "_connecting",
        "_half_close",
        "_read_end_stream",
        "_write_end_stream",
        "_write_shut",
        "_file_event",
        "_delayed_close_timer",
        "_delayed_close_timeout",
        "_close_type",
        "_pending_error",
        "_dispatch_buffered",
        "_flush_cb",
        "_write_blocked",
        "bytes_read",
        "bytes_written",
        "_connection_stats",
        "_last_read_buffer_size",
        "_last_write_buffer_size",
        "failure_reason",
        "buffer_limit",
        "__weakref__",
    )

    #: Whether the bytes go through TLS (Envoy's ``connection.ssl() != nullptr``); a class
    #: attribute, so plaintext connections pay nothing for it.
    is_tls = False

    def __init__(
        self,
        dispatcher: Dispatcher,
        fd: int,
        remote: Address | None,
        local: Address | None,
        *,
        connected: bool,
    ) -> None:
        self._dispatcher = dispatcher
        self._fd = fd
        self._id = next(_ids)
        self._state = _OPEN
        self._remote = remote
        self._local = local
        self._callbacks: list[ConnectionCallbacks] = []
        self._filters: list[ReadFilter] = []
        self._filter_cursor = 0
        self._read_buffer = WatermarkBuffer(self._on_read_buffer_low, self._on_read_buffer_high)
        self._write_buffer = WatermarkBuffer(self._on_write_buffer_low, self._on_write_buffer_high)
        self._read_buffer.set_watermarks(DEFAULT_BUFFER_LIMIT + 1)
        self._write_buffer.set_watermarks(DEFAULT_BUFFER_LIMIT + 1)
        #: per_connection_buffer_limit_bytes (0: no limit); the router's retry buffer limit too.
        self.buffer_limit = DEFAULT_BUFFER_LIMIT
        self._read_disable_count = 0
        self._read_watermark_disabled = False
        self._connecting = not connected
        self._half_close = False
        self._read_end_stream = False
        self._write_end_stream = False
        self._write_shut = False  # shutdown(SHUT_WR) done: the FIN of write(end_stream=True) went out
        self._file_event: Any = None
        self._delayed_close_timer: Any = None
        self._delayed_close_timeout = DEFAULT_DELAYED_CLOSE_TIMEOUT
        self._close_type: ConnectionCloseType | None = None
        self._pending_error = 0
        self._dispatch_buffered = False
        self._flush_cb: Any = None  # a SchedulableCallback, made on the first write
        self._write_blocked = False
        self.bytes_read = 0
        self.bytes_written = 0
        self._connection_stats: Any = None
        self._last_read_buffer_size = 0
        self._last_write_buffer_size = 0
        self.failure_reason = ""
        if connected:
            self._file_event = dispatcher.create_file_event(fd, self._on_file_event, FileTriggerType.EDGE, _READING)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Server and client connections run these methods for every request:
        # each class gets its own copies, so CPython's inline caches see one type.
        super().__init_subclass__(**kwargs)
        own_copies(cls, (ConnectionImpl,))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self._id} {self._remote} {self._state.value}>"

    # Connection: properties

    @property
    def id(self) -> int:
        return self._id

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def remote_address(self) -> Address | None:
        return self._remote

    @property
    def local_address(self) -> Address | None:
        return self._local

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    @property
    def connecting(self) -> bool:
        return self._connecting

    @property
    def connection(self) -> "ConnectionImpl":  # ReadFilterCallbacks
        return self

    def read_enabled(self) -> bool:
        return self._read_disable_count == 0

    def above_high_watermark(self) -> bool:
        return self._write_buffer.above_high_watermark

    def write_buffer_length(self) -> int:
        return len(self._write_buffer)

    # Connection: configuration

    def add_connection_callbacks(self, callbacks: ConnectionCallbacks) -> None:
        self._callbacks.append(callbacks)

    def remove_connection_callbacks(self, callbacks: ConnectionCallbacks) -> None:
        try:
            self._callbacks.remove(callbacks)
        except ValueError:
            pass  # not registered: removing is idempotent

    def set_buffer_limits(self, limit: int) -> None:
        """Envoy's rule: the high watermark is limit + 1 so one full read does not flap."""
        self.buffer_limit = limit
        high = limit + 1 if limit > 0 else 0
        self._read_buffer.set_watermarks(high)
        self._write_buffer.set_watermarks(high)

    def set_connection_stats(self, stats: Any) -> None:
        """Count this connection's bytes in ``stats`` (a :class:`~pyevent_envoy.stats.ConnectionStats`
        written by this connection's thread only), as Envoy's ``setConnectionStats``: bytes read
        and written, and how much each buffer holds after each read and write (0 once closed)."""
        self._connection_stats = stats

    def set_delayed_close_timeout(self, seconds: float) -> None:
        """0 disables the delay of FLUSH_WRITE_AND_DELAY."""
        self._delayed_close_timeout = seconds

    def enable_half_close(self, enabled: bool) -> None:
        self._half_close = enabled
        if self._read_disable_count and self._file_event is not None and self._state is _OPEN:
            self._file_event.set_enabled(_WRITE if enabled else _WRITE | _CLOSED)

    # read filters (Envoy's FilterManagerImpl, inlined: one chain per connection)

    def add_read_filter(self, read_filter: ReadFilter) -> None:
        self._filters.append(read_filter)
        read_filter.initialize_read_filter_callbacks(self)

    def initialize_read_filters(self) -> bool:
        for read_filter in self._filters:
            if read_filter.on_new_connection() is FilterStatus.STOP_ITERATION:
                break
        return bool(self._filters)

    def continue_reading(self) -> None:
        self._on_read(self._read_end_stream)

    def _on_read(self, end_stream: bool) -> None:
        buffer = self._read_buffer
        for read_filter in self._filters:
            if self._state is _CLOSED_STATE:
                return
            if read_filter.on_data(buffer, end_stream) is _STOP_ITERATION:
                return

    # I/O: _on_file_event, _on_read_ready, write, _flush and _on_write_ready
    # are C methods, installed below by _sockio.bind_connection (see
    # csrc/connection_io.c); what they leave to Python follows.

    def _fail_pending_connect(self) -> None:
        """connect() itself failed (the file event reports it): close, in Envoy's words."""
        self.failure_reason = f"immediate connect error: {os.strerror(self._pending_error)}"
        self._close_socket(ConnectionEvent.REMOTE_CLOSE)

    def _finish_connect(self) -> bool:
        """The first WRITE of a connect: its outcome.  False when it failed (the connection closed)."""
        error = lib.pe_socket_error(self._fd)
        if error:
            self.failure_reason = f"delayed connect error: {os.strerror(error)}"
            self._close_socket(ConnectionEvent.REMOTE_CLOSE)
            return False
        self._connecting = False
        self._raise_event(ConnectionEvent.CONNECTED)
        return self._state is not _CLOSED_STATE

    def _dispatch_buffered_reads(self) -> bool:
        """Hand the filters what read_disable(False) found buffered; False: stop reading for now.

        Only after a read-disable (rare), so the common read path pays one flag test."""
        self._dispatch_buffered = False
        if self._read_buffer:
            self._on_read(self._read_end_stream)
            if self._state is _CLOSED_STATE or self._read_disable_count:
                return False
        return True

    def _shutdown_write(self) -> None:
        self._write_shut = True
        sock = socket.socket(fileno=self._fd)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer is gone; the read side reports it
        finally:
            sock.detach()
        if self._read_end_stream:
            self._close_socket(ConnectionEvent.LOCAL_CLOSE)

    # flow control

    def read_disable(self, disable: bool) -> None:
        if self._state is not _OPEN:
            return
        if disable:
            self._read_disable_count += 1
            if self._read_disable_count == 1 and self._file_event is not None:
                self._file_event.set_enabled(_WRITE if self._half_close else _WRITE | _CLOSED)
            return
        if self._read_disable_count == 0:
            raise RuntimeError("read_disable(False) without a matching read_disable(True)")
        self._read_disable_count -= 1
        if self._read_disable_count == 0 and self._file_event is not None:
            self._file_event.set_enabled(_READING)
            if self._read_buffer:
                # Bytes already buffered are dispatched even if the socket has nothing new.
                self._dispatch_buffered = True
                self._file_event.activate(_READ)

    def _on_read_buffer_high(self) -> None:
        if not self._read_watermark_disabled:
            self._read_watermark_disabled = True
            self.read_disable(True)

    def _on_read_buffer_low(self) -> None:
        if self._read_watermark_disabled:
            self._read_watermark_disabled = False
            self.read_disable(False)

    def _on_write_buffer_high(self) -> None:
        for callbacks in list(self._callbacks):
            callbacks.on_above_write_buffer_high_watermark()

    def _on_write_buffer_low(self) -> None:
        for callbacks in list(self._callbacks):
            callbacks.on_below_write_buffer_low_watermark()

    # closing

    def close(self, close_type: ConnectionCloseType = ConnectionCloseType.NO_FLUSH) -> None:
        if self._state is _CLOSED_STATE:
            return
        if close_type is ConnectionCloseType.NO_FLUSH or self._connecting:
            self._close_socket(ConnectionEvent.LOCAL_CLOSE)
            return
        if self._close_type is not None:
            return  # already closing
        self._close_type = close_type
        self._state = _CLOSING
        if self._read_disable_count == 0 and self._file_event is not None:
            # Stop reading, keep noticing the peer's close.
            self._file_event.set_enabled(_WRITE | _CLOSED)
        self._read_disable_count += 1
        if not self._write_buffer:
            self._on_flushed_for_close()

    def _on_flushed_for_close(self) -> None:
        if self._close_type is ConnectionCloseType.FLUSH_WRITE_AND_DELAY and self._delayed_close_timeout > 0:
            if self._delayed_close_timer is None:
                self._delayed_close_timer = self._dispatcher.create_timer(self._on_delayed_close_timeout)
                self._delayed_close_timer.enable_timer(self._delayed_close_timeout)
            return
        self._close_socket(ConnectionEvent.LOCAL_CLOSE)

    def _on_delayed_close_timeout(self) -> None:
        stats = self._connection_stats
        if stats is not None:
            stats.delayed_close_timeouts += 1
        self._close_socket(ConnectionEvent.LOCAL_CLOSE)

    def _close_socket(self, event: ConnectionEvent) -> None:
        if self._state is _CLOSED_STATE:
            return
        self._state = _CLOSED_STATE
        stats = self._connection_stats
        if stats is not None:
            # Whatever the buffers held is gone: this connection's share of the gauges too.
            self._connection_stats = None
            stats.read_current -= self._last_read_buffer_size
            stats.write_current -= self._last_write_buffer_size
        if self._file_event is not None:
            self._file_event.close()
            self._file_event = None
        if self._delayed_close_timer is not None:
            self._delayed_close_timer.close()
            self._delayed_close_timer = None
        if self._flush_cb is not None:
            self._flush_cb.close()
            self._flush_cb = None
        try:
            os.close(self._fd)
        except OSError:
            pass  # already gone (EBADF); the descriptor is released either way
        self._fd = -1
        self._raise_event(event)

    def _raise_event(self, event: ConnectionEvent) -> None:
        for callbacks in list(self._callbacks):
            callbacks.on_event(event)


_sockio.bind_connection(
    ConnectionImpl,
    WatermarkBuffer.__mro__[-2],  # the C buffer type the connection's buffers are made of
    {
        "OPEN": _OPEN,
        "CLOSED": _CLOSED_STATE,
        "STOP_ITERATION": _STOP_ITERATION,
        "REMOTE_CLOSE": ConnectionEvent.REMOTE_CLOSE,
        "WRITE_BIT": _WRITE_BIT,
        "CLOSED_BIT": _CLOSED_BIT,
        "READ_OR_CLOSED_BITS": _READ_OR_CLOSED_BITS,
        "READ_CHUNK": READ_CHUNK,
    },
)
abc.update_abstractmethods(ConnectionImpl)  # write() is one of Connection's


class ServerConnectionImpl(ConnectionImpl):
    """An accepted connection: open from the start."""

    __slots__ = ()

    def __init__(self, dispatcher: Dispatcher, fd: int, remote: Address | None, local: Address | None) -> None:
        super().__init__(dispatcher, fd, remote, local, connected=True)


class ClientConnectionImpl(ConnectionImpl):
    """An outgoing connection; nothing happens until :meth:`connect`.

    The outcome arrives as ``CONNECTED`` or ``REMOTE_CLOSE`` (with
    ``failure_reason``) in a later callback, never inside ``connect()``.
    Writes made before the connection is up are held and sent once it is.
    """

    __slots__ = ()

    def __init__(self, dispatcher: Dispatcher, remote: Address) -> None:
        sock = socket.socket(remote.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(dispatcher, sock.detach(), remote, None, connected=False)

    def connect(self) -> None:
        if self._file_event is not None or self._state is not _OPEN:
            return
        remote = self._remote
        sock = socket.socket(remote.family, socket.SOCK_STREAM, fileno=self._fd)
        try:
            error = sock.connect_ex((remote.ip, remote.port))
        finally:
            sock.detach()
        self._file_event = self._dispatcher.create_file_event(self._fd, self._on_file_event, FileTriggerType.EDGE, _READING)
        if error not in (0, lib.EINPROGRESS):
            self._pending_error = error
            self._file_event.activate(_WRITE)
