"""Helpers for the HTTP filter tests: one proxy of each kind on the same YAML, and what a client sees.

:class:`Proxies` starts pyevent-envoy and (when installed) Envoy 1.40 on a
bootstrap made by ``harness.bootstrap_yaml`` with the given ``http_filters``
and an admin listener; :meth:`Proxies.each` runs one client exchange on
every kind and returns the answers by kind, for the test to compare.
"""

from __future__ import annotations

import gzip
import http.client
import os
import tempfile
import time
import urllib.request
from typing import Any, Callable, Optional

from harness import ACCESS_LOG_DEADLINE, KINDS, ProxyProcess, access_log_block, bootstrap_yaml, free_port, with_admin


class Answer:
    """A response as a client sees it: status, headers (lowercase names), the decoded body."""

    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw
        # What a client that asked for gzip decodes (curl --compressed would).
        self.body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" and raw else raw

    def view(self, *names: str) -> tuple:
        """Status, the named headers (None when absent) and the decoded body: what must match."""
        return (self.status, tuple(self.headers.get(n) for n in names), self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.headers} {len(self.raw)} bytes>"


def request(port: int, method: str, path: str, headers: Optional[dict] = None, body: Any = None, **kwargs: Any) -> Answer:
    """One request with http.client on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, **kwargs)
        response = conn.getresponse()
        headers_seen = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, headers_seen, response.read())
    finally:
        conn.close()


class Proxies:
    """One running proxy per kind in ``harness.KINDS``, on the same config, each with an admin.

    With ``log_format``, each kind also writes a file access log in that
    format (read with :meth:`log_lines`).
    """

    def __init__(
        self, clusters: dict[str, list[int]], virtual_hosts: str, http_filters: str, hcm_extra: str = "", log_format: str = ""
    ) -> None:
        self.processes: dict[str, ProxyProcess] = {}
        self.admin_ports: dict[str, int] = {}
        self._logs = tempfile.TemporaryDirectory()
        try:
            for kind in KINDS:
                port, admin = free_port(), free_port()
                extra = hcm_extra + (access_log_block(self.log_path(kind), text=log_format + "\\n") if log_format else "")
                config = with_admin(
                    bootstrap_yaml(port, clusters, virtual_hosts, hcm_extra=extra, http_filters=http_filters), admin
                )
                self.processes[kind] = ProxyProcess(kind, config, port)
                self.admin_ports[kind] = admin
        except BaseException:
            self.stop()
            raise

    def log_path(self, kind: str) -> str:
        return os.path.join(self._logs.name, f"{kind}.log")

    def log_lines(self, kind: str, count: int) -> list[str]:
        """The kind's access log once it has ``count`` lines (Envoy writes its file every 10 s: see ``ACCESS_LOG_DEADLINE``)."""
        deadline = time.monotonic() + ACCESS_LOG_DEADLINE
        lines: list[str] = []
        while time.monotonic() < deadline:
            if os.path.exists(self.log_path(kind)):
                with open(self.log_path(kind)) as handle:
                    lines = handle.read().splitlines()
                if len(lines) >= count:
                    return lines
            time.sleep(0.1)
        raise AssertionError(f"{kind}: fewer than {count} access log lines: {lines}")

    def each(self, exchange: Callable[[int], Any]) -> dict[str, Any]:
        """``exchange(port)`` on every kind, in order: ``{kind: result}``."""
        return {kind: exchange(process.port) for kind, process in self.processes.items()}

    def stats(self, kind: str, prefix: str) -> dict[str, int]:
        """The kind's counters and gauges whose names start with ``prefix`` (admin ``/stats``)."""
        url = f"http://127.0.0.1:{self.admin_ports[kind]}/stats?filter=^{prefix.replace('.', '[.]')}"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def stop(self) -> None:
        """Stop them all; pyevent-envoy must exit cleanly."""
        for kind, process in self.processes.items():
            code = process.stop()
            if kind == "pyevent-envoy":
                assert code == 0, process.stderr
                assert "Traceback" not in process.stderr, process.stderr
        self._logs.cleanup()
