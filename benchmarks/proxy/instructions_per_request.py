#!/usr/bin/env python3
"""User-space CPU instructions per proxied request, counted exactly with callgrind.

Throughput on a noisy 2-core machine moves by several percent from run to run,
so a change to the proxy's hot path that saves 2 % cannot be seen in req/s.
The instructions a proxy executes per request can: each proxy runs under
``valgrind --tool=callgrind --instr-atstart=no``, is warmed up with requests
that are not counted, then ``callgrind_control -i on`` opens the window, N
requests go through it over 4 kept-alive connections in turn (one request in
flight at a time), and ``callgrind_control -i off`` closes it.  Callgrind
writes its counts when the proxy exits; their total over N is the figure.

Valgrind runs one thread at a time and counts every instruction it executes,
so the count does not depend on the machine's load or clock: it repeats within
0.2 % on the small body and about 1-3 % on 64 KiB, where the event loop's
wake-ups per response vary with the timing between processes.  It counts
user-space instructions only: the kernel's share (the socket system calls) is
left out, and it is the same for every proxy that makes the same reads and
writes.  Large copies are ``rep movsb`` in glibc, which valgrind counts once
per byte, so each copy of the 64 KiB body adds ~65,600.  It is a cost metric,
not a throughput figure: it says nothing about waiting, batching under
concurrency or the kernel's work.

The proxies are pyevent-envoy, ``tcp_relay.py`` (pyevent-envoy's event and
network layers alone: the floor under it) and ``uvloop_proxy.py`` (the minimal
uvloop + httptools proxy), in front of the nginx upstream of
``compare_proxies.py``, each started afresh for each body.  See README.md in
this directory.

Usage::

    python3 benchmarks/proxy/instructions_per_request.py                   # 2000 requests per body
    python3 benchmarks/proxy/instructions_per_request.py --requests 200 --warmup 50 --bodies small
    python3 benchmarks/proxy/instructions_per_request.py --proxies pyevent-envoy,pe-tcp-relay
    python3 benchmarks/proxy/instructions_per_request.py --json out.json   # table plus a JSON file
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from compare_proxies import (  # noqa: E402  (needs HERE on sys.path)
    BODIES,
    BODY_LABELS,
    LABELS,
    PE,
    PE_TCP,
    TCP_RELAY,
    UVLOOP,
    UVLOOP_PROXY,
    Bench,
    Failure,
    Proc,
    check_proxy,
    envoy_yaml,
    first_line,
    free_port,
    log,
    run_main,
    stop_and_clean,
    write_report,
)

PROXIES = [PE, PE_TCP, UVLOOP]
CONNECTIONS = 4  # kept-alive client connections, used in turn
READY_TIMEOUT = 120.0  # start-up under valgrind is slow
EXIT_TIMEOUT = 120.0  # callgrind writes its files as the proxy exits
REQUEST_TIMEOUT = 60.0
# pyevent-envoy merges its stats every stats_flush_interval (5 s by default) on the main thread.
# Under valgrind's slowdown one merge falls on a few thousand requests instead of ~100,000 and
# comes or not depending on timing (+3 % on the small body); Envoy's maximum keeps it out.
STATS_FLUSH_S = 299


# --------------------------------------------------------------------------- the proxies


def unavailable(bench: Bench, proxy: str) -> str | None:
    """None if the proxy can run under valgrind with this interpreter, else why not."""
    if proxy == PE and importlib.util.find_spec("pyevent_envoy.__main__") is None:
        return f"pyevent_envoy is not importable by {sys.executable}"
    return bench.available(proxy)


def proxy_argv(bench: Bench, proxy: str, port: int, name: str) -> list[str]:
    """The proxy's command line as compare_proxies.py has it, run by this interpreter.

    pyevent-envoy runs as ``python -m pyevent_envoy`` (the ``pyevent-envoy`` on
    PATH may be a shell wrapper such as a pyenv shim, and valgrind would count
    the shell, not the interpreter it execs), with ``-l warning`` and the
    longest stats flush interval (see STATS_FLUSH_S).
    """
    python = sys.executable
    if proxy == PE:
        conf = bench.tmp / f"{name}.yaml"
        conf.write_text(envoy_yaml(port, bench.upstream_port) + f"stats_flush_interval: {STATS_FLUSH_S}s\n")
        return [python, "-m", "pyevent_envoy", "-c", str(conf), "--concurrency", "1", "-l", "warning"]
    script = UVLOOP_PROXY if proxy == UVLOOP else TCP_RELAY
    return [python, str(script), "--listen", f"127.0.0.1:{port}",
            "--upstream", f"127.0.0.1:{bench.upstream_port}"]


def wait_ready(proc: Proc, port: int, expected: dict[str, bytes]) -> None:
    """Poll with real requests (every body, byte for byte) until the proxy answers."""
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise Failure(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            check_proxy(port, expected, timeout=REQUEST_TIMEOUT)
            return
        except (OSError, Failure, ValueError, IndexError) as e:
            last = e
            time.sleep(0.5)
    raise Failure(f"{proc.name} not answering correctly on {port} after {READY_TIMEOUT:.0f} s ({last}):\n"
                  f"{proc.log_tail()}")


def callgrind_control(proc: Proc, *options: str) -> None:
    """Run ``callgrind_control OPTIONS PID``; it returns once valgrind has acted on the command."""
    argv = ["callgrind_control", *options, str(proc.pid)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=REQUEST_TIMEOUT)
    if r.returncode != 0 or "OK" not in r.stdout:
        raise Failure(f"{' '.join(argv)} failed: {(r.stdout + r.stderr).strip()}")


def send(conns: list[http.client.HTTPConnection], path: str, body: bytes, n: int) -> None:
    """n requests over the connections in turn, each response checked byte for byte.

    A connection the proxy closed would be reopened silently by http.client and
    its set-up counted as request cost, so a response that closes fails the run.
    """
    for i in range(n):
        conn = conns[i % len(conns)]
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise Failure(f"GET {path}: status {resp.status}")
        if data != body:
            raise Failure(f"GET {path}: {len(data)} bytes, not the expected {len(body)}")
        if resp.will_close:
            raise Failure(f"GET {path}: the proxy closed a keep-alive connection")


def callgrind_totals(files: list[Path]) -> int:
    """Sum of the ``totals:`` lines (Ir, the only event collected) over every dump file."""
    total = 0
    for path in files:
        found = False
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("totals:"):
                    total += int(line.split()[1])
                    found = True
        if not found:
            raise Failure(f"no 'totals:' line in {path}")
    return total


def measure(bench: Bench, proxy: str, body: str, requests: int, warmup: int) -> dict[str, Any]:
    """Start the proxy under callgrind, count the instructions of ``requests`` requests, stop it."""
    bench.ensure_upstream()
    port = free_port()
    name = f"{proxy}-{body}"
    out = bench.tmp / f"{name}.cg"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p",
            *proxy_argv(bench, proxy, port, name)]
    path, expected = BODIES[body], bench.expected[body]
    proc = Proc(name, argv, bench.tmp)
    started = time.monotonic()
    conns: list[http.client.HTTPConnection] = []
    try:
        wait_ready(proc, port, bench.expected)
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
                 for _ in range(CONNECTIONS)]
        send(conns, path, expected, warmup)
        callgrind_control(proc, "-i", "on")
        t0 = time.monotonic()
        send(conns, path, expected, requests)
        seconds = time.monotonic() - t0
        callgrind_control(proc, "-i", "off")
        if proxy == PE and time.monotonic() - started >= STATS_FLUSH_S:
            log(f"  warning: {name} ran {STATS_FLUSH_S} s or more, so a stats flush may be in the count; "
                f"use fewer --requests")
        for conn in conns:
            conn.close()
        # Every proxy here stops on SIGINT; with no client left pyevent-envoy's drain ends at once.
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.popen.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failure(f"{name} did not exit within {EXIT_TIMEOUT:.0f} s of SIGINT:\n{proc.log_tail()}") from None
    finally:
        for conn in conns:
            conn.close()
        proc.stop()
    files = sorted(bench.tmp.glob(f"{out.name}.*"))
    if not files:
        raise Failure(f"callgrind wrote no file for {name}:\n{proc.log_tail()}")
    total = callgrind_totals(files)
    return {"instructions": total, "requests": requests, "per_request": total / requests,
            "files": len(files), "window_seconds": seconds}


def run_all(bench: Bench, proxies: list[str], bodies: list[str], requests: int,
            warmup: int) -> dict[str, dict[str, dict[str, Any]]]:
    """results[proxy][body] = a measurement or {"error": ...}."""
    results: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in proxies}
    for proxy in proxies:
        for body in bodies:
            log(f"{proxy}, {body}: {warmup} requests to warm up, {requests} counted")
            try:
                res = measure(bench, proxy, body, requests, warmup)
            except (Failure, OSError, subprocess.TimeoutExpired, http.client.HTTPException) as e:
                log(f"  failed: {e}")
                results[proxy][body] = {"error": first_line(e)}
                continue
            results[proxy][body] = res
            log(f"  {res['per_request']:,.0f} instructions per request "
                f"({res['instructions']:,} in {res['files']} file(s), {res['window_seconds']:.1f} s under valgrind)")
    return results


# --------------------------------------------------------------------------- report


def derived(results: dict[str, dict[str, dict[str, Any]]], bodies: list[str]) -> dict[str, dict[str, float]]:
    """Per body: pyevent-envoy over the uvloop proxy and over the relay, and PE minus the relay."""
    out: dict[str, dict[str, float]] = {}
    for body in bodies:
        per = {p: r[body]["per_request"] for p, r in results.items() if "per_request" in r.get(body, {})}
        d: dict[str, float] = {}
        if PE in per and UVLOOP in per:
            d["pe_vs_uvloop"] = per[PE] / per[UVLOOP]
        if PE in per and PE_TCP in per:
            d["pe_vs_relay"] = per[PE] / per[PE_TCP]
            d["http_layers"] = per[PE] - per[PE_TCP]
        out[body] = d
    return out


def render(report: dict[str, Any]) -> str:
    cfg, bodies = report["config"], report["config"]["bodies"]
    lines = ["## User-space instructions per proxied request (callgrind, HTTP/1.1, loopback)", ""]
    lines += ["| setup | |", "|---|---|"]
    lines.append(f"| Python, valgrind | {report['machine']['python']}, {report['machine']['valgrind']} |")
    lines.append(f"| uvloop, httptools | {report['machine']['uvloop']}, {report['machine']['httptools']} |")
    lines.append(f"| method | {cfg['warmup']} requests to warm up, then {cfg['requests']} counted, over "
                 f"{cfg['connections']} kept-alive connections in turn, one in flight; each proxy "
                 f"restarted per body |")
    lines.append("")
    lines.append("| instructions per request |" + "".join(f" {BODY_LABELS[b]} |" for b in bodies))
    lines.append("|---|" + "--:|" * len(bodies))
    notes: list[str] = []
    for proxy in report["proxies"]:
        row = f"| {LABELS[proxy]} |"
        why = report["unavailable"].get(proxy)
        if why:
            lines.append(row + f" not available ({why}) |" + " |" * (len(bodies) - 1))
            continue
        for body in bodies:
            r = report["results"][proxy][body]
            if "error" in r:
                row += " failed (see below) |"
                notes.append(f"{LABELS[proxy]}, {BODY_LABELS[body]}: {r['error']}")
            else:
                row += f" {r['per_request']:,.0f} |"
        lines.append(row)
    for key, label, fmt in (
        ("pe_vs_uvloop", "pyevent-envoy / uvloop proxy", "{:.2f}x"),
        ("pe_vs_relay", "pyevent-envoy / TCP relay", "{:.2f}x"),
        ("http_layers", "HTTP layers (pyevent-envoy - TCP relay)", "{:,.0f}"),
    ):
        cells = [report["derived"][b].get(key) for b in bodies]
        lines.append(f"| {label} |" + "".join(" - |" if v is None else f" {fmt.format(v)} |" for v in cells))
    lines.append("")
    if notes:
        lines += ["Failures:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines) + "\n"


def valgrind_version() -> str:
    r = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip() or "n.a."


def module_version(name: str) -> str:
    try:
        return __import__(name).__version__
    except Exception:
        return "n.a."


# --------------------------------------------------------------------------- main


def _names(value: str, known: list[str], what: str, ap: argparse.ArgumentParser) -> list[str]:
    wanted = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in known]
    if unknown or not wanted:
        ap.error(f"unknown or no {what} {unknown}; choose from {','.join(known)}")
    return [k for k in known if k in wanted]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests counted per proxy and body (2000)")
    ap.add_argument("--warmup", type=int, default=300, help="requests before the count starts (300)")
    ap.add_argument("--bodies", default=",".join(BODIES), help=f"comma-separated subset of {','.join(BODIES)}")
    ap.add_argument("--proxies", default=",".join(PROXIES), help=f"comma-separated subset of {','.join(PROXIES)}")
    ap.add_argument("--json", metavar="PATH", help="also write everything as JSON to PATH ('-': JSON only, on stdout)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (callgrind files for callgrind_annotate, logs)")
    args = ap.parse_args()
    bodies = _names(args.bodies, list(BODIES), "bodies", ap)
    proxies = _names(args.proxies, PROXIES, "proxies", ap)
    if args.requests < 1 or args.warmup < 0:
        ap.error("--requests must be at least 1 and --warmup at least 0")
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            ap.error(f"{tool} not found on PATH (Debian: apt-get install -y valgrind)")
    if not shutil.which("nginx"):
        ap.error("nginx not found on PATH (Debian: apt-get install -y nginx-light)")
    with open(sys.executable, "rb") as f:
        if f.read(2) == b"#!":  # valgrind would count the wrapper's shell, not the interpreter it execs
            ap.error(f"{sys.executable} is a script, not the interpreter; run this with the python binary")

    # Stop everything on SIGTERM/SIGHUP as on Ctrl-C.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    tmp = Path(tempfile.mkdtemp(prefix="pyevent-envoy-instructions-"))
    # Bench reads only wrk's connection count from its arguments, and wrk is not run here.
    bench = Bench(tmp, argparse.Namespace(connections=CONNECTIONS))
    try:
        missing = {p: why for p in proxies if (why := unavailable(bench, p))}
        for p, why in missing.items():
            log(f"{p}: not available ({why})")
        log(f"temp dir {tmp}")
        bench.ensure_upstream()
        results = run_all(bench, [p for p in proxies if p not in missing], bodies, args.requests, args.warmup)
    finally:
        stop_and_clean(bench, tmp, args.keep)

    report = {
        "machine": {
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "valgrind": valgrind_version(),
            "uvloop": module_version("uvloop"),
            "httptools": module_version("httptools"),
        },
        "config": {"requests": args.requests, "warmup": args.warmup, "connections": CONNECTIONS,
                   "bodies": bodies},
        "proxies": proxies,
        "unavailable": missing,
        "results": results,
        "derived": derived(results, bodies),
    }
    write_report(report, args.json, render)
    return 1 if any("error" in r for p in results.values() for r in p.values()) else 0


if __name__ == "__main__":
    run_main(main)
