"""Network filter interfaces (Envoy's ``envoy/network/filter.h``)."""

from __future__ import annotations

import abc
import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyevent_envoy.network.buffer import OwnedBuffer
    from pyevent_envoy.network.connection import Connection

__all__ = ["FilterStatus", "ReadFilter", "ReadFilterCallbacks"]


class FilterStatus(enum.Enum):
    CONTINUE = "continue"
    STOP_ITERATION = "stop_iteration"


class ReadFilterCallbacks(abc.ABC):
    """What a read filter can do to its connection."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def connection(self) -> Connection:
        """The connection the filter is installed on."""

    @abc.abstractmethod
    def continue_reading(self) -> None:
        """Resume the filter chain after a filter returned STOP_ITERATION."""


class ReadFilter(abc.ABC):
    """Sees a connection's bytes as they are read, in installation order."""

    __slots__ = ()

    def initialize_read_filter_callbacks(self, callbacks: ReadFilterCallbacks) -> None:
        """Called once, when the filter is installed."""

    def on_new_connection(self) -> FilterStatus:
        """Called once, when the connection is ready (server: accepted; client: connected)."""
        return FilterStatus.CONTINUE

    @abc.abstractmethod
    def on_data(self, data: OwnedBuffer, end_stream: bool) -> FilterStatus:
        """Bytes arrived (``end_stream``: the peer half-closed).  Drain what you consume."""
