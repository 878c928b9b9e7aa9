"""One proxy (pyevent-envoy or Envoy) with an admin in front of one cluster, for the upstream-health tests.

``Setup`` starts it on a bootstrap whose cluster ``app`` has the given
endpoints and extra cluster YAML (``health_checks``, ``outlier_detection``),
and offers what those tests need: single requests, the ``cluster.app.``
stats from the admin, and polling with a deadline.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Callable

from harness import ProxyProcess, bootstrap_yaml, free_port, with_admin

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: app}
"""

#: How long a test waits for the proxy to reach a state.
DEADLINE = 30.0


class Setup:
    """``kind``'s proxy with an admin, routing everything to cluster ``app``.

    ``ports`` are the cluster's endpoints on 127.0.0.1 (upstreams, or ports
    where nothing listens); ``cluster_extra`` is YAML added to the cluster.
    """

    def __init__(self, kind: str, ports: list[int], cluster_extra: str) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        config = with_admin(
            bootstrap_yaml(self.port, {"app": ports}, VIRTUAL_HOSTS, cluster_extra=cluster_extra), self.admin_port
        )
        self.proxy = ProxyProcess(kind, config, self.port)

    def get(self, path: str = "/echo") -> tuple[int, str]:
        """``(status, upstream name or body)`` of one request on its own connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 200 and body.startswith(b"{"):
            return 200, json.loads(body)["upstream"]
        return response.status, body.decode(errors="replace")

    def spread(self, n: int = 8) -> list[tuple[int, str]]:
        return [self.get() for _ in range(n)]

    def admin(self, path: str) -> str:
        """The body of the admin's answer to ``GET path``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            conn.request("GET", path)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def stats(self) -> dict[str, int]:
        body = self.admin("/stats")
        out = {}
        for line in body.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith("cluster.app.") and value.lstrip("-").isdigit():
                out[name[len("cluster.app."):]] = int(value)
        return out

    def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.proxy.kind}: {what} not reached in {DEADLINE} s; stats {self.stats()}")

    def wait_for_stats(self, what: str, predicate: Callable[[dict[str, int]], bool]) -> dict[str, int]:
        self.wait_for(what, lambda: predicate(self.stats()))
        return self.stats()

    def close(self) -> None:
        self.proxy.stop()
