"""A request on a pooled connection the upstream closed is retried once on a fresh one.

The upstream here answers the first request of each connection and closes
the connection, without a response, when a second one arrives on it: the
race of an upstream closing an idle keep-alive connection just as the proxy
reuses it.  Envoy answers 503 (UC) then unless a retry policy says
otherwise; pyevent-envoy retries a request without a body once.
"""

import http.client
import socket
import threading

import pytest

from harness import ProxyProcess, bootstrap_yaml, free_port, stop_listening

pytestmark = pytest.mark.timeout(60)

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class OneShotUpstream:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn):
        with conn:
            data = b""
            served = 0
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    _head, data = data.split(b"\r\n\r\n", 1)
                    if served:
                        return  # close instead of answering the reused connection
                    conn.sendall(RESPONSE)
                    served += 1

    def stop(self):
        stop_listening(self.sock)
        self.thread.join(timeout=30)


def test_request_on_a_reused_connection_the_upstream_closed_is_retried_once():
    upstream = OneShotUpstream()
    port = free_port()
    vh = 'virtual_hosts:\n- name: v\n  domains: ["*"]\n  routes:\n  - match: {prefix: "/"}\n    route: {cluster: app}\n'
    proxy = ProxyProcess("pyevent-envoy", bootstrap_yaml(port, {"app": [upstream.port]}, vh), port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"ok")
        conn.close()
        # Each request after the first went out on the pooled connection, found
        # it closed, and was retried on a new one.
        assert upstream.connections >= 3
    finally:
        assert proxy.stop() == 0, proxy.stderr
        upstream.stop()
