"""Large bodies through the proxy: streamed both ways, with flow control, in bounded memory.

A 1 GiB upload (with Content-Length, and chunked) and a 1 GiB download go
through pyevent-envoy, and through Envoy 1.40 on the same YAML when it is
installed, to an upstream that consumes or produces the body as a
stream (it never holds more than one read's worth).  Each test checks the
byte count and a SHA-256 of what arrived, and samples the proxy's resident
memory (``VmRSS`` in ``/proc/<pid>/status``) during the transfer: it must
grow by less than :data:`RSS_GROWTH_LIMIT`, which it only does if the proxy
stops reading the fast side while the slow side catches up (watermarks and
read-disable on both connections).

The same goes through the HTTP filters that stream: a 1 GiB upload held by
a fault filter's delay (the body waits with flow control, then flows) and a
1 GiB download compressed frame by frame by the compressor filter.

On loopback each takes a few seconds (with pyevent-envoy about 1.3 s up with
Content-Length, 2 s chunked, 1.8 s down; with Envoy 0.9 s, 1.8 s and 1.6 s,
on the machine they were written on).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import zlib

import pytest

from harness import KINDS, ProxyProcess, bootstrap_yaml, free_port, rss_kb, stop_listening

pytestmark = pytest.mark.timeout(180)

GIB = 1 << 30
#: What the proxy's RSS may grow by during one transfer.
RSS_GROWTH_LIMIT = 64 << 20
#: One write's worth of the body: a repeating pattern, so nobody has to keep 1 GiB.
BLOCK = bytes(range(256)) * 4096  # 1 MiB
assert GIB % len(BLOCK) == 0

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: stream, timeout: 0s}
"""


def _pattern_digest(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // len(BLOCK)):
        digest.update(BLOCK)
    return digest.hexdigest()


EXPECTED_DIGEST = _pattern_digest(GIB)


class _Reader:
    """Buffered reads off a socket, without ever holding more than what was asked for plus one recv."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError("connection closed mid-line")
        end = self.buffer.index(b"\r\n")
        out = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return out

    def head(self) -> tuple[bytes, dict[str, str]]:
        first = self.line()
        headers = {}
        while True:
            line = self.line()
            if not line:
                return first, headers
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()

    def stream(self, size: int, digest: "hashlib._Hash") -> int:
        """Consume ``size`` bytes into ``digest``; returns how many came."""
        got = 0
        while got < size:
            if not self.buffer and not self._fill():
                break
            take = min(len(self.buffer), size - got)
            digest.update(memoryview(self.buffer)[:take])
            del self.buffer[:take]
            got += take
        return got

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise EOFError("connection closed mid-body")
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    def body(self, headers: dict[str, str], digest: "hashlib._Hash") -> int:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return total
                total += self.stream(size, digest)
                self.line()
        return self.stream(int(headers.get("content-length", "0")), digest)


class StreamingUpstream:
    """One connection at a time: ``POST`` bodies are hashed as they come; ``GET /bytes/<n>`` streams ``n`` bytes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            reader = _Reader(conn)
            try:
                while True:
                    first, headers = reader.head()
                    method, path, _ = first.decode().split(" ", 2)
                    if method == "GET" and path.startswith("/bytes/"):
                        size = int(path.split("/")[2])
                        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
                        for _ in range(size // len(BLOCK)):
                            conn.sendall(BLOCK)
                        continue
                    digest = hashlib.sha256()
                    received = reader.body(headers, digest)
                    body = json.dumps({"bytes": received, "sha256": digest.hexdigest()}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            except (EOFError, OSError, ValueError):
                return

    def stop(self) -> None:
        stop_listening(self.sock)


class RssSampler:
    """Samples a process's RSS every 20 ms on a thread; :attr:`peak_kb` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline_kb = rss_kb(pid)
        self.peak_kb = self.baseline_kb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))

    def stop(self) -> int:
        """Stop sampling; returns the growth in bytes."""
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
        return (self.peak_kb - self.baseline_kb) * 1024


@pytest.fixture(scope="module", params=KINDS)
def proxy(request):
    upstream = StreamingUpstream()
    port = free_port()
    process = ProxyProcess(request.param, bootstrap_yaml(port, {"stream": [upstream.port]}, VIRTUAL_HOSTS), port)
    # A warm-up exchange, so that the baseline RSS includes a connection pool and imports.
    _upload(process.port, 4 * len(BLOCK), chunked=False)
    yield process
    code = process.stop()
    upstream.stop()
    assert code == 0, process.stderr
    assert "Traceback" not in process.stderr, process.stderr


FILTERS = """\
- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    delay: {fixed_delay: 0.5s, percentage: {numerator: 100}}
    headers: [{name: x-delay, present_match: true}]
- name: envoy.filters.http.compressor
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    compressor_library:
      name: text
      typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip}
"""


@pytest.fixture(scope="module", params=KINDS)
def filtered_proxy(request):
    upstream = StreamingUpstream()
    port = free_port()
    config = bootstrap_yaml(port, {"stream": [upstream.port]}, VIRTUAL_HOSTS, http_filters=FILTERS)
    process = ProxyProcess(request.param, config, port)
    _upload(process.port, 4 * len(BLOCK), chunked=False, extra=b"x-delay: 1\r\n")
    _download_gzip(process.port, 4 * len(BLOCK))
    yield process
    code = process.stop()
    upstream.stop()
    assert code == 0, process.stderr
    assert "Traceback" not in process.stderr, process.stderr


def _upload(port: int, size: int, *, chunked: bool, extra: bytes = b"") -> dict:
    """POST ``size`` bytes of the pattern; returns the upstream's ``{"bytes", "sha256"}`` of what it got."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % size
        sock.sendall(b"POST /upload HTTP/1.1\r\nhost: test\r\n%s%s\r\n\r\n" % (extra, framing))
        chunk_head = b"%x\r\n" % len(BLOCK)
        for _ in range(size // len(BLOCK)):
            if chunked:
                sock.sendall(chunk_head + BLOCK + b"\r\n")
            else:
                sock.sendall(BLOCK)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        reader = _Reader(sock)
        first, headers = reader.head()
        assert first.startswith(b"HTTP/1.1 200"), first
        return json.loads(reader.exactly(int(headers["content-length"])))


def _download(port: int, size: int) -> tuple[int, str]:
    """GET ``size`` bytes (a whole number of blocks); returns how many arrived and their SHA-256."""
    assert size % len(BLOCK) == 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nhost: test\r\n\r\n" % size)
        reader = _Reader(sock)
        first, headers = reader.head()
        assert first.startswith(b"HTTP/1.1 200"), first
        assert int(headers["content-length"]) == size
        digest = hashlib.sha256()
        return reader.stream(size, digest), digest.hexdigest()


class _Gunzip:
    """A digest's ``update`` that gunzips what it is given, hashing and counting the output as it comes."""

    def __init__(self) -> None:
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.digest = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        out = self.decoder.decompress(data)
        self.digest.update(out)
        self.size += len(out)


def _download_gzip(port: int, size: int) -> tuple[int, str]:
    """GET ``size`` bytes asking for gzip; returns how many decoded bytes arrived and their SHA-256."""
    assert size % len(BLOCK) == 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nhost: test\r\naccept-encoding: gzip\r\n\r\n" % size)
        reader = _Reader(sock)
        first, headers = reader.head()
        assert first.startswith(b"HTTP/1.1 200"), first
        assert headers.get("content-encoding") == "gzip", headers
        gunzip = _Gunzip()
        reader.body(headers, gunzip)  # type: ignore[arg-type]
        assert gunzip.decoder.eof
        return gunzip.size, gunzip.digest.hexdigest()


def _timed(proxy: ProxyProcess, transfer) -> tuple[object, float, int]:
    sampler = RssSampler(proxy.proc.pid)
    start = time.monotonic()
    try:
        result = transfer()
    finally:
        growth = sampler.stop()
    elapsed = time.monotonic() - start
    print(f"{elapsed:.1f} s, {GIB / elapsed / 1e6:.0f} MB/s, RSS +{growth / 1e6:.1f} MB")
    return result, elapsed, growth


def test_upload_1gib_with_content_length(proxy):
    result, _, growth = _timed(proxy, lambda: _upload(proxy.port, GIB, chunked=False))
    assert result == {"bytes": GIB, "sha256": EXPECTED_DIGEST}
    assert growth < RSS_GROWTH_LIMIT


def test_upload_1gib_chunked(proxy):
    result, _, growth = _timed(proxy, lambda: _upload(proxy.port, GIB, chunked=True))
    assert result == {"bytes": GIB, "sha256": EXPECTED_DIGEST}
    assert growth < RSS_GROWTH_LIMIT


def test_download_1gib(proxy):
    result, _, growth = _timed(proxy, lambda: _download(proxy.port, GIB))
    assert result == (GIB, EXPECTED_DIGEST)
    assert growth < RSS_GROWTH_LIMIT


def test_upload_1gib_held_by_a_fault_delay(filtered_proxy):
    """The body of a delayed request is not read past the buffer limit until the delay is over."""
    result, elapsed, growth = _timed(filtered_proxy, lambda: _upload(filtered_proxy.port, GIB, chunked=False, extra=b"x-delay: 1\r\n"))
    assert result == {"bytes": GIB, "sha256": EXPECTED_DIGEST}
    assert elapsed >= 0.45
    assert growth < RSS_GROWTH_LIMIT


def test_download_1gib_compressed(filtered_proxy):
    result, _, growth = _timed(filtered_proxy, lambda: _download_gzip(filtered_proxy.port, GIB))
    assert result == (GIB, EXPECTED_DIGEST)
    assert growth < RSS_GROWTH_LIMIT
