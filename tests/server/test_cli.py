"""The pyevent-envoy command: validate mode, errors before binding, the default config, signals."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "pyevent_envoy"]


def run(*args, **kwargs):
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, **kwargs)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_validate_accepts_the_examples():
    for example in sorted((ROOT / "examples").glob("envoy-*.yaml")):
        result = run("--mode", "validate", "-c", str(example))
        assert result.returncode == 0, (example, result.stderr)
        assert "OK" in result.stdout


def test_cli_reports_every_config_error_with_its_path_and_binds_nothing(tmp_path):
    port = free_port()
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"""
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: missing}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          unknown_field: 1
"""
    )
    for mode in ("validate", "serve"):
        result = run("--mode", mode, "-c", str(config))
        assert result.returncode == 1
        assert "unknown_field" in result.stderr
        assert "routes[0].route.cluster" in result.stderr
    with socket.socket() as probe:  # nothing was bound
        probe.bind(("127.0.0.1", port))


def test_cli_port_in_use_is_reported_with_the_listener_path(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = (ROOT / "examples" / "envoy-static.yaml").read_text().replace("10000", str(port))
    path = tmp_path / "c.yaml"
    path.write_text(config)
    try:
        result = run("-c", str(path))
    finally:
        holder.close()
    assert result.returncode == 1
    assert "static_resources.listeners[0].address" in result.stderr
    assert "address already in use" in result.stderr


def test_cli_default_config_serves_the_demo_upstream_and_exits_on_sigint():
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 10000))
        except OSError:
            pytest.skip("port 10000 is in use on this machine")
    proc = subprocess.Popen([*COMMAND], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", 10000, timeout=10)
                conn.request("GET", "/hello")
                response = conn.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        body = json.loads(response.read())
        conn.close()
        assert response.status == 200
        assert body["message"] == "hello from the pyevent-envoy demo upstream"
        assert body["path"] == "/hello"
        assert body["headers"]["x-forwarded-proto"] == "http"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "curl -i http://127.0.0.1:10000/" in err
    assert "Traceback" not in err


def test_cli_bad_concurrency_is_an_error():
    result = run("--concurrency", "0", "--mode", "validate")
    assert result.returncode == 1 and "concurrency" in result.stderr


def test_admin_endpoints_and_drain_listeners_keeps_running(tmp_path):
    admin_port, listen_port, upstream_port = free_port(), free_port(), free_port()
    config = (ROOT / "examples" / "envoy-static.yaml").read_text()
    config = config.replace("9901", str(admin_port)).replace("10000", str(listen_port)).replace("8080", str(upstream_port))
    path = tmp_path / "c.yaml"
    path.write_text(config)
    proc = subprocess.Popen([*COMMAND, "-c", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def admin(method, url):
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        conn.request(method, url)
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        return response.status, body

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = admin("GET", "/ready")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert (status, body) == (200, "LIVE\n")
        assert admin("GET", "/quitquitquit")[0] == 405  # mutations need POST
        assert "server.live: 1" in admin("GET", "/stats")[1]
        assert admin("POST", "/drain_listeners") == (200, "OK\n")
        deadline = time.monotonic() + 10
        while True:  # the listener stops accepting (on the worker's thread)
            try:
                socket.create_connection(("127.0.0.1", listen_port), timeout=2).close()
            except OSError:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None  # still running, as Envoy
        assert admin("GET", "/ready") == (200, "LIVE\n")  # as Envoy: the server is not draining
        assert admin("POST", "/quitquitquit") == (200, "OK\n")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, err


def test_tune_malloc_applies_on_glibc():
    import platform

    from pyevent_envoy.server.malloc_tuning import tune_malloc

    applied = tune_malloc()
    if platform.libc_ver()[0] == "glibc":
        assert applied is True
    else:
        assert applied is False
