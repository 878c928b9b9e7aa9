"""TCP listeners (Envoy's ``source/common/network/tcp_listener_impl.cc``).

The listening socket is watched LEVEL-triggered, so a listener disabled in
the middle of a burst loses nothing.  Each wakeup accepts at most
``max_accepts_per_event`` connections (the rest wait for the next iteration,
so one busy listener cannot starve the loop).  When the process is out of
descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), accepting pauses
for :data:`ACCEPT_BACKOFF` seconds instead of spinning on a socket that
stays readable.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Protocol

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.event.file_event import FileReadyType, FileTriggerType
from pyevent_envoy.event.libevent import ffi, lib
from pyevent_envoy.network.address import Address

__all__ = ["ACCEPT_BACKOFF", "ListenerCallbacks", "TcpListenerImpl", "create_listen_socket"]

_log = logging.getLogger("pyevent_envoy.network")

#: Seconds accepting pauses after running out of descriptors or memory.
ACCEPT_BACKOFF = 0.1
#: Default cap of connections accepted per wakeup.
DEFAULT_MAX_ACCEPTS_PER_EVENT = 64
_RESOURCE_ERRORS = frozenset((lib.EMFILE, lib.ENFILE, lib.ENOBUFS, lib.ENOMEM))


class ListenerCallbacks(Protocol):
    def on_accept(self, fd: int, remote: Address) -> None:
        """A new non-blocking, close-on-exec socket; the callee owns ``fd``."""

    # Optional: ``record_connections_accepted_on_socket_event(count: int)``,
    # called after each wakeup with the number of connections it accepted
    # (Envoy's ``recordConnectionsAcceptedOnSocketEvent``).


def create_listen_socket(address: Address, *, reuse_port: bool = True, backlog: int = -1) -> socket.socket:
    """Bind and listen, non-blocking.  ``backlog`` -1 means the kernel's ``somaxconn``.

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.ip, address.port))
        sock.listen(socket.SOMAXCONN if backlog < 0 else backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class TcpListenerImpl:
    """Accepts connections on a listening socket it does not own."""

    __slots__ = (
        "_dispatcher",
        "_socket",
        "_callbacks",
        "_max_accepts",
        "_file_event",
        "_backoff_timer",
        "_enabled",
        "_ip",
        "_port",
        "_err",
        "_record_accepts",
        "accepted",
        "resource_errors",
    )

    def __init__(
        self,
        dispatcher: Dispatcher,
        listen_socket: Any,
        callbacks: ListenerCallbacks,
        *,
        max_accepts_per_event: int = DEFAULT_MAX_ACCEPTS_PER_EVENT,
    ) -> None:
        self._dispatcher = dispatcher
        self._socket = listen_socket
        self._callbacks = callbacks
        self._max_accepts = max(1, max_accepts_per_event)
        self._enabled = True
        self._backoff_timer: Any = None
        self._ip = ffi.new("char[]", 64)
        self._port = ffi.new("int *")
        self._err = ffi.new("int *")
        self.accepted = 0
        self.resource_errors = 0
        self._record_accepts = getattr(callbacks, "record_connections_accepted_on_socket_event", None)
        self._file_event = dispatcher.create_file_event(
            listen_socket, self._on_socket_event, FileTriggerType.LEVEL, FileReadyType.READ
        )

    def enable(self) -> None:
        if not self._enabled and self._file_event is not None:
            self._enabled = True
            self._file_event.set_enabled(FileReadyType.READ)

    def disable(self) -> None:
        if self._enabled and self._file_event is not None:
            self._enabled = False
            self._file_event.set_enabled(0)

    def _on_socket_event(self, _events: FileReadyType) -> None:
        before = self.accepted
        self._accept_burst()
        if self._record_accepts is not None:
            self._record_accepts(self.accepted - before)

    def _accept_burst(self) -> None:
        lfd = self._socket.fileno()
        ip, port, err = self._ip, self._port, self._err
        on_accept = self._callbacks.on_accept
        string = ffi.string
        for _ in range(self._max_accepts):
            fd = lib.pe_accept(lfd, ip, 64, port, 1, err)
            if fd < 0:
                code = err[0]
                if code in _RESOURCE_ERRORS:
                    self._back_off(code)
                elif code != lib.EAGAIN:
                    _log.warning("accept() failed: %s", socket.errno.errorcode.get(code, code))
                return
            self.accepted += 1
            on_accept(fd, Address(string(ip).decode(), port[0]))
            if self._file_event is None or not self._enabled:
                return

    def _back_off(self, code: int) -> None:
        self.resource_errors += 1
        _log.error("accept() failed (%s); pausing accepts for %.0f ms", socket.errno.errorcode.get(code, code), ACCEPT_BACKOFF * 1000)
        self.disable()
        if self._backoff_timer is None:
            self._backoff_timer = self._dispatcher.create_timer(self.enable)
        self._backoff_timer.enable_timer(ACCEPT_BACKOFF)

    def close(self) -> None:
        """Stop accepting.  The listening socket stays open (its owner closes it)."""
        if self._file_event is not None:
            self._file_event.close()
            self._file_event = None
        if self._backoff_timer is not None:
            self._backoff_timer.close()
            self._backoff_timer = None
