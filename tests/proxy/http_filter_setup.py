"""One proxy (pyevent-envoy or Envoy) with HTTP filters in front of the router, for the HTTP filter tests.

``FilterSetup`` writes a bootstrap with an admin, a node, one listener
whose connection manager has the given ``http_filters`` (YAML, put before
the router), virtual hosts and a file access log, and clusters of
127.0.0.1 ports; then it offers raw requests (status, headers and body as
the client gets them), the admin's stats and the access log lines.  The
fixtures ``app`` (a fresh upstream named "app" per test) and
``filter_setups`` (makes ``FilterSetup`` proxies, stopped after the test)
are imported by the test modules that use them.
"""

from __future__ import annotations

import http.client
import os
import socket
import tempfile
import textwrap
import time
from typing import Callable, Optional

import pytest

from harness import ProxyProcess, free_port
from upstream import Upstream

#: The access log line: what the filter tests compare.
LOG_FORMAT = "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n"
DEADLINE = 30.0

DEFAULT_VIRTUAL_HOSTS = """\
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: app}
"""


class Response:
    """One HTTP/1.1 response as read off the socket: status, headers (lowercase names, in order), body."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        values = [v for n, v in self.headers if n == name]
        return values[0] if values else None

    def names(self) -> set[str]:
        return {n for n, _ in self.headers}

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:60]!r}>"


def read_response(sock: socket.socket, head_request: bool = False) -> Response:
    """Read one response (Content-Length or no body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    length = 0 if head_request else int(dict(headers).get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, headers, rest[:length])


class FilterSetup:
    """``kind``'s proxy on a bootstrap with ``http_filters`` (YAML list entries) before the router.

    Args:
        kind: ``"pyevent-envoy"`` or ``"envoy"``.
        http_filters: YAML list entries (``- name: ...``) put before the router.
        clusters: cluster name -> endpoint ports; ``cluster_extra`` adds YAML to one cluster by name.
        virtual_hosts: YAML list entries of ``route_config.virtual_hosts``.
        node_cluster: the bootstrap's ``node.cluster``.
        concurrency: the number of workers.
    """

    def __init__(
        self,
        kind: str,
        http_filters: str,
        clusters: dict[str, list[int]],
        *,
        virtual_hosts: str = DEFAULT_VIRTUAL_HOSTS,
        cluster_extra: Optional[dict[str, str]] = None,
        node_cluster: str = "front-proxy",
        concurrency: int = 1,
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.admin_port = free_port()
        self._dir = tempfile.TemporaryDirectory()
        self.log_path = os.path.join(self._dir.name, "access.log")
        cluster_items = []
        for name, ports in clusters.items():
            endpoints = "".join(
                f"      - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
                for port in ports
            )
            lb = f"    - lb_endpoints:\n{endpoints}" if ports else ""
            extra = textwrap.indent((cluster_extra or {}).get(name, ""), "  ")
            cluster_items.append(
                f"- name: {name}\n  type: STATIC\n  connect_timeout: 1s\n{extra}"
                f"  load_assignment:\n    cluster_name: {name}\n" + (f"    endpoints:\n{lb}" if ports else "")
            )
        config = (
            f"node: {{id: test, cluster: {node_cluster}}}\n"
            f"admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {self.admin_port}}}}}\n"
            "static_resources:\n"
            "  listeners:\n"
            "  - name: test\n"
            f"    address: {{socket_address: {{address: 127.0.0.1, port_value: {self.port}}}}}\n"
            "    filter_chains:\n"
            "    - filters:\n"
            "      - name: envoy.filters.network.http_connection_manager\n"
            "        typed_config:\n"
            '          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n'
            "          stat_prefix: test\n"
            "          access_log:\n"
            "          - name: envoy.access_loggers.file\n"
            "            typed_config:\n"
            '              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n'
            f"              path: {self.log_path}\n"
            f'              log_format: {{text_format: "{LOG_FORMAT}"}}\n'
            "          route_config:\n"
            "            name: test\n"
            "            virtual_hosts:\n"
            f"{textwrap.indent(virtual_hosts, '            ')}"
            "          http_filters:\n"
            f"{textwrap.indent(http_filters, '          ')}"
            "          - name: envoy.filters.http.router\n"
            '            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n'
            "  clusters:\n" + textwrap.indent("".join(cluster_items), "  ")
        )
        self.proxy = ProxyProcess(kind, config, self.port, concurrency=concurrency)

    # requests

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def request(
        self, path: str, method: str = "GET", headers: Optional[dict[str, str]] = None, body: bytes = b"",
        sock: Optional[socket.socket] = None,
    ) -> Response:
        """One request, on ``sock`` (kept open) or on a connection of its own."""
        own = sock is None
        sock = sock or self.connect()
        try:
            fields = {"host": "example.com", **(headers or {})}
            if body:
                fields["content-length"] = str(len(body))
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
            sock.sendall(head.encode() + body)
            return read_response(sock, head_request=method == "HEAD")
        finally:
            if own:
                sock.close()

    # admin

    def admin(self, path: str, method: str = "GET") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def stats(self, prefix: str = "") -> dict[str, int]:
        """The admin's counters and gauges whose names start with ``prefix`` (histograms left out)."""
        out = {}
        for line in self.admin("/stats")[1].splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.kind}: {what} not reached in {DEADLINE} s")

    def log_lines(self, count: int) -> list[str]:
        """The first ``count`` access log lines, once they are written (both proxies write them a little later)."""

        def lines() -> list[str]:
            try:
                with open(self.log_path) as handle:
                    return handle.read().splitlines()
            except FileNotFoundError:
                return []

        self.wait_for(f"{count} access log lines", lambda: len(lines()) >= count)
        return lines()[:count]

    def close(self) -> None:
        self.proxy.stop()
        self._dir.cleanup()


@pytest.fixture
def app():
    server = Upstream("app")
    yield server
    server.stop()


@pytest.fixture
def filter_setups():
    made: list[FilterSetup] = []

    def make(*args, **kwargs) -> FilterSetup:
        setup = FilterSetup(*args, **kwargs)
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.close()
