"""A tiny HTTP/1.1 upstream for the built-in default configuration.

``pyevent-envoy`` run without ``-c`` proxies to this server, which it starts
on its own main dispatcher, so that the first request works with nothing
else installed.  It answers every request with 200 and a JSON description
of what it received (method, path, headers), which shows what the proxy
added on the way.  Built from the same network layer and codec as the proxy.
"""

from __future__ import annotations

import json
from typing import Any

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.http.codec import ServerConnectionImpl as Http1ServerCodec
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.network.address import Address
from pyevent_envoy.network.buffer import OwnedBuffer
from pyevent_envoy.network.connection import ConnectionCallbacks, ConnectionCloseType, ConnectionEvent, ConnectionState
from pyevent_envoy.network.connection_impl import ServerConnectionImpl
from pyevent_envoy.network.filter import FilterStatus, ReadFilter
from pyevent_envoy.network.listener_impl import TcpListenerImpl, create_listen_socket

__all__ = ["DemoUpstream"]


class _Request:
    __slots__ = ("_connection", "_encoder", "_headers", "_body_bytes")

    def __init__(self, connection: "_DemoConnection", encoder: Any) -> None:
        self._connection = connection
        self._encoder = encoder
        self._headers: HeaderMap | None = None
        self._body_bytes = 0

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        self._headers = headers
        if end_stream:
            self._respond()

    def decode_data(self, data: bytes, end_stream: bool) -> None:
        self._body_bytes += len(data)
        if end_stream:
            self._respond()

    def decode_trailers(self, trailers: HeaderMap) -> None:
        self._respond()

    def _respond(self) -> None:
        headers = self._headers
        description = {
            "message": "hello from the pyevent-envoy demo upstream",
            "method": headers.get(":method"),
            "path": headers.get(":path"),
            "headers": {name: value for name, value in headers if not name.startswith(":")},
            "body_bytes": self._body_bytes,
        }
        body = (json.dumps(description, indent=2) + "\n").encode()
        reply = HeaderMap()
        reply.set(":status", "200")
        reply.set("content-type", "application/json")
        reply.set("content-length", str(len(body)))
        self._encoder.encode_headers(reply, False)
        self._encoder.encode_data(body, True)
        self._connection._after_response()


class _DemoConnection(ReadFilter, ConnectionCallbacks):
    __slots__ = ("_server", "connection", "codec")

    def __init__(self, server: "DemoUpstream", connection: ServerConnectionImpl) -> None:
        self._server = server
        self.connection = connection
        self.codec = Http1ServerCodec(self, connection.write)

    def on_data(self, data: OwnedBuffer, end_stream: bool) -> FilterStatus:
        if data:
            self.codec.dispatch(data.take())
        if end_stream and self.connection.state is ConnectionState.OPEN:
            self.codec.dispatch_eof()
        return FilterStatus.STOP_ITERATION

    def new_stream(self, encoder: Any) -> _Request:
        return _Request(self, encoder)

    def on_protocol_error(self, error: Any, encoder: Any) -> None:
        if encoder is not None:
            reply = HeaderMap()
            reply.set(":status", str(getattr(error, "status", 400)))
            reply.set("content-length", "0")
            encoder.encode_headers(reply, True)
        self.connection.close(ConnectionCloseType.FLUSH_WRITE)

    def _after_response(self) -> None:
        if self.codec.should_close and self.connection.state is ConnectionState.OPEN:
            self.connection.close(ConnectionCloseType.FLUSH_WRITE)

    def on_event(self, event: ConnectionEvent) -> None:
        if event is not ConnectionEvent.CONNECTED:
            self.codec.close()
            self._server._forget(self)


class DemoUpstream:
    """Serves the demo JSON on ``address`` (port 0: any free port).

    Binds at construction, so the port is known before the configuration
    that points at it is built; :meth:`start` then serves from the
    dispatcher's thread.
    """

    def __init__(self, address: Address = Address("127.0.0.1", 0)) -> None:
        self._socket = create_listen_socket(address, reuse_port=False)
        self.address = Address(address.ip, self._socket.getsockname()[1])
        self._connections: set[_DemoConnection] = set()
        self._dispatcher: Any = None
        self._listener: Any = None

    def start(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._listener = TcpListenerImpl(dispatcher, self._socket, self)

    def on_accept(self, fd: int, remote: Address) -> None:
        connection = ServerConnectionImpl(self._dispatcher, fd, remote, self.address)
        demo = _DemoConnection(self, connection)
        connection.add_read_filter(demo)
        connection.add_connection_callbacks(demo)
        self._connections.add(demo)

    def _forget(self, demo: _DemoConnection) -> None:
        if demo in self._connections:
            self._connections.discard(demo)
            self._dispatcher.deferred_delete(demo.connection)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._socket.close()
        for demo in list(self._connections):
            demo.connection.close(ConnectionCloseType.NO_FLUSH)
