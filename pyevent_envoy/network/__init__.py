"""The network layer: listeners, connections, buffers, read filters."""

from pyevent_envoy.network.address import Address as Address
from pyevent_envoy.network.buffer import OwnedBuffer as OwnedBuffer
from pyevent_envoy.network.buffer import WatermarkBuffer as WatermarkBuffer
from pyevent_envoy.network.connection import Connection as Connection
from pyevent_envoy.network.connection import ConnectionCallbacks as ConnectionCallbacks
from pyevent_envoy.network.connection import ConnectionCloseType as ConnectionCloseType
from pyevent_envoy.network.connection import ConnectionEvent as ConnectionEvent
from pyevent_envoy.network.connection import ConnectionState as ConnectionState
from pyevent_envoy.network.connection_impl import ClientConnectionImpl as ClientConnectionImpl
from pyevent_envoy.network.connection_impl import ConnectionImpl as ConnectionImpl
from pyevent_envoy.network.connection_impl import ServerConnectionImpl as ServerConnectionImpl
from pyevent_envoy.network.filter import FilterStatus as FilterStatus
from pyevent_envoy.network.filter import ReadFilter as ReadFilter
from pyevent_envoy.network.listener_impl import TcpListenerImpl as TcpListenerImpl
from pyevent_envoy.network.listener_impl import create_listen_socket as create_listen_socket

__all__ = [
    "Address",
    "ClientConnectionImpl",
    "Connection",
    "ConnectionCallbacks",
    "ConnectionCloseType",
    "ConnectionEvent",
    "ConnectionImpl",
    "ConnectionState",
    "FilterStatus",
    "OwnedBuffer",
    "ReadFilter",
    "ServerConnectionImpl",
    "TcpListenerImpl",
    "WatermarkBuffer",
    "create_listen_socket",
]
