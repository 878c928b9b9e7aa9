#!/usr/bin/env python3
"""The "minimal uvloop proxy" peer: asyncio + httptools on uvloop, one upstream.

A reverse proxy as small as it can be while staying correct for the requests
that ``compare_proxies.py`` sends: HTTP/1.1 keep-alive clients, bodiless
``GET`` requests (a request body with ``Content-Length`` is forwarded too),
responses framed by ``Content-Length``, chunked transfer encoding or the
upstream closing.  Responses are streamed: every read from the upstream is
written to the client before the next one, and the upstream is paused while
the client's write buffer is full.  Upstream connections are kept alive in a
pool (LIFO, unbounded) and reused.

There is no timeout, no header limit beyond httptools' own, no retry, no
``Via``/``X-Forwarded-For``: this is the peer that does the least work, the
bar that a Python proxy on a fast event loop sets.

Usage::

    python3 benchmarks/proxy/uvloop_proxy.py --listen 127.0.0.1:10000 --upstream 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from collections import deque
from http import HTTPStatus

import httptools
import uvloop

# Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    )
)
STATUS_LINES = {
    int(s): b"HTTP/1.1 %d %s\r\n" % (s, s.phrase.encode()) for s in HTTPStatus
}
NOT_IMPLEMENTED = None  # queued in place of a request that is refused with 501
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n\r\nbad gateway"
)


class UpstreamPool:
    """Keep-alive connections to the one upstream; idle ones are reused LIFO."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.idle: list[Upstream] = []

    def acquire(self, downstream: "Downstream", request: bytes) -> None:
        while self.idle:
            up = self.idle.pop()
            if not up.closed:
                up.start(downstream, request)
                return
        self.loop.create_task(self._connect(downstream, request))

    async def _connect(self, downstream: "Downstream", request: bytes) -> None:
        try:
            _, up = await self.loop.create_connection(lambda: Upstream(self), self.host, self.port)
        except OSError:
            downstream.upstream_failed()
            return
        if downstream.transport.is_closing():  # the client left while we connected
            self.release(up)
            return
        up.start(downstream, request)

    def release(self, up: "Upstream") -> None:
        self.idle.append(up)


class Upstream(asyncio.Protocol):
    """One connection to the upstream; carries one request at a time."""

    __slots__ = (
        "pool", "transport", "parser", "downstream", "closed", "headers",
        "chunked", "out", "started",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.downstream: Downstream | None = None
        self.closed = False
        self.headers: list[bytes] = []
        self.chunked = False
        self.out: list[bytes] = []
        self.started = False  # response headers sent to the client

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.downstream is None:  # bytes while idle: the upstream is confused
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        # A close-delimited body ends here too: everything read has been written to the
        # client, and _fail() closes the client's connection after it.
        self.closed = True
        if self.downstream is None and self in self.pool.idle:
            self.pool.idle.remove(self)
        if self.downstream is not None:  # closed in the middle of a response
            self._fail()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"transfer-encoding":
                self.chunked = True
            return
        self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        ds = self.downstream
        status = self.parser.get_status_code()
        line = STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
        head = [line]
        head += self.headers
        self.headers = []
        if self.chunked:
            head.append(b"transfer-encoding: chunked\r\n")
        elif not (status < 200 or status in (204, 304) or _has_length(head)):
            # A close-delimited body from the upstream: closing ends it for the client too.
            ds.keep_alive = False
        if not ds.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.out.append(b"".join(head))
        self.started = True

    def on_body(self, body: bytes) -> None:
        if self.chunked:
            self.out.append(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if self.chunked:
            self.out.append(b"0\r\n\r\n")
        ds = self.downstream
        self.downstream = None
        self.chunked = False
        self.started = False
        self._flush_to(ds)
        if self.parser.should_keep_alive() and not self.closed:
            self.transport.resume_reading()
            self.pool.release(self)
        else:
            self.transport.close()
        ds.response_done()

    # internals
    def start(self, downstream: "Downstream", request: bytes) -> None:
        self.downstream = downstream
        downstream.upstream = self
        self.transport.write(request)
        if downstream.paused:
            self.transport.pause_reading()

    def _flush(self) -> None:
        if self.out and self.downstream is not None:
            self._flush_to(self.downstream)

    def _flush_to(self, ds: "Downstream") -> None:
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            ds.transport.write(data)

    def _fail(self) -> None:
        ds = self.downstream
        self.downstream = None
        self.out.clear()
        self.transport.close()
        if ds is not None:
            if self.started:  # part of the response is out: only closing tells the client
                ds.transport.close()
            else:
                ds.upstream_failed()


def _has_length(head: list[bytes]) -> bool:
    for line in head:
        if line[:15].lower() == b"content-length:":
            return True
    return False


class Downstream(asyncio.Protocol):
    """One client connection; requests are answered in order, one at a time."""

    __slots__ = (
        "pool", "transport", "parser", "url", "headers", "body", "queue",
        "busy", "keep_alive", "upstream", "paused",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[bytes] = []
        self.body: list[bytes] = []
        self.queue: deque[tuple[bytes | None, bool]] = deque()  # pipelined requests
        self.busy = False
        self.keep_alive = True
        self.upstream: Upstream | None = None
        self.paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        up = self.upstream
        self.upstream = None
        self.queue.clear()
        if up is not None and up.downstream is self:
            # The response is unfinished: the upstream connection cannot be reused.
            up.downstream = None
            up.transport.close()

    def pause_writing(self) -> None:
        self.paused = True
        if self.upstream is not None and self.upstream.downstream is self:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.upstream is not None and self.upstream.downstream is self:
            self.upstream.transport.resume_reading()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP_BY_HOP:
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        method = p.get_method()
        if method == b"HEAD" or method == b"CONNECT":
            # A response to HEAD has no body whatever its headers say, and httptools'
            # response parser cannot be told so: not supported here.
            self.queue.append((NOT_IMPLEMENTED, False))
            if not self.busy:
                self._next()
            return
        head = [b"%s %s HTTP/1.1\r\n" % (method, self.url)]
        head += self.headers
        if self.body:
            body = b"".join(self.body)
            head.append(b"content-length: %d\r\n\r\n" % len(body))
            head.append(body)
        else:
            head.append(b"\r\n")
        self.url = b""
        self.headers = []
        self.body = []
        self.queue.append((b"".join(head), p.should_keep_alive()))
        if not self.busy:
            self._next()

    # internals
    def _next(self) -> None:
        if not self.queue or self.transport.is_closing():
            return
        request, self.keep_alive = self.queue.popleft()
        if request is NOT_IMPLEMENTED:
            self.transport.write(
                b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()
            return
        self.busy = True
        self.pool.acquire(self, request)

    def response_done(self) -> None:
        self.busy = False
        self.upstream = None
        if not self.keep_alive:
            self.transport.close()
            return
        self._next()

    def upstream_failed(self) -> None:
        self.upstream = None
        self.busy = False
        self.transport.write(BAD_GATEWAY)
        self.transport.close()


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(listen: str, upstream: str, backlog: int) -> None:
    loop = asyncio.get_running_loop()
    pool = UpstreamPool(loop, *_hostport(upstream))
    host, port = _hostport(listen)
    server = await loop.create_server(
        lambda: Downstream(pool), host, port, backlog=backlog, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:10000", help="HOST:PORT to listen on")
    ap.add_argument("--upstream", default="127.0.0.1:8080", help="HOST:PORT of the upstream")
    ap.add_argument("--backlog", type=int, default=4096)
    args = ap.parse_args()
    uvloop.run(serve(args.listen, args.upstream, args.backlog))


if __name__ == "__main__":
    main()
