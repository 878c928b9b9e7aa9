"""Access logs: the same format strings give the same lines from pyevent-envoy and Envoy 1.40."""

import http.client
import json
import os
import re
import time

import pytest

from harness import ACCESS_LOG_DEADLINE, KINDS, ProxyProcess, access_log_block, bootstrap_yaml, free_port

pytestmark = pytest.mark.timeout(120)

VHOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - name: echo_route
    match: {prefix: "/echo"}
    route: {cluster: app}
  - match: {prefix: "/down"}
    route: {cluster: down}
"""

TEXT_FORMAT = "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT% %UPSTREAM_HOST% %ROUTE_NAME% %REQ(X-MISSING)% %REQ(USER-AGENT):3%\\n"


def read_lines(path: str, count: int) -> list[str]:
    """The log's lines once it has ``count`` of them (Envoy writes its file every 10 s: see ``ACCESS_LOG_DEADLINE``)."""
    deadline = time.monotonic() + ACCESS_LOG_DEADLINE
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as handle:
                lines = handle.read().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} lines in {path}")


def run_requests(port: int) -> None:
    for path in ("/echo/a?x=1", "/down", "/nowhere"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers={"user-agent": "tester/1.0"})
        conn.getresponse().read()
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_access_log_text_format_lines(kind, upstream, tmp_path):
    port = free_port()
    down = free_port()
    log = str(tmp_path / "access.log")
    config = bootstrap_yaml(port, {"app": [upstream.port], "down": [down]}, VHOSTS, hcm_extra=access_log_block(log, text=TEXT_FORMAT))
    proxy = ProxyProcess(kind, config, port)
    try:
        run_requests(port)
        lines = read_lines(log, 3)
    finally:
        proxy.stop()
    body_len = lines[0].split()[5]
    assert lines[0] == f"GET /echo/a?x=1 HTTP/1.1 200 - {body_len} 127.0.0.1:{upstream.port} echo_route - tes"
    assert re.fullmatch(rf"GET /down HTTP/1\.1 503 UF \d+ 127\.0\.0\.1:{down} - - tes", lines[1]), lines[1]
    assert lines[2] == "GET /nowhere HTTP/1.1 404 NR 0 - - - tes"


@pytest.mark.parametrize("kind", KINDS)
def test_access_log_default_format(kind, upstream, tmp_path):
    port = free_port()
    log = str(tmp_path / "access.log")
    config = bootstrap_yaml(port, {"app": [upstream.port], "down": [free_port()]}, VHOSTS, hcm_extra=access_log_block(log))
    proxy = ProxyProcess(kind, config, port)
    try:
        run_requests(port)
        lines = read_lines(log, 3)
    finally:
        proxy.stop()
    pattern = (
        r'\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /echo/a\?x=1 HTTP/1\.1" 200 - 0 \d+ \d+ \d+ '
        rf'"-" "tester/1\.0" "[0-9a-f-]{{36}}" "127\.0\.0\.1:{port}" "127\.0\.0\.1:{upstream.port}"'
    )
    assert re.fullmatch(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_access_log_json_format(kind, upstream, tmp_path):
    port = free_port()
    log = str(tmp_path / "access.log")
    fmt = '{"method": "%REQ(:METHOD)%", "code": "%RESPONSE_CODE%", "missing": "%REQ(X-MISSING)%"}'
    config = bootstrap_yaml(port, {"app": [upstream.port], "down": [free_port()]}, VHOSTS, hcm_extra=access_log_block(log, json=fmt))
    proxy = ProxyProcess(kind, config, port)
    try:
        run_requests(port)
        lines = read_lines(log, 3)
    finally:
        proxy.stop()
    first = json.loads(lines[0])
    assert first["method"] == "GET"
    assert first["code"] in (200, "200")
    assert first["missing"] is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("use_remote_address", [False, True])
def test_access_log_client_address_with_trusted_hops(kind, upstream, tmp_path, use_remote_address):
    port = free_port()
    log = str(tmp_path / "access.log")
    extra = f"use_remote_address: {str(use_remote_address).lower()}\nxff_num_trusted_hops: 1\n" + access_log_block(
        log, text="%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\\n"
    )
    config = bootstrap_yaml(port, {"app": [upstream.port], "down": [free_port()]}, VHOSTS, hcm_extra=extra)
    proxy = ProxyProcess(kind, config, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/echo/x", headers={"x-forwarded-for": "192.0.2.10, 203.0.113.1"})
        conn.getresponse().read()
        conn.close()
        lines = read_lines(log, 1)
    finally:
        proxy.stop()
    assert lines[0] == ("203.0.113.1" if use_remote_address else "192.0.2.10")
    seen = upstream.requests[-1][2]
    assert {k.lower(): v for k, v in seen.items()}["x-forwarded-proto"] == "http"
