"""A real HTTP/1.1 upstream for the proxy tests: threads, keep-alive, a few behaviours by path.

- ``/echo...``: 200 with a JSON body describing the request (method, path, headers, body length).
- ``/sleep/<seconds>``: answers after sleeping.
- ``/bytes/<n>``: ``n`` bytes of a repeating pattern (Content-Length).
- ``/chunked/<n>``: ``n`` bytes, chunked.
- ``/status/<code>``: that status, empty body.
- ``/content?...``: ``length`` bytes of compressible text (:func:`text_bytes`;
  default 1000) with the response headers the query asks for: ``type``
  (Content-Type), ``etag``, ``cache_control``, ``encoding``
  (Content-Encoding), ``vary``; ``status`` (default 200); ``chunked=<size>``
  sends it chunked, one flushed chunk of that size at a time, instead of
  with a Content-Length, ``pause=<seconds>`` apart.
- ``/informational/<code>``: an interim (1xx) response with that status,
  then 200 ``final``.
- ``/close``: answers with ``Connection: close``.
- ``/die/<n>``: announces 1,000,000 bytes, sends ``n``, then closes.
- ``/flaky/<key>/<failures>/<how>``: counts the requests for ``key`` (any
  method, any query string); the first ``failures`` of them fail, the
  others answer 200 with the JSON description of ``/echo`` plus
  ``attempt`` (1 for the first request) and ``body`` (the request body as
  latin-1 text).  ``how`` is a status code (``503``: that status, with
  ``x-attempt`` and the body ``attempt <n> failed``), ``reset`` (the
  connection is closed without an answer) or ``sleep-<seconds>`` (200
  ``slept`` after that long).  Keys are never reset: give each case its
  own (tests that run on two proxies put the proxy's kind in the key).
- ``/attempts/<key>``: how many requests ``/flaky/<key>/...`` has had, as
  text (also ``Upstream.attempts(key)``).
- ``/healthz``: the health check path, answering as ``Upstream.health`` says
  (settable while running): ``200`` or any status code (empty body; with
  ``x-envoy-immediate-health-check-fail`` for ``"503-immediate"``; 200
  with ``x-envoy-degraded`` for ``"200-degraded"``),
  ``"hang"`` (no answer until the connection closes) or ``"reset"`` (the
  connection is closed without an answer).  ``Upstream.health_checks``
  counts the requests it had; ``Upstream.health_requests`` keeps them as
  ``(method, path, headers)`` and ``Upstream.health_ports`` the client
  port of each (one port: one connection).

- ``/hold/<key>``: waits until ``Upstream.release(key)``, then 200
  ``released``; ``Upstream.held(key)`` is how many wait now.

``Upstream.fail_with`` (settable while running; None by default) makes every
other request answer that status with an empty body, whatever its path;
with ``Upstream.fail_one_in = n`` only every ``n``-th request (counted
from when it is set) fails, the others are served as usual.

``Upstream(tls=ssl_context)`` serves HTTPS with that server context; the
handshake runs in the connection's own thread, so a client that never
finishes one holds up nobody else.  ``Upstream.sni`` lists the server names
its TLS clients sent (None when a client sent none) and
``Upstream.alpn`` the ALPN protocol each negotiated.
"""

from __future__ import annotations

import http.server
import json
import socketserver
import sys
import threading
import time
import urllib.parse

PATTERN = bytes(range(256)) * 256  # 64 KiB


def text_bytes(n: int) -> bytes:
    """``n`` bytes of numbered text lines: compressible, and each part of it different."""
    out = bytearray()
    line = 0
    while len(out) < n:
        out += b"pyevent-envoy and Envoy compress this line, number %08d.\n" % line
        line += 1
    return bytes(out[:n])


def pattern_bytes(n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        out += PATTERN[: n - len(out)]
    return bytes(out)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test-upstream"
    # Head and body are written separately: without this, Nagle's algorithm
    # and delayed ACKs hold every response for tens of milliseconds.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _describe(self, body: bytes) -> dict:
        return {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": len(body),
            "upstream": self.server.name,
        }

    def _flaky(self, body: bytes) -> None:
        _, _, key, failures, how = self.path.split("?", 1)[0].split("/", 4)
        with self.server.lock:
            attempt = self.server.attempts[key] = self.server.attempts.get(key, 0) + 1
        if attempt > int(failures):
            description = self._describe(body)
            description.update(attempt=attempt, body=body.decode("latin-1"))
            self._send(200, json.dumps(description).encode(), {"content-type": "application/json"})
        elif how == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
        elif how.startswith("sleep-"):
            time.sleep(float(how[len("sleep-") :]))
            self._send(200, b"slept")
        else:
            self._send(int(how), b"attempt %d failed" % attempt, {"x-attempt": str(attempt)})

    def _content(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True))
        body = text_bytes(int(query.get("length", "1000")))
        headers = {
            header: query[key]
            for key, header in (
                ("type", "content-type"),
                ("etag", "etag"),
                ("cache_control", "cache-control"),
                ("encoding", "content-encoding"),
                ("vary", "vary"),
            )
            if key in query
        }
        status = int(query.get("status", "200"))
        chunk = int(query.get("chunked", "0"))
        pause = float(query.get("pause", "0"))
        if not chunk:
            self._send(status, body if status not in (204, 304) else b"", headers)
            return
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        if self.command != "HEAD":
            for i in range(0, len(body), chunk):
                if i and pause:
                    time.sleep(pause)
                piece = body[i : i + chunk]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    def _hold(self, key: str) -> None:
        with self.server.lock:
            release = self.server.releases.setdefault(key, threading.Event())
            self.server.held[key] = self.server.held.get(key, 0) + 1
        try:
            release.wait(timeout=60)
        finally:
            with self.server.lock:
                self.server.held[key] -= 1
        self._send(200, b"released")

    def _health(self) -> None:
        with self.server.lock:
            self.server.health_checks += 1
            self.server.health_requests.append((self.command, self.path, dict(self.headers.items())))
            self.server.health_ports.append(self.client_address[1])
        mode = str(self.server.health)
        if mode == "hang":
            while self.server.health == "hang" and not self.server.stopping:
                time.sleep(0.02)
            self.close_connection = True
        elif mode == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
        elif mode == "503-immediate":
            self._send(503, b"", {"x-envoy-immediate-health-check-fail": "true"})
        elif mode == "200-degraded":
            self._send(200, b"", {"x-envoy-degraded": "true"})
        else:
            self._send(int(mode), b"")

    def _handle(self) -> None:
        body = self._body()
        path = self.path
        if path == "/healthz":
            self._health()
            return
        self.server.requests.append((self.command, self.path, dict(self.headers.items())))
        if self.server.fail_with is not None:
            with self.server.lock:
                self.server.fail_count += 1
                fail = self.server.fail_count % self.server.fail_one_in == 0
            if fail:
                self._send(int(self.server.fail_with), b"")
                return
        if path.startswith("/hold/"):
            self._hold(path.split("/")[2])
        elif path.startswith("/flaky/"):
            self._flaky(body)
        elif path.startswith("/attempts/"):
            self._send(200, str(self.server.attempts.get(path.split("/")[2], 0)).encode())
        elif path.startswith("/sleep/"):
            time.sleep(float(path.split("/")[2]))
            self._send(200, b"slept")
        elif path.startswith("/bytes/"):
            self._send(200, pattern_bytes(int(path.split("/")[2])), {"content-type": "application/octet-stream"})
        elif path.startswith("/chunked/"):
            n = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            data = pattern_bytes(n)
            for i in range(0, n, 10000):
                chunk = data[i : i + 10000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/die/"):
            # Promise more than is sent, then vanish mid-response.
            self.send_response(200)
            self.send_header("content-length", "1000000")
            self.end_headers()
            self.wfile.write(pattern_bytes(int(path.split("/")[2])))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
        elif path.startswith("/content"):
            self._content()
        elif path.startswith("/status/"):
            self._send(int(path.split("/")[2]), b"")
        elif path.startswith("/informational/"):
            self.wfile.write(b"HTTP/1.1 %s Interim\r\n\r\n" % path.split("/")[2].encode())
            self._send(200, b"final")
        elif path.startswith("/close"):
            self.close_connection = True
            self._send(200, b"closing", {"connection": "close"})
        else:
            self._send(
                200, json.dumps(self._describe(body)).encode(), {"content-type": "application/json", "x-upstream": self.server.name}
            )

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # bursts of connections must not overflow the listen backlog

    def process_request_thread(self, request, client_address):
        if self.tls is not None:
            try:
                request.settimeout(10)
                request = self.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except OSError:
                request.close()  # a failed handshake: the client sees it, the server goes on
                return
            with self.lock:
                self.alpn.append(request.selected_alpn_protocol())
        super().process_request_thread(request, client_address)

    def handle_error(self, request, client_address):
        # A proxy that gave up on a slow answer (a timeout) closed the
        # connection: writing the answer fails, which is expected here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Upstream:
    """Starts on 127.0.0.1 with a free port; ``stop()`` shuts it down."""

    def __init__(self, name: str = "upstream", tls=None) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.tls = tls
        self.server.sni = []
        self.server.alpn = []
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server.sni.append(name)
        self.server.name = name
        self.server.requests = []
        self.server.attempts = {}
        self.server.releases = {}
        self.server.held = {}
        self.server.lock = threading.Lock()
        self.server.health = 200
        self.server.fail_with = None
        self.server.fail_one_in = 1
        self.server.fail_count = 0
        self.server.health_checks = 0
        self.server.health_requests = []
        self.server.health_ports = []
        self.server.stopping = False
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list:
        return self.server.requests

    def attempts(self, key: str) -> int:
        """How many requests ``/flaky/<key>/...`` has had."""
        return self.server.attempts.get(key, 0)

    def held(self, key: str) -> int:
        """How many ``/hold/<key>`` requests are waiting."""
        with self.server.lock:
            return self.server.held.get(key, 0)

    def release(self, key: str) -> None:
        """Answer every waiting ``/hold/<key>`` request, and the later ones at once."""
        with self.server.lock:
            self.server.releases.setdefault(key, threading.Event()).set()

    @property
    def health(self):
        """How ``/healthz`` answers (see the module docstring)."""
        return self.server.health

    @health.setter
    def health(self, mode) -> None:
        self.server.health = mode

    @property
    def fail_with(self):
        """The status every request but ``/healthz`` gets, or None (normal behaviour)."""
        return self.server.fail_with

    @fail_with.setter
    def fail_with(self, status) -> None:
        self.server.fail_with = status

    @property
    def fail_one_in(self) -> int:
        """With ``fail_with`` set: only every ``fail_one_in``-th request fails (1 by default: all)."""
        return self.server.fail_one_in

    @fail_one_in.setter
    def fail_one_in(self, n: int) -> None:
        with self.server.lock:
            self.server.fail_count = 0
            self.server.fail_one_in = int(n)

    @property
    def health_checks(self) -> int:
        """How many requests ``/healthz`` has had."""
        return self.server.health_checks

    @property
    def health_requests(self) -> list:
        """The requests ``/healthz`` has had, as ``(method, path, headers)``."""
        return self.server.health_requests

    @property
    def health_ports(self) -> list:
        """The client port of each ``/healthz`` request."""
        return self.server.health_ports

    @property
    def sni(self) -> list:
        """The server name each TLS client sent (None: none), in order."""
        return self.server.sni

    @property
    def alpn(self) -> list:
        """The ALPN protocol each TLS connection negotiated (None: none), in order."""
        return self.server.alpn

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving (held requests are released); raises if that takes more than ``timeout`` s.

        ``BaseServer.shutdown()`` waits for ``serve_forever`` without a
        bound, and a teardown that stalls there stalls the whole run (a
        teardown after a failed test has no pytest-timeout alarm): it is
        asked from a helper thread, and the wait here is bounded.
        """
        self.server.stopping = True
        if not self.server.lock.acquire(timeout=timeout):
            raise RuntimeError(f"upstream {self.server.name!r}: its lock is still held after {timeout} s")
        try:
            for release in self.server.releases.values():
                release.set()
        finally:
            self.server.lock.release()
        threading.Thread(target=self.server.shutdown, name=f"{self.server.name} shutdown", daemon=True).start()
        self.thread.join(timeout)
        self.server.server_close()
        if self.thread.is_alive():
            raise RuntimeError(f"upstream {self.server.name!r}: serve_forever still runs {timeout} s after shutdown()")
