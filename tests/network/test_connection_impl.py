"""ServerConnectionImpl / ClientConnectionImpl over real loopback sockets."""

import socket
import time

import pytest

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.network import (
    Address,
    ClientConnectionImpl,
    ConnectionCallbacks,
    ConnectionCloseType,
    ConnectionEvent,
    ConnectionState,
    FilterStatus,
    ReadFilter,
    ServerConnectionImpl,
    TcpListenerImpl,
    create_listen_socket,
)

pytestmark = pytest.mark.timeout(60)


class Recorder(ReadFilter, ConnectionCallbacks):
    """Collects bytes and connection events; optionally echoes."""

    def __init__(self, dispatcher, echo=False):
        self.dispatcher = dispatcher
        self.echo = echo
        self.data = bytearray()
        self.events = []
        self.end_stream = False
        self.high = 0
        self.low = 0
        self.connection = None

    def initialize_read_filter_callbacks(self, callbacks):
        self.connection = callbacks.connection

    def on_data(self, data, end_stream):
        chunk = data.take()
        self.data += chunk
        self.end_stream = self.end_stream or end_stream
        if self.echo and chunk:
            self.connection.write(chunk)
        return FilterStatus.STOP_ITERATION

    def on_event(self, event):
        self.events.append(event)
        if event is not ConnectionEvent.CONNECTED:
            self.dispatcher.deferred_delete(self.connection)

    def on_above_write_buffer_high_watermark(self):
        self.high += 1

    def on_below_write_buffer_low_watermark(self):
        self.low += 1


class Server:
    """A listener whose accepted connections get a Recorder."""

    def __init__(self, dispatcher, echo=False):
        self.dispatcher = dispatcher
        self.echo = echo
        self.socket = create_listen_socket(Address("127.0.0.1", 0))
        self.address = Address("127.0.0.1", self.socket.getsockname()[1])
        self.recorders = []
        self.listener = TcpListenerImpl(dispatcher, self.socket, self)

    def on_accept(self, fd, remote):
        connection = ServerConnectionImpl(self.dispatcher, fd, remote, self.address)
        recorder = Recorder(self.dispatcher, echo=self.echo)
        connection.add_read_filter(recorder)
        connection.add_connection_callbacks(recorder)
        connection.initialize_read_filters()
        self.recorders.append(recorder)

    def close(self):
        self.listener.close()
        self.socket.close()
        for recorder in self.recorders:
            if recorder.connection.state is not ConnectionState.CLOSED:
                recorder.connection.close(ConnectionCloseType.NO_FLUSH)


def run_until(dispatcher, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        timer = dispatcher.create_timer(lambda: None)
        timer.enable_timer(0.005)
        dispatcher.run(RunType.NON_BLOCK)
        timer.close()


@pytest.fixture
def dispatcher():
    d = DispatcherImpl("test")
    yield d
    d.clear_deferred_delete_list()
    stats = d.statistics()
    d.close()
    assert stats.events_live == 0, stats


def accept_one(dispatcher):
    """A server, a plain-socket peer connected to it, and the server side's Recorder."""
    server = Server(dispatcher)
    peer = socket.create_connection(server.address)
    run_until(dispatcher, lambda: server.recorders)
    return server, peer, server.recorders[0]


def connect(dispatcher, address):
    connection = ClientConnectionImpl(dispatcher, address)
    recorder = Recorder(dispatcher)
    connection.add_read_filter(recorder)
    connection.add_connection_callbacks(recorder)
    connection.connect()
    return connection, recorder


def test_client_server_echo_roundtrip(dispatcher):
    server = Server(dispatcher, echo=True)
    client, recorder = connect(dispatcher, server.address)
    client.write(b"hello")  # held until connected, then flushed
    run_until(dispatcher, lambda: bytes(recorder.data) == b"hello")
    assert recorder.events == [ConnectionEvent.CONNECTED]
    assert client.bytes_written == 5 and client.bytes_read == 5
    client.close(ConnectionCloseType.NO_FLUSH)
    assert recorder.events[-1] is ConnectionEvent.LOCAL_CLOSE
    run_until(dispatcher, lambda: server.recorders[0].events == [ConnectionEvent.REMOTE_CLOSE])
    server.close()


def test_client_connect_refused_reports_remote_close_later(dispatcher):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    client, recorder = connect(dispatcher, Address("127.0.0.1", port))
    assert recorder.events == []  # never inside connect()
    run_until(dispatcher, lambda: recorder.events)
    assert recorder.events == [ConnectionEvent.REMOTE_CLOSE]
    assert "refused" in client.failure_reason.lower()


def test_server_connection_sees_peer_eof_as_remote_close(dispatcher):
    server = Server(dispatcher)
    peer = socket.create_connection(server.address)
    peer.sendall(b"abc")
    peer.shutdown(socket.SHUT_WR)
    run_until(dispatcher, lambda: server.recorders and server.recorders[0].events)
    recorder = server.recorders[0]
    assert bytes(recorder.data) == b"abc"
    assert recorder.end_stream  # the filters saw the end before the close
    assert recorder.events == [ConnectionEvent.REMOTE_CLOSE]
    peer.close()
    server.close()


def test_half_close_keeps_writing_after_peer_fin(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    connection.enable_half_close(True)
    peer.shutdown(socket.SHUT_WR)
    run_until(dispatcher, lambda: recorder.end_stream)
    assert connection.state is ConnectionState.OPEN
    connection.write(b"late reply", end_stream=True)
    run_until(dispatcher, lambda: connection.state is ConnectionState.CLOSED)
    peer.settimeout(10)
    assert peer.recv(100) == b"late reply"
    assert peer.recv(100) == b""
    peer.close()
    server.close()


def test_half_close_with_nothing_left_to_write_sends_the_fin(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    connection.enable_half_close(True)
    connection.write(b"", end_stream=True)  # an empty write buffer: only the end
    peer.setblocking(False)

    def peer_read():
        try:
            got.append(peer.recv(100))
            return True
        except BlockingIOError:
            return False

    got = []
    run_until(dispatcher, peer_read)
    assert got == [b""]  # the FIN, with the connection still open for reading
    assert connection.state is ConnectionState.OPEN
    peer.sendall(b"still read")
    run_until(dispatcher, lambda: bytes(recorder.data) == b"still read")
    peer.shutdown(socket.SHUT_WR)
    run_until(dispatcher, lambda: connection.state is ConnectionState.CLOSED)
    peer.close()
    server.close()


def test_write_buffer_watermarks_report_backpressure(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    connection.set_buffer_limits(64 * 1024)
    chunk = b"x" * 65536
    while not recorder.high:
        connection.write(chunk)  # the peer is not reading: the kernel fills, then our buffer
        dispatcher.run(RunType.NON_BLOCK)
    assert connection.above_high_watermark()
    received = 0
    peer.setblocking(False)
    deadline = time.monotonic() + 30
    while recorder.low == 0 and time.monotonic() < deadline:
        try:
            received += len(peer.recv(1 << 20))
        except BlockingIOError:
            pass
        dispatcher.run(RunType.NON_BLOCK)
    assert not connection.above_high_watermark()
    assert received > 0
    peer.close()
    server.close()


def test_read_disable_is_counted_and_buffered_data_is_dispatched_on_enable(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    connection.read_disable(True)
    connection.read_disable(True)
    peer.sendall(b"while disabled")
    for _ in range(5):
        run_until(dispatcher, lambda: True)
        dispatcher.run(RunType.NON_BLOCK)
    assert recorder.data == b""
    connection.read_disable(False)
    for _ in range(5):
        dispatcher.run(RunType.NON_BLOCK)
    assert recorder.data == b""  # still disabled once
    connection.read_disable(False)
    run_until(dispatcher, lambda: bytes(recorder.data) == b"while disabled")
    with pytest.raises(RuntimeError):
        connection.read_disable(False)
    peer.close()
    server.close()


def test_read_disabled_connection_still_notices_peer_close(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    recorder.connection.read_disable(True)
    peer.close()
    run_until(dispatcher, lambda: recorder.events)
    assert recorder.events == [ConnectionEvent.REMOTE_CLOSE]
    server.close()


def test_close_flush_write_sends_everything_then_closes(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    payload = b"y" * (4 * 1024 * 1024)
    connection.write(payload)
    connection.close(ConnectionCloseType.FLUSH_WRITE)
    assert connection.state is ConnectionState.CLOSING
    peer.setblocking(False)
    received = bytearray()
    eof = False
    deadline = time.monotonic() + 20
    while not eof and time.monotonic() < deadline:
        dispatcher.run(RunType.NON_BLOCK)
        try:
            data = peer.recv(1 << 20)
            if not data:
                eof = True
            received += data
        except BlockingIOError:
            pass
    assert eof and len(received) == len(payload)
    assert recorder.events == [ConnectionEvent.LOCAL_CLOSE]
    peer.close()
    server.close()


def test_many_chunk_writes_arrive_in_order_through_partial_sends(dispatcher):
    # Small and large chunks mixed: large buffers go out with sendmsg() over
    # the chunks, which the kernel takes in part while the peer reads slowly.
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    chunks = [bytes([i % 251]) * size for i, size in enumerate([200, 3 * 1024 * 1024, 7, 20 * 1024] * 6 + [1] * 40)]
    for chunk in chunks:
        connection.write(chunk)
    expected = b"".join(chunks)
    peer.setblocking(False)
    received = bytearray()
    deadline = time.monotonic() + 30
    while len(received) < len(expected) and time.monotonic() < deadline:
        dispatcher.run(RunType.NON_BLOCK)
        try:
            received += peer.recv(32 * 1024)  # slow reads: the sends are partial
        except BlockingIOError:
            time.sleep(0.0005)
    assert bytes(received) == expected
    assert connection.bytes_written == len(expected)
    peer.close()
    server.close()


def test_close_flush_write_and_delay_waits_for_the_peer(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    connection = recorder.connection
    connection.set_delayed_close_timeout(30)
    connection.write(b"bye")
    connection.close(ConnectionCloseType.FLUSH_WRITE_AND_DELAY)
    run_until(dispatcher, lambda: connection.write_buffer_length() == 0)  # writes go out in the loop
    peer.settimeout(10)
    assert peer.recv(10) == b"bye"
    for _ in range(5):
        dispatcher.run(RunType.NON_BLOCK)
    assert connection.state is ConnectionState.CLOSING  # waiting for the peer
    peer.close()
    run_until(dispatcher, lambda: recorder.events)
    assert recorder.events == [ConnectionEvent.REMOTE_CLOSE]
    server.close()


def test_close_flush_write_and_delay_times_out(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    recorder.connection.set_delayed_close_timeout(0.05)
    recorder.connection.close(ConnectionCloseType.FLUSH_WRITE_AND_DELAY)
    run_until(dispatcher, lambda: recorder.events)
    assert recorder.events == [ConnectionEvent.LOCAL_CLOSE]
    peer.close()
    server.close()


def test_write_to_reset_peer_closes_asynchronously(dispatcher):
    server, peer, recorder = accept_one(dispatcher)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()  # RST
    time.sleep(0.05)
    for _ in range(200):
        if recorder.events:
            break
        recorder.connection.write(b"z" * 65536)  # never raises
        dispatcher.run(RunType.NON_BLOCK)
    run_until(dispatcher, lambda: recorder.events)
    assert recorder.events == [ConnectionEvent.REMOTE_CLOSE]
    server.close()
