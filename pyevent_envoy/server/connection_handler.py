"""Per-worker listeners and their connections (Envoy's ``ConnectionHandlerImpl`` / ``ActiveTcpListener``).

Each worker owns one :class:`ActiveTcpListener` per configured listener,
on a listening socket of its own (``SO_REUSEPORT``: the kernel spreads
connections across workers).  An accepted connection gets the listener's
buffer limit and a fresh HTTP connection manager as its read filter; when it
closes, it is deferred-deleted and forgotten.

Stats: each worker's listener has its own ``listener.<address>.`` and
``http.<stat_prefix>.`` scopes (:mod:`pyevent_envoy.stats`), written on the
worker's thread only and registered with the server's store, which sums the
workers' scopes for the admin.
"""

from __future__ import annotations

import logging
import random
import socket
from typing import Any

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.http.conn_manager_impl import ConnectionManagerConfig, ConnectionManagerImpl
from pyevent_envoy.network.address import Address
from pyevent_envoy.network.connection import ConnectionCallbacks, ConnectionCloseType, ConnectionEvent, ConnectionState
from pyevent_envoy.network.connection_impl import ServerConnectionImpl
from pyevent_envoy.network.listener_impl import TcpListenerImpl
from pyevent_envoy.network.ssl_socket import SslServerConnectionImpl
from pyevent_envoy.stats import HttpConnManagerStats, ListenerStats, SslStats, StatsStore, WorkerListenerStats, listener_stat_prefix

__all__ = ["ActiveTcpListener", "ConnectionHandlerImpl"]

_log = logging.getLogger("pyevent_envoy.server")


class _ActiveConnection(ConnectionCallbacks):
    __slots__ = ("listener", "connection", "manager", "accepted_at")

    def __init__(self, listener: "ActiveTcpListener", connection: ServerConnectionImpl, manager: Any, accepted_at: float) -> None:
        self.listener = listener
        self.connection = connection
        self.manager = manager
        self.accepted_at = accepted_at

    def on_event(self, event: ConnectionEvent) -> None:
        if event is not ConnectionEvent.CONNECTED:
            self.listener._remove(self)


class ActiveTcpListener:
    """Accepts on one worker's listening socket and builds each connection's filter chain."""

    def __init__(
        self,
        handler: "ConnectionHandlerImpl",
        name: str,
        listen_socket: socket.socket,
        local_address: Address,
        hcm_config: ConnectionManagerConfig,
        buffer_limit: int,
        ssl_context: Any = None,
    ) -> None:
        self.handler = handler
        self.name = name
        self.socket = listen_socket
        self.local_address = local_address
        self.hcm_config = hcm_config
        self.buffer_limit = buffer_limit
        self.connections: set[_ActiveConnection] = set()
        self.stats = ListenerStats()
        self.http_stats = HttpConnManagerStats()
        #: The filter chain's TLS context (None: plaintext) and this worker's ``ssl.`` stats of it.
        self.ssl_context = ssl_context
        self.ssl_stats = SslStats() if ssl_context is not None else None
        store = handler.stats_store
        if store is not None:
            prefix = listener_stat_prefix(local_address.ip, local_address.port)
            store.register(prefix, self.stats)
            if self.ssl_stats is not None:
                store.register(f"{prefix}ssl.", self.ssl_stats)
            store.register(f"{prefix}{handler.dispatcher.name}.", WorkerListenerStats(self.stats))
            store.register(f"http.{hcm_config.stat_prefix}.", self.http_stats)
        self.listener = TcpListenerImpl(handler.dispatcher, listen_socket, self)

    def on_accept(self, fd: int, remote: Address) -> None:
        dispatcher = self.handler.dispatcher
        if self.ssl_context is None:
            connection = ServerConnectionImpl(dispatcher, fd, remote, self.local_address)
        else:
            connection = SslServerConnectionImpl(dispatcher, fd, remote, self.local_address, self.ssl_context, self.ssl_stats)
        connection.set_buffer_limits(self.buffer_limit)
        manager = ConnectionManagerImpl(self.hcm_config, dispatcher, self.handler.cluster_manager, self.handler.rng, self.http_stats)
        active = _ActiveConnection(self, connection, manager, dispatcher.approximate_now)
        connection.add_connection_callbacks(active)
        connection.add_read_filter(manager)
        connection.initialize_read_filters()
        self.connections.add(active)
        # Every connection gets an HTTP connection manager: its cx stats are the listener's too.
        stats, http_stats = self.stats, self.http_stats
        stats.downstream_cx_total += 1
        stats.downstream_cx_active += 1
        http_stats.downstream_cx_total += 1
        http_stats.downstream_cx_active += 1
        if self.ssl_context is not None:
            http_stats.downstream_cx_ssl_total += 1
            http_stats.downstream_cx_ssl_active += 1
        self.handler.num_connections += 1

    def _remove(self, active: _ActiveConnection) -> None:
        if active in self.connections:
            self.connections.discard(active)
            stats, http_stats = self.stats, self.http_stats
            stats.downstream_cx_destroy += 1
            stats.downstream_cx_active -= 1
            http_stats.downstream_cx_destroy += 1
            http_stats.downstream_cx_active -= 1
            if self.ssl_context is not None:
                http_stats.downstream_cx_ssl_active -= 1
            # One measurement for both of Envoy's downstream_cx_length_ms (the
            # listener's and the connection manager's start and end together here).
            dispatcher = self.handler.dispatcher
            length = dispatcher.approximate_now - active.accepted_at
            stats.downstream_cx_length_ms.record_duration(length)
            http_stats.downstream_cx_length_ms.record_duration(length)
            self.handler.num_connections -= 1
            dispatcher.deferred_delete(active.connection)

    def record_connections_accepted_on_socket_event(self, count: int) -> None:
        """The listener accepted ``count`` connections on one wakeup (Envoy's histogram of that name)."""
        self.stats.connections_accepted_per_socket_event.record(count)

    def stop_listening(self) -> None:
        """Stop accepting; existing connections carry on."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            self.socket.close()

    def drain(self) -> None:
        for active in list(self.connections):
            active.manager.start_drain()

    def close_all(self) -> None:
        self.stop_listening()
        for active in list(self.connections):
            if active.connection.state is not ConnectionState.CLOSED:
                active.connection.close(ConnectionCloseType.NO_FLUSH)


class ConnectionHandlerImpl:
    """One worker's listeners.  Lives on, and is only touched from, the worker's thread.

    ``stats_store``, when given, is where each listener registers its stats
    scopes (the admin's listener passes none: Envoy's ``listener.admin.`` and
    ``http.admin.`` stats are not kept).
    """

    def __init__(self, dispatcher: Dispatcher, cluster_manager: Any, stats_store: StatsStore | None = None) -> None:
        self.dispatcher = dispatcher
        self.stats_store = stats_store
        self.cluster_manager = cluster_manager
        self.rng = random.Random()
        self.listeners: list[ActiveTcpListener] = []
        self.num_connections = 0  # read from the main thread while draining

    def add_listener(self, *args: Any, **kwargs: Any) -> ActiveTcpListener:
        listener = ActiveTcpListener(self, *args, **kwargs)
        self.listeners.append(listener)
        return listener

    def stop_listeners(self) -> None:
        for listener in self.listeners:
            listener.stop_listening()

    def drain(self) -> None:
        for listener in self.listeners:
            listener.drain()

    def shutdown(self) -> None:
        for listener in self.listeners:
            listener.close_all()
        self.listeners.clear()
        self.dispatcher.clear_deferred_delete_list()
