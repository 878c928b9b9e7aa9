"""The HTTP/1.1 upstream pool against a real upstream on 127.0.0.1: reuse, and what a
connection keeps of a stream once its response is over (nothing)."""

from __future__ import annotations

import gc
import socket
import threading
import types
import weakref

import pytest

from pyevent_envoy.event import DispatcherImpl
from pyevent_envoy.testing.helpers import stop_listening
from pyevent_envoy.http.conn_pool import Http1ConnPool
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.network.address import Address
from pyevent_envoy.upstream.cluster import ClusterInfo

pytestmark = pytest.mark.timeout(60)

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class KeepAliveUpstream:
    """Answers every request on every connection with RESPONSE; counts the connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            pending = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
                while b"\r\n\r\n" in pending:
                    _head, _, pending = pending.partition(b"\r\n\r\n")
                    sock.sendall(RESPONSE)

    def close(self) -> None:
        stop_listening(self._listener)  # wakes the blocked accept(), so the thread ends
        self._thread.join(timeout=30)


class Exchange:
    """One request's decoder and pool callbacks (weakly referenceable, unlike the proxy's slotted classes)."""

    def __init__(self, dispatcher: DispatcherImpl) -> None:
        self.dispatcher = dispatcher
        self.status = None
        self.body = b""
        self.complete = False
        self.failure = None
        self.client = None

    # pool callbacks

    def on_pool_ready(self, encoder, client) -> None:
        self.client = client
        encoder.encode_headers(HeaderMap([(":method", "GET"), (":path", "/"), (":authority", "upstream")]), True)

    def on_pool_failure(self, reason, transport_failure_reason) -> None:
        self.failure = reason
        self.dispatcher.exit()

    # response decoder

    def decode_headers(self, headers, end_stream) -> None:
        self.status = headers.get(":status")
        self._end(end_stream)

    def decode_data(self, data, end_stream) -> None:
        self.body += data
        self._end(end_stream)

    def decode_trailers(self, trailers) -> None:
        self._end(True)

    def _end(self, end_stream: bool) -> None:
        if end_stream:
            self.complete = True
            # After the client has taken the response's end (the pool runs it now).
            self.dispatcher.post(self.dispatcher.exit)


@pytest.fixture
def pool_setup():
    upstream = KeepAliveUpstream()
    dispatcher = DispatcherImpl("pool-test")
    host = types.SimpleNamespace(address=Address("127.0.0.1", upstream.port), hostname="")
    pool = Http1ConnPool(dispatcher, host, ClusterInfo(name="app"))
    try:
        yield dispatcher, pool, upstream
    finally:
        pool.close()
        dispatcher.run()  # the closes and deferred deletes
        dispatcher.close()
        upstream.close()


def exchange(dispatcher: DispatcherImpl, pool: Http1ConnPool) -> Exchange:
    ex = Exchange(dispatcher)
    pool.new_stream(ex, ex)
    dispatcher.run()
    assert ex.failure is None
    assert (ex.status, ex.body, ex.complete) == ("200", b"ok", True)
    return ex


def test_a_second_request_reuses_the_idle_connection(pool_setup):
    dispatcher, pool, upstream = pool_setup
    first = exchange(dispatcher, pool)
    second = exchange(dispatcher, pool)
    assert second.client is first.client
    assert second.client.requests == 2 and second.client.reused
    assert upstream.connections == 1


def test_an_idle_connection_keeps_nothing_of_the_stream_it_served(pool_setup):
    dispatcher, pool, _upstream = pool_setup
    ex = exchange(dispatcher, pool)
    client = ex.client
    gone = weakref.ref(ex)
    del ex
    gc.collect()
    assert gone() is None, gc.get_referrers(gone())
    assert not client.closed and pool._ready == [client]  # still pooled, ready for the next request
