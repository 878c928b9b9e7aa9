"""Internal and external requests: which ``x-envoy-*`` headers reach the upstream, as Envoy 1.40 decides.

Envoy 1.40 trusts no client address unless ``internal_address_config``
lists it: only then, with ``use_remote_address`` and no incoming
``x-forwarded-for``, is a request internal (``x-envoy-internal: true``, its
``x-envoy-*`` control headers kept for the router).  Any other request loses
them; with ``use_remote_address`` it is an edge request, which also gets
``x-envoy-external-address`` and a new ``x-request-id``.  The same YAML and
request go through both proxies; the upstream's echo of the request headers
is compared, ``x-forwarded-for`` included: for a loopback client, both
append the host's own address (its first non-loopback one, or 127.0.0.1 on
a host without one), while the internal and external-address decisions
still see the client's 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json

import pytest

from harness import KINDS, ProxyProcess, bootstrap_yaml, free_port
from pyevent_envoy.network.utility import get_local_address

pytestmark = pytest.mark.timeout(120)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: app}
"""

SENT = {
    "x-request-id": "client-chosen-id",
    "x-envoy-internal": "true",
    "x-envoy-external-address": "203.0.113.9",
    "x-envoy-decorator-operation": "op",
    "x-envoy-downstream-service-cluster": "client-cluster",
    "x-envoy-original-url": "http://example/",
    "x-envoy-ip-tags": "tag",
    "x-envoy-force-trace": "1",
    "x-envoy-upstream-alt-stat-name": "alt",
    "x-envoy-upstream-rq-timeout-alt-response": "1",
    "x-envoy-hedge-on-per-try-timeout": "true",
    "x-envoy-retriable-status-codes": "418",
    "x-envoy-retry-on": "5xx",
    "x-envoy-max-retries": "1",
    "x-envoy-custom": "passes",
}

CONFIGS = {
    "default": "",
    "edge": "use_remote_address: true\n",
    "internal": "use_remote_address: true\ninternal_address_config: {cidr_ranges: [{address_prefix: 127.0.0.0, prefix_len: 8}]}\n",
    "trusted-hop": (
        "use_remote_address: true\nxff_num_trusted_hops: 1\n"
        "internal_address_config: {cidr_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}\n"
    ),
}

COMMON = {"x-envoy-custom": "passes", "x-envoy-expected-rq-timeout-ms": "15000"}
# What an external request that is not an edge one keeps of SENT.
EXTERNAL_KEPT = ("x-request-id", "x-envoy-external-address", "x-envoy-decorator-operation", "x-envoy-downstream-service-cluster")
EDGE = {**COMMON, "x-request-id": "<new>"}


def _sent(*names: str) -> dict[str, str]:
    return {name: SENT[name] for name in names}


# What the proxies append to x-forwarded-for for this (loopback) client: the host's address.
HOST = get_local_address()

EXPECTED = {
    # Not using the remote address: external, not edge, and x-forwarded-for is left alone.
    ("default", False): {**COMMON, **_sent(*EXTERNAL_KEPT)},
    ("edge", False): {**EDGE, "x-envoy-external-address": "127.0.0.1", "x-forwarded-for": HOST},
    ("internal", False): {
        **COMMON,
        **_sent(*EXTERNAL_KEPT, "x-envoy-original-url", "x-envoy-ip-tags", "x-envoy-force-trace"),
        "x-envoy-internal": "true",
        "x-forwarded-for": HOST,
    },
    # An x-forwarded-for makes any request external.
    ("internal", True): {**EDGE, "x-envoy-external-address": "127.0.0.1", "x-forwarded-for": f"10.1.2.3,{HOST}"},
    ("trusted-hop", True): {**EDGE, "x-envoy-external-address": "10.1.2.3", "x-forwarded-for": f"10.1.2.3,{HOST}"},
}


def _seen(kind: str, upstream, extra: str, with_xff: bool) -> dict[str, str]:
    port = free_port()
    process = ProxyProcess(kind, bootstrap_yaml(port, {"app": [upstream.port]}, VIRTUAL_HOSTS, hcm_extra=extra), port)
    try:
        headers = dict(SENT)
        if with_xff:
            headers["x-forwarded-for"] = "10.1.2.3"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/echo/internal", headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        seen = json.loads(response.read())["headers"]
        conn.close()
    finally:
        process.stop()
    out = {name: value for name, value in seen.items() if name.startswith("x-envoy-") or name in ("x-request-id", "x-forwarded-for")}
    if out.get("x-request-id") != "client-chosen-id":
        out["x-request-id"] = "<new>"
    return out


@pytest.mark.parametrize(("config", "with_xff"), list(EXPECTED), ids=lambda v: str(v))
def test_x_envoy_headers_by_kind_of_request(config, with_xff, upstream):
    results = {kind: _seen(kind, upstream, CONFIGS[config], with_xff) for kind in KINDS}
    assert results["pyevent-envoy"] == EXPECTED[(config, with_xff)]
    if "envoy" in results:
        assert results["envoy"] == results["pyevent-envoy"]
