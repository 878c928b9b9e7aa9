"""Connection interfaces (Envoy's ``envoy/network/connection.h``)."""

from __future__ import annotations

import abc
import enum

from pyevent_envoy.network.address import Address
from pyevent_envoy.network.filter import ReadFilter

__all__ = [
    "Connection",
    "ConnectionCallbacks",
    "ConnectionCloseType",
    "ConnectionEvent",
    "ConnectionState",
]


class ConnectionEvent(enum.Enum):
    REMOTE_CLOSE = "remote_close"
    LOCAL_CLOSE = "local_close"
    CONNECTED = "connected"


class ConnectionCloseType(enum.Enum):
    #: Close now; whatever is buffered for writing is dropped.
    NO_FLUSH = "no_flush"
    #: Stop reading, close once the write buffer has drained.
    FLUSH_WRITE = "flush_write"
    #: As FLUSH_WRITE, then give the peer the delayed-close timeout to close first,
    #: so that it reads the whole response before a reset can reach it.
    FLUSH_WRITE_AND_DELAY = "flush_write_and_delay"


class ConnectionState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ConnectionCallbacks:
    """Events a connection reports to its owners.  Override what you need."""

    __slots__ = ()

    def on_event(self, event: ConnectionEvent) -> None:
        """CONNECTED (client connections), or the close and who initiated it."""

    def on_above_write_buffer_high_watermark(self) -> None:
        """The write buffer went above its high watermark: stop feeding it."""

    def on_below_write_buffer_low_watermark(self) -> None:
        """The write buffer drained to its low watermark: resume feeding it."""


class Connection(abc.ABC):
    """A TCP connection driven by its dispatcher.  All methods on the dispatcher's thread."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def id(self) -> int:
        """Process-unique connection id."""

    @property
    @abc.abstractmethod
    def state(self) -> ConnectionState: ...

    @property
    @abc.abstractmethod
    def remote_address(self) -> Address | None: ...

    @abc.abstractmethod
    def add_connection_callbacks(self, callbacks: ConnectionCallbacks) -> None: ...

    @abc.abstractmethod
    def add_read_filter(self, read_filter: ReadFilter) -> None: ...

    @abc.abstractmethod
    def initialize_read_filters(self) -> bool:
        """Call ``on_new_connection`` on the filters; False when there are none."""

    @abc.abstractmethod
    def write(self, data: bytes, end_stream: bool = False) -> None:
        """Queue bytes; ``end_stream`` half-closes (only with half-close enabled)."""

    @abc.abstractmethod
    def read_disable(self, disable: bool) -> None:
        """Stop (True) or resume (False) reading.  Counted: N disables need N enables."""

    @abc.abstractmethod
    def close(self, close_type: ConnectionCloseType) -> None:
        """Close; see :class:`ConnectionCloseType`.  Idempotent."""
