"""The ``envoy.filters.http.fault`` filter, differentially against Envoy 1.40.

Percentages are 0 or 100 % only, so every case is deterministic.  Each
case sends the same requests to both proxies and compares the answers, the
access log's ``%RESPONSE_FLAGS%`` and ``%RESPONSE_CODE_DETAILS%``, the
delays (measured by the client) and the ``fault.`` stats.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from filter_setup import Proxies, request

pytestmark = pytest.mark.timeout(180)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/other"}
    route: {cluster: other}
  - match: {prefix: "/"}
    route: {cluster: app}
"""

FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

#: Three fault filters: a delay for node-a's requests marked x-delay, an abort
#: for requests to the app cluster marked x-abort, an abort that never draws.
FIXED_FILTERS = f"""\
- name: delay
  typed_config:
    "@type": {FAULT_TYPE}
    delay: {{fixed_delay: 0.4s, percentage: {{numerator: 1000000, denominator: MILLION}}}}
    headers: [{{name: x-delay, present_match: true}}]
    downstream_nodes: [node-a]
- name: abort
  typed_config:
    "@type": {FAULT_TYPE}
    abort: {{http_status: 503, percentage: {{numerator: 100}}}}
    headers: [{{name: x-abort, string_match: {{exact: "yes"}}}}]
    upstream_cluster: app
- name: never
  typed_config:
    "@type": {FAULT_TYPE}
    abort: {{http_status: 500, percentage: {{numerator: 0, denominator: TEN_THOUSAND}}}}
"""

#: Faults the request asks for, at most one active at a time.
HEADER_FILTERS = f"""\
- name: envoy.filters.http.fault
  typed_config:
    "@type": {FAULT_TYPE}
    abort: {{header_abort: {{}}, percentage: {{numerator: 100}}}}
    delay: {{header_delay: {{}}, percentage: {{numerator: 100}}}}
    max_active_faults: 1
"""

#: A delayed answer takes at least this long: the 0.4 s delays less the few
#: milliseconds a timer may fire early (it counts from the loop's cached time).
DELAYED = 0.38

LOG_FORMAT = "%REQ(X-CASE)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%"


@pytest.fixture(scope="module")
def fixed(upstream):
    proxies = Proxies({"app": [upstream.port], "other": [upstream.port]}, VIRTUAL_HOSTS, FIXED_FILTERS, log_format=LOG_FORMAT)
    yield proxies
    proxies.stop()


@pytest.fixture(scope="module")
def from_headers(upstream):
    proxies = Proxies({"app": [upstream.port], "other": [upstream.port]}, VIRTUAL_HOSTS, HEADER_FILTERS)
    yield proxies
    proxies.stop()


def timed(port: int, method: str, path: str, headers: dict, body=None) -> tuple:
    """``(status, content-type, body or the upstream's body length, seconds)`` of one request."""
    start = time.monotonic()
    answer = request(port, method, path, headers, body=body)
    elapsed = time.monotonic() - start
    if answer.headers.get("content-type") == "application/json":
        return answer.status, "upstream", json.loads(answer.body)["body_length"], elapsed
    return answer.status, answer.headers.get("content-type"), answer.body, elapsed


def same(proxies, method, path, headers, body=None) -> tuple:
    """The answer (without the time) every kind gives, and each kind's time."""
    results = proxies.each(lambda port: timed(port, method, path, headers, body))
    answers = {kind: r[:3] for kind, r in results.items()}
    assert len(set(answers.values())) == 1, answers
    return answers["pyevent-envoy"], {kind: r[3] for kind, r in results.items()}


# (case, path, request headers, answer, delayed?, flags, details)
FIXED_CASES = [
    ("plain", "/echo", {}, (200, "upstream", 0), False, "-", "via_upstream"),
    ("abort", "/echo", {"x-abort": "yes"}, (503, "text/plain", b"fault filter abort"), False, "FI", "fault_filter_abort"),
    ("abort-no-match", "/echo", {"x-abort": "no"}, (200, "upstream", 0), False, "-", "via_upstream"),
    ("abort-other-cluster", "/other", {"x-abort": "yes"}, (200, "upstream", 0), False, "-", "via_upstream"),
    # Without header_abort / header_delay the x-envoy-fault-* headers do nothing.
    ("headers-ignored", "/echo", {"x-envoy-fault-abort-request": "500", "x-envoy-fault-delay-request": "500"}, (200, "upstream", 0), False, "-", "via_upstream"),
    ("delay", "/echo", {"x-delay": "1", "x-envoy-downstream-service-node": "node-a"}, (200, "upstream", 0), True, "DI", "via_upstream"),
    ("delay-other-node", "/echo", {"x-delay": "1", "x-envoy-downstream-service-node": "node-b"}, (200, "upstream", 0), False, "-", "via_upstream"),
    ("delay-no-node", "/echo", {"x-delay": "1"}, (200, "upstream", 0), False, "-", "via_upstream"),
    (
        "delay-then-abort",
        "/echo",
        {"x-delay": "1", "x-envoy-downstream-service-node": "node-a", "x-abort": "yes", "x-envoy-downstream-service-cluster": "front"},
        (503, "text/plain", b"fault filter abort"),
        True,
        "DI,FI",
        "fault_filter_abort",
    ),
]


def test_fixed_faults_match_envoy(fixed):
    before = {kind: fixed.stats(kind, "http.test.fault.") for kind in fixed.processes}
    for case, path, headers, answer, delayed, _, _ in FIXED_CASES:
        got, times = same(fixed, "GET", path, dict(headers, **{"x-case": case}))
        assert got == answer, case
        for kind, seconds in times.items():
            assert (seconds >= DELAYED) == delayed, (case, kind, seconds)
            assert seconds < 2.0, (case, kind, seconds)
    logs = {kind: fixed.log_lines(kind, len(FIXED_CASES)) for kind in fixed.processes}
    expected = [f"{case} {answer[0]} {flags} {details}" for case, _, _, answer, _, flags, details in FIXED_CASES]
    for kind, lines in logs.items():
        assert lines[-len(FIXED_CASES) :] == expected, kind
    deltas = {}
    for kind, old in before.items():
        new = fixed.stats(kind, "http.test.fault.")
        deltas[kind] = {name: value - old.get(name, 0) for name, value in new.items()}
    ours = deltas["pyevent-envoy"]
    assert ours["http.test.fault.aborts_injected"] == 2
    assert ours["http.test.fault.delays_injected"] == 2
    assert ours["http.test.fault.front.aborts_injected"] == 1
    assert ours["http.test.fault.front.delays_injected"] == 1
    assert ours["http.test.fault.active_faults"] == 0
    if "envoy" in deltas:
        assert ours == deltas["envoy"]


def test_a_delay_does_not_block_the_worker(fixed):
    """While one request waits out its delay, another (on the same single worker) is answered at once."""
    for kind, process in fixed.processes.items():
        delayed: dict = {}
        thread = threading.Thread(
            target=lambda: delayed.update(
                answer=timed(process.port, "GET", "/echo", {"x-delay": "1", "x-envoy-downstream-service-node": "node-a"})
            )
        )
        thread.start()
        time.sleep(0.1)
        status, _, _, seconds = timed(process.port, "GET", "/echo", {})
        thread.join()
        assert status == 200 and seconds < 0.2, (kind, seconds)
        assert delayed["answer"][0] == 200 and delayed["answer"][3] >= DELAYED, (kind, delayed)


def test_a_delayed_request_body_waits_with_it(fixed):
    """The body of a delayed request (4 MiB: past the connection's 1 MiB buffer limit) arrives whole."""
    body = b"b" * (4 << 20)
    got, times = same(fixed, "POST", "/echo", {"x-delay": "1", "x-envoy-downstream-service-node": "node-a"}, body=body)
    assert got == (200, "upstream", len(body))
    assert all(seconds >= DELAYED for seconds in times.values()), times


HEADER_CASES = [
    ({}, (200, "upstream", 0), False),
    ({"x-envoy-fault-abort-request": "429"}, (429, "text/plain", b"fault filter abort"), False),
    ({"x-envoy-fault-abort-request": "200"}, (200, "text/plain", b"fault filter abort"), False),
    ({"x-envoy-fault-abort-request": "600"}, (200, "upstream", 0), False),
    ({"x-envoy-fault-abort-request": "199"}, (200, "upstream", 0), False),
    ({"x-envoy-fault-abort-request": " 503 "}, (503, "text/plain", b"fault filter abort"), False),
    ({"x-envoy-fault-abort-request": "5o3"}, (200, "upstream", 0), False),
    ({"x-envoy-fault-abort-request": "503", "x-envoy-fault-abort-request-percentage": "0"}, (200, "upstream", 0), False),
    ({"x-envoy-fault-abort-request": "503", "x-envoy-fault-abort-request-percentage": "100"}, (503, "text/plain", b"fault filter abort"), False),
    ({"x-envoy-fault-abort-request": "503", "x-envoy-fault-abort-request-percentage": "x"}, (503, "text/plain", b"fault filter abort"), False),
    ({"x-envoy-fault-delay-request": "400"}, (200, "upstream", 0), True),
    ({"x-envoy-fault-delay-request": "0"}, (200, "upstream", 0), False),
    ({"x-envoy-fault-delay-request": "400", "x-envoy-fault-delay-request-percentage": "0"}, (200, "upstream", 0), False),
    ({"x-envoy-fault-delay-request": "400", "x-envoy-fault-abort-request": "502"}, (502, "text/plain", b"fault filter abort"), True),
]


@pytest.mark.parametrize("headers,answer,delayed", HEADER_CASES, ids=[repr(c[0]) for c in HEADER_CASES])
def test_fault_headers_are_honoured_as_envoy_honours_them(from_headers, headers, answer, delayed):
    got, times = same(from_headers, "GET", "/echo", headers)
    assert got == answer
    for kind, seconds in times.items():
        assert (seconds >= DELAYED) == delayed, (kind, seconds)


def test_max_active_faults_overflow_matches_envoy(from_headers):
    """With one fault active (a delay), the next request's fault overflows: it passes, counted."""
    before = {kind: from_headers.stats(kind, "http.test.fault.") for kind in from_headers.processes}
    for kind, process in from_headers.processes.items():
        delayed: dict = {}
        thread = threading.Thread(
            target=lambda: delayed.update(answer=timed(process.port, "GET", "/echo", {"x-envoy-fault-delay-request": "800"}))
        )
        thread.start()
        time.sleep(0.3)
        assert from_headers.stats(kind, "http.test.fault.active_faults")["http.test.fault.active_faults"] == 1, kind
        status, kind_of_body, _, _ = timed(process.port, "GET", "/echo", {"x-envoy-fault-abort-request": "503"})
        thread.join()
        assert (status, kind_of_body) == (200, "upstream"), kind
        assert delayed["answer"][0] == 200, kind
    deltas = {}
    for kind, old in before.items():
        new = from_headers.stats(kind, "http.test.fault.")
        deltas[kind] = {name: value - old.get(name, 0) for name, value in new.items()}
    assert deltas["pyevent-envoy"]["http.test.fault.faults_overflow"] == 1
    assert deltas["pyevent-envoy"]["http.test.fault.delays_injected"] == 1
    assert deltas["pyevent-envoy"]["http.test.fault.active_faults"] == 0
    if "envoy" in deltas:
        assert deltas["pyevent-envoy"] == deltas["envoy"]


def test_abort_status_lines_match_envoy(from_headers):
    """Every status an abort can have goes out with Envoy's status line (reason phrases included)."""
    lines: dict = {}
    for kind, process in from_headers.processes.items():
        for code in range(200, 600):
            with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
                sock.sendall(b"GET /echo HTTP/1.1\r\nhost: test\r\nx-envoy-fault-abort-request: %d\r\n\r\n" % code)
                reply = b""
                while b"\r\n" not in reply:
                    reply += sock.recv(4096)
            lines.setdefault(code, {})[kind] = reply.split(b"\r\n")[0]
    assert lines[413]["pyevent-envoy"] == b"HTTP/1.1 413 Payload Too Large"
    differ = {code: by_kind for code, by_kind in lines.items() if len(set(by_kind.values())) > 1}
    assert not differ
