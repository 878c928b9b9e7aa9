"""pyevent_envoy._sockio: the connections' socket reads and writes, on real socket pairs."""

from __future__ import annotations

import errno
import socket
import threading

import pytest

from pyevent_envoy import _sockio

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair():
    """A connected, non-blocking TCP pair on 127.0.0.1 (the proxy's own kind of socket)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    client.setblocking(False)
    peer.setblocking(False)
    yield client, peer
    client.close()
    peer.close()


def read_all(sock: socket.socket, size: int) -> bytes:
    """Blocking-read exactly ``size`` bytes (the test's side of the pair)."""
    sock.setblocking(True)
    sock.settimeout(10)
    out = bytearray()
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        assert chunk, "peer closed early"
        out += chunk
    sock.setblocking(False)
    return bytes(out)


def test_constants_are_distinct_from_errno_values():
    assert _sockio.READ_EOF < 0 and _sockio.READ_FULL < 0
    assert _sockio.READ_EOF != _sockio.READ_FULL
    assert _sockio.EAGAIN == errno.EAGAIN
    assert _sockio.WRITEV_MAX >= 2


def test_read_nothing_waiting_would_block(pair):
    client, _ = pair
    assert _sockio.read(client.fileno(), 4096, False) == (b"", 0)


def test_read_returns_everything_waiting_as_one_bytes(pair):
    client, peer = pair
    peer.sendall(b"head\r\n\r\n")
    peer.sendall(b"x" * 100_000)
    expected = b"head\r\n\r\n" + b"x" * 100_000
    got = b""
    # Loopback may hand the bytes over in more than one edge; each read is one bytes object.
    for _ in range(100):
        data, code = _sockio.read(client.fileno(), 1 << 20, False)
        assert type(data) is bytes
        assert code == 0
        got += data
        if len(got) == len(expected):
            break
        threading.Event().wait(0.01)
    assert got == expected


def test_read_stops_at_cap_with_full(pair):
    client, peer = pair
    peer.sendall(b"abcdefgh")
    threading.Event().wait(0.05)
    assert _sockio.read(client.fileno(), 5, False) == (b"abcde", _sockio.READ_FULL)
    assert _sockio.read(client.fileno(), 5, False) == (b"fgh", 0)


def test_read_until_eof_reports_the_fin_with_the_last_bytes(pair):
    client, peer = pair
    peer.sendall(b"last")
    peer.shutdown(socket.SHUT_WR)
    threading.Event().wait(0.05)
    assert _sockio.read(client.fileno(), 4096, True) == (b"last", _sockio.READ_EOF)
    assert _sockio.read(client.fileno(), 4096, True) == (b"", _sockio.READ_EOF)


def test_short_read_without_until_eof_leaves_the_fin_for_later(pair):
    client, peer = pair
    peer.sendall(b"last")
    peer.shutdown(socket.SHUT_WR)
    threading.Event().wait(0.05)
    # A short read ends the loop (edge-triggered: EPOLLRDHUP tells the caller about the FIN).
    assert _sockio.read(client.fileno(), 4096, False) == (b"last", 0)
    assert _sockio.read(client.fileno(), 4096, False) == (b"", _sockio.READ_EOF)


def test_read_error_is_an_errno_code_not_an_exception():
    spare = socket.socket()
    fd = spare.detach()
    socket.close(fd)
    assert _sockio.read(fd, 16, False) == (b"", errno.EBADF)


def test_read_rejects_bad_arguments(pair):
    client, _ = pair
    with pytest.raises(ValueError):
        _sockio.read(client.fileno(), 0, False)
    with pytest.raises(ValueError):
        _sockio.read(-1, 16, False)
    with pytest.raises(TypeError):
        _sockio.read(client.fileno(), 16)


def test_write_sends_all_and_takes_any_bytes_like(pair):
    client, peer = pair
    assert _sockio.write(client.fileno(), b"hello ") == (6, 0)
    assert _sockio.write(client.fileno(), memoryview(b"world")) == (5, 0)
    assert _sockio.write(client.fileno(), b"") == (0, 0)
    assert read_all(peer, 11) == b"hello world"


def test_write_to_a_full_socket_stops_with_eagain_and_says_how_much_went(pair):
    client, peer = pair
    payload = b"y" * (64 << 20)
    sent, code = _sockio.write(client.fileno(), payload)
    assert code == errno.EAGAIN
    assert 0 < sent < len(payload)
    # What it said went out is exactly what arrives, in order.
    assert read_all(peer, sent) == payload[:sent]


def test_write_to_a_closed_peer_is_epipe_or_reset_not_sigpipe(pair):
    client, peer = pair
    peer.close()
    threading.Event().wait(0.05)
    codes = {_sockio.write(client.fileno(), b"z" * 65536)[1] for _ in range(3)}
    assert codes & {errno.EPIPE, errno.ECONNRESET}


def test_writev_sends_the_chunks_in_order(pair):
    client, peer = pair
    chunks = [b"HTTP/1.1 200 OK\r\n\r\n", b"a" * 70_000, b"tail"]
    total = sum(map(len, chunks))
    assert _sockio.writev(client.fileno(), chunks) == (total, 0)
    assert read_all(peer, total) == b"".join(chunks)


def test_writev_sends_at_most_writev_max_chunks_per_call(pair):
    client, peer = pair
    chunks = [bytes([65 + i % 26]) * 3 for i in range(_sockio.WRITEV_MAX + 5)]
    sent, code = _sockio.writev(client.fileno(), chunks)
    assert (sent, code) == (3 * _sockio.WRITEV_MAX, 0)
    assert read_all(peer, sent) == b"".join(chunks[: _sockio.WRITEV_MAX])


def test_writev_partial_send_resumes_at_the_right_byte(pair):
    client, peer = pair
    chunks = [b"p" * (8 << 20), b"q" * (8 << 20), b"r" * (8 << 20)]
    joined = b"".join(chunks)
    sent, code = _sockio.writev(client.fileno(), chunks)
    assert code == errno.EAGAIN and 0 < sent < len(joined)
    received = read_all(peer, sent)
    assert received == joined[:sent]


def test_writev_rejects_what_is_not_a_list_of_bytes(pair):
    client, _ = pair
    with pytest.raises(TypeError):
        _sockio.writev(client.fileno(), (b"a",))
    with pytest.raises(TypeError):
        _sockio.writev(client.fileno(), [b"a", "b"])
    assert _sockio.writev(client.fileno(), []) == (0, 0)


def test_each_thread_reads_into_its_own_scratch_buffer(pair):
    """Concurrent reads on two threads never see each other's bytes."""
    pairs = [pair]
    with socket.create_server(("127.0.0.1", 0)) as server:
        other = socket.create_connection(server.getsockname())
        other_peer, _ = server.accept()
    other.setblocking(False)
    pairs.append((other, other_peer))
    results: dict[int, bytes] = {}

    def reader(index: int, sock: socket.socket, fill: bytes) -> None:
        got = b""
        for _ in range(2000):
            data, code = _sockio.read(sock.fileno(), 4096, False)
            got += data
            assert code in (0, _sockio.READ_FULL)
            if len(got) >= 200_000:
                break
            threading.Event().wait(0.001)
        results[index] = got

    threads = []
    for index, ((reading, writing), fill) in enumerate(zip(pairs, (b"1", b"2"))):
        thread = threading.Thread(target=reader, args=(index, reading, fill))
        thread.start()
        threads.append((thread, writing, fill))
    for _thread, writing, fill in threads:
        writing.setblocking(True)
        writing.sendall(fill * 200_000)
    for thread, _writing, _fill in threads:
        thread.join(20)
    other.close()
    other_peer.close()
    assert results[0] == b"1" * 200_000
    assert results[1] == b"2" * 200_000
