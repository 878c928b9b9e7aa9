"""Starting pyevent-envoy (and Envoy 1.40, the oracle) on one YAML, for the proxy tests."""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

from pyevent_envoy.testing.helpers import stop_listening  # noqa: F401  (the test upstreams import it from here)

ENVOY = shutil.which("envoy")
#: The proxies every differential case runs against: ours, and Envoy when installed.
KINDS = ["pyevent-envoy"] + (["envoy"] if ENVOY else [])


#: How long a proxy may take to listen after it is started.  A readiness
#: wait ends as soon as the port accepts: the bound only matters for a proxy
#: that never comes up, and a loaded machine may take many seconds to start
#: a Python process.
STARTUP_TIMEOUT = 60.0
#: How long ``ProxyProcess.stop`` waits for the proxy to exit after SIGTERM
#: (pyevent-envoy drains for ``--drain-time-s``), then again after SIGKILL.
STOP_TIMEOUT = 30.0
#: How long a test waits for access-log lines.  Envoy writes its log file
#: every 10 s (``--file-flush-interval-msec``'s default) and when it exits,
#: so a bound near 10 s fails on a loaded machine.
ACCESS_LOG_DEADLINE = 60.0


def raise_fd_limit() -> None:
    """Lift the soft open-file limit to the hard one (a thousand connections need two thousand fds).

    ``ProxyProcess`` calls it in the test process: the proxies inherit the
    limit (a ``preexec_fn`` would run Python in the forked child of a
    process with threads, which may deadlock before ``exec``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = STARTUP_TIMEOUT) -> None:
    """Until ``proc`` listens on ``port`` (one connection, closed at once).

    A probe from an ephemeral port can be given ``port`` itself as its
    source while nothing listens there yet: TCP then connects the socket to
    itself, which is not the proxy listening.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=STOP_TIMEOUT)
            raise RuntimeError(f"proxy exited with {proc.returncode}: {err.decode(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                if probe.getsockname() != probe.getpeername():
                    return
        except OSError:
            pass  # not listening yet: try again below
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def bootstrap_yaml(
    listen_port: int,
    clusters: dict[str, list[int]],
    virtual_hosts: str,
    hcm_extra: str = "",
    cluster_extra: "str | dict[str, str]" = "",
    http_filters: str = "",
) -> str:
    """An Envoy v3 bootstrap: one listener, the given virtual hosts (YAML), STATIC clusters.

    ``cluster_extra`` is YAML added to every cluster, or a dict of it by
    cluster name.  A cluster without ports has no endpoint.  ``http_filters``
    (a YAML list) go before the router.
    """
    cluster_items = []
    for name, ports in clusters.items():
        extra = cluster_extra.get(name, "") if isinstance(cluster_extra, dict) else cluster_extra
        endpoints = "".join(
            f"\n        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}"
            for port in ports
        )
        cluster_items.append(
            f"  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{textwrap.indent(extra, '    ')}"
            f"    load_assignment:\n      cluster_name: {name}\n      endpoints:\n"
            f"      - lb_endpoints:{endpoints if ports else ' []'}\n"
        )
    return (
        "static_resources:\n"
        "  listeners:\n"
        "  - name: test\n"
        f"    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        '          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n'
        "          stat_prefix: test\n"
        f"{textwrap.indent(hcm_extra, '          ')}"
        "          route_config:\n"
        "            name: test\n"
        f"{textwrap.indent(virtual_hosts, '            ')}"
        "          http_filters:\n"
        f"{textwrap.indent(http_filters, '          ')}"
        "          - name: envoy.filters.http.router\n"
        '            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n'
        "  clusters:\n" + "".join(cluster_items)
    )


class Blackhole:
    """A listening socket whose accept queue is full: connects to it hang (connect timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):  # backlog 0 still queues one or two; then SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.1)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


def access_log_block(path: str, **fmt: str) -> str:
    """The HCM's ``access_log:`` YAML: a file at ``path``, with ``text=`` or ``json=`` as its format."""
    lines = [
        "access_log:",
        "- name: envoy.access_loggers.file",
        "  typed_config:",
        '    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
        f"    path: {path}",
    ]
    if "text" in fmt:
        lines += ["    log_format:", f'      text_format_source: {{inline_string: "{fmt["text"]}"}}']
    if "json" in fmt:
        lines += ["    log_format:", f"      json_format: {fmt['json']}"]
    return "\n".join(lines) + "\n"


def with_admin(config: str, admin_port: int) -> str:
    """``config`` with an ``admin:`` listener on 127.0.0.1:``admin_port``."""
    return f"admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}\n" + config


class ProxyProcess:
    """pyevent-envoy (``kind="pyevent-envoy"``) or Envoy (``kind="envoy"``) on a config text.

    ``drain_time_s`` is passed to both as ``--drain-time-s`` (by default,
    5 s for pyevent-envoy's SIGTERM drain and Envoy's own default).
    """

    def __init__(self, kind: str, config: str, port: int, concurrency: int = 1, drain_time_s: int | None = None) -> None:
        self.kind = kind
        self.port = port
        self._dir = tempfile.TemporaryDirectory()
        path = os.path.join(self._dir.name, "bootstrap.yaml")
        with open(path, "w") as handle:
            handle.write(config)
        if kind == "envoy":
            cmd = [ENVOY, "-c", path, "--concurrency", str(concurrency), "-l", "error", "--base-id", str(random.randrange(1, 1 << 30)),
                   "--disable-hot-restart"]
        else:
            cmd = [sys.executable, "-m", "pyevent_envoy", "-c", path, "--concurrency", str(concurrency), "-l", "warning",
                   "--drain-time-s", str(5 if drain_time_s is None else drain_time_s)]
        if kind == "envoy" and drain_time_s is not None:
            cmd += ["--drain-time-s", str(drain_time_s)]
        raise_fd_limit()
        self.stderr: str | None = None  # set by stop()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_for_port(port, self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``; returns the exit status (again when called again).

        Every wait is bounded: a proxy (or anything holding its pipes) that
        outlives SIGKILL makes this raise instead of stalling a teardown.
        """
        if self.stderr is not None:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited between the wait and the kill
            _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        self.stderr = err.decode(errors="replace")
        self._dir.cleanup()
        return self.proc.returncode
