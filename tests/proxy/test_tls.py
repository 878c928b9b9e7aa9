"""TLS end to end: pyevent-envoy and Envoy 1.40 on the same YAML and the same certificates.

Downstream: a filter chain's ``DownstreamTlsContext`` terminates HTTPS in
front of a plaintext upstream.  Upstream: a cluster's ``UpstreamTlsContext``
speaks HTTPS to a test upstream served over TLS.  The certificates are made
per module with the ``openssl`` command line (:mod:`tls_certs`); clients
are ``http.client`` and raw ``ssl`` sockets with their own ``SSLContext``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import threading
import time

import pytest

from harness import KINDS, ProxyProcess, access_log_block, bootstrap_yaml, free_port, rss_kb, with_admin
from tls_certs import OPENSSL, CertificateAuthority
from upstream import Upstream, pattern_bytes

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(OPENSSL is None, reason="the openssl command line makes the test certificates"),
]

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: app}
"""


class Certs:
    def __init__(self, directory: str) -> None:
        self.ca = CertificateAuthority(directory, "test-ca")
        self.server = self.ca.issue("localhost", ("localhost",))
        self.client = self.ca.issue("client", (), client=True)
        self.other_ca = CertificateAuthority(directory, "other-ca")
        self.stranger = self.other_ca.issue("stranger", (), client=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("certs")))


def downstream_tls(certs: Certs, extra_common: str = "", extra_context: str = "") -> str:
    """The ``transport_socket:`` YAML of a filter chain serving ``certs.server``."""
    return (
        "transport_socket:\n"
        "  name: envoy.transport_sockets.tls\n"
        "  typed_config:\n"
        '    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n'
        f"{extra_context}"
        "    common_tls_context:\n"
        "      tls_certificates:\n"
        f"      - certificate_chain: {{filename: {certs.server.cert}}}\n"
        f"        private_key: {{filename: {certs.server.key}}}\n"
        f"{extra_common}"
    )


def with_listener_tls(config: str, transport_socket: str) -> str:
    """``config`` (one listener, one filter chain) with that chain's ``transport_socket``."""
    indented = "".join(f"      {line}\n" for line in transport_socket.splitlines())
    return config.replace("    filter_chains:\n    - filters:\n", "    filter_chains:\n    - " + indented[6:] + "      filters:\n", 1)


def client_context(certs: Certs, *, cert=None, minimum=None, maximum=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs.ca.cert)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def https_get(port: int, path: str, context: ssl.SSLContext, headers: dict | None = None) -> tuple[int, dict, bytes, str]:
    """GET over TLS to localhost: status, headers, body and the negotiated TLS version."""
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body, conn.sock.version()
    finally:
        conn.close()


def admin_stats(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/stats")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.lstrip("-").isdigit():
            stats[name] = int(value)
    return stats


def ssl_stats(admin_port: int, scope: str, *, settle: float = 0.3) -> dict[str, int]:
    """The ``<scope>ssl.`` counters (without ``ciphers.``: each TLS library prefers its own)."""
    time.sleep(settle)  # a failed handshake is counted when the proxy reads the client's alert or close
    prefix = f"{scope}ssl."
    return {
        name[len(prefix):]: value
        for name, value in admin_stats(admin_port).items()
        if name.startswith(prefix) and not name.startswith(prefix + "ciphers.")
    }


#: The ``ssl.`` counters both proxies count (Envoy shows more: OCSP, certificate hash and SAN checks).
COUNTED = ("connection_error", "handshake", "session_reused", "no_certificate", "fail_verify_no_cert", "fail_verify_error")


class Proxy:
    """A proxy of one kind with an admin port, stopped by the fixture that made it."""

    def __init__(self, kind: str, config: str, port: int, admin_port: int) -> None:
        self.kind = kind
        self.port = port
        self.admin_port = admin_port
        self.process = ProxyProcess(kind, with_admin(config, admin_port), port)

    @property
    def listener_scope(self) -> str:
        return f"listener.127.0.0.1_{self.port}."

    def stop(self) -> None:
        code = self.process.stop()
        if self.kind == "pyevent-envoy":
            assert code == 0, self.process.stderr
            assert "Traceback" not in self.process.stderr, self.process.stderr


@pytest.fixture
def start():
    started: list[Proxy] = []

    def make(kind: str, config_for_port) -> Proxy:
        port, admin_port = free_port(), free_port()
        proxy = Proxy(kind, config_for_port(port), port, admin_port)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def tls_proxy(start, kind, upstream, certs, *, hcm_extra="", extra_common="", extra_context="") -> Proxy:
    tls = downstream_tls(certs, extra_common, extra_context)
    return start(kind, lambda port: with_listener_tls(bootstrap_yaml(port, {"app": [upstream.port]}, VIRTUAL_HOSTS, hcm_extra), tls))


# ------------------------------------------------------------------------------------------
# Downstream: TLS termination.


@pytest.mark.parametrize("kind", KINDS)
def test_https_request_is_proxied_to_a_plaintext_upstream(kind, upstream, certs, start):
    proxy = tls_proxy(start, kind, upstream, certs)
    status, headers, body, version = https_get(proxy.port, "/echo/tls", client_context(certs))
    assert (status, version) == (200, "TLSv1.3")
    seen = json.loads(body)["headers"]
    # The upstream hop is plaintext; the client's scheme reaches it as x-forwarded-proto.
    assert seen["x-forwarded-proto"] == "https"
    # Without use_remote_address a client's own x-forwarded-proto is kept, as Envoy keeps it.
    _, _, body, _ = https_get(proxy.port, "/echo/kept", client_context(certs), {"x-forwarded-proto": "http"})
    assert json.loads(body)["headers"]["x-forwarded-proto"] == "http"
    stats = ssl_stats(proxy.admin_port, proxy.listener_scope)
    # The harness's readiness probe connected and closed without a byte: not a TLS error.
    assert {name: stats[name] for name in COUNTED} == {
        "connection_error": 0, "handshake": 2, "session_reused": 0, "no_certificate": 2, "fail_verify_no_cert": 0, "fail_verify_error": 0
    }
    assert stats["versions.TLSv1.3"] == 2
    http_stats = admin_stats(proxy.admin_port)
    assert http_stats["http.test.downstream_cx_ssl_total"] == 3


@pytest.mark.parametrize("kind", KINDS)
def test_use_remote_address_sets_https(kind, upstream, certs, start):
    proxy = tls_proxy(start, kind, upstream, certs, hcm_extra="use_remote_address: true\n")
    _, _, body, _ = https_get(proxy.port, "/echo/edge", client_context(certs), {"x-forwarded-proto": "http"})
    assert json.loads(body)["headers"]["x-forwarded-proto"] == "https"


@pytest.mark.parametrize("kind", KINDS)
def test_plaintext_client_on_the_tls_port_is_closed_and_the_proxy_keeps_serving(kind, upstream, certs, start):
    proxy = tls_proxy(start, kind, upstream, certs)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET /echo/plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert not received.startswith(b"HTTP/")  # at most a TLS alert, never an HTTP answer
    status, _, _, _ = https_get(proxy.port, "/echo/after", client_context(certs))
    assert status == 200
    stats = ssl_stats(proxy.admin_port, proxy.listener_scope)
    assert (stats["connection_error"], stats["handshake"]) == (1, 1)


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """True when the TLS handshake, or the first read after it (TLS 1.3), fails."""
    try:
        https_get(port, "/echo/refused", context)
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return True
    return False


MTLS_COMMON = "      validation_context:\n        trusted_ca: {filename: %s}\n"


@pytest.mark.parametrize("kind", KINDS)
def test_mutual_tls_accepts_a_client_of_the_trusted_ca_and_refuses_others(kind, upstream, certs, start):
    proxy = tls_proxy(
        start, kind, upstream, certs, extra_common=MTLS_COMMON % certs.ca.cert, extra_context="    require_client_certificate: true\n"
    )
    status, _, _, _ = https_get(proxy.port, "/echo/mtls", client_context(certs, cert=certs.client))
    assert status == 200
    assert _refused(proxy.port, client_context(certs))
    assert _refused(proxy.port, client_context(certs, cert=certs.stranger))
    stats = ssl_stats(proxy.admin_port, proxy.listener_scope, settle=0.5)
    assert {name: stats[name] for name in COUNTED} == {
        "connection_error": 0, "handshake": 1, "session_reused": 0, "no_certificate": 0, "fail_verify_no_cert": 1, "fail_verify_error": 1
    }


@pytest.mark.parametrize("kind", KINDS)
def test_tls_version_limits(kind, upstream, certs, start):
    only_12 = tls_proxy(start, kind, upstream, certs, extra_common="      tls_params: {tls_maximum_protocol_version: TLSv1_2}\n")
    assert https_get(only_12.port, "/echo/v", client_context(certs))[3] == "TLSv1.2"
    assert _refused(only_12.port, client_context(certs, minimum=ssl.TLSVersion.TLSv1_3))
    only_13 = tls_proxy(start, kind, upstream, certs, extra_common="      tls_params: {tls_minimum_protocol_version: TLSv1_3}\n")
    assert https_get(only_13.port, "/echo/v", client_context(certs))[3] == "TLSv1.3"
    assert _refused(only_13.port, client_context(certs, maximum=ssl.TLSVersion.TLSv1_2))
    assert ssl_stats(only_12.admin_port, only_12.listener_scope)["versions.TLSv1.2"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_cipher_suites_limit_tls12(kind, upstream, certs, start):
    proxy = tls_proxy(
        start, kind, upstream, certs,
        extra_common="      tls_params: {tls_maximum_protocol_version: TLSv1_2, cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]}\n",
    )
    conn = http.client.HTTPSConnection("localhost", proxy.port, context=client_context(certs), timeout=30)
    try:
        conn.request("GET", "/echo/cipher")
        assert conn.getresponse().status == 200
        assert conn.sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    finally:
        conn.close()
    assert admin_stats(proxy.admin_port)[f"{proxy.listener_scope}ssl.ciphers.ECDHE-ECDSA-AES128-GCM-SHA256"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_alpn_http11_is_negotiated(kind, upstream, certs, start):
    proxy = tls_proxy(start, kind, upstream, certs, extra_common='      alpn_protocols: ["http/1.1"]\n')
    context = client_context(certs)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize("kind", KINDS)
def test_connection_close_ends_with_close_notify(kind, upstream, certs, start):
    """A FLUSH_WRITE close sends the whole response, then a TLS close_notify (no truncation)."""
    proxy = tls_proxy(start, kind, upstream, certs)
    context = client_context(certs)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as sock:
            sock.sendall(b"GET /bytes/100000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):  # SSLEOFError here would mean no close_notify
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == pattern_bytes(100000)


def download_and_check(proxy: Proxy, certs: Certs, size: int) -> None:
    """GET ``/bytes/<size>`` over TLS and check every byte; for pyevent-envoy, that its
    resident set stays within its buffer limits meanwhile (sampled every 8 MiB)."""
    conn = http.client.HTTPSConnection("localhost", proxy.port, context=client_context(certs), timeout=120)
    before = peak = rss_kb(proxy.process.proc.pid)
    digest = hashlib.sha256()
    received = 0
    try:
        conn.request("GET", f"/bytes/{size}")
        response = conn.getresponse()
        assert response.status == 200
        while chunk := response.read(1024 * 1024):
            digest.update(chunk)
            received += len(chunk)
            if received % (8 * 1024 * 1024) < len(chunk):
                peak = max(peak, rss_kb(proxy.process.proc.pid))
    finally:
        conn.close()
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(pattern_bytes(size)).hexdigest()
    if proxy.kind == "pyevent-envoy":
        # Flow control bounds what the proxy holds to about its buffer limits (1 MiB each way).
        assert peak - before < 24 * 1024, f"RSS grew by {peak - before} KiB"


@pytest.mark.parametrize("kind", KINDS)
def test_large_download_over_tls_in_constant_memory(kind, upstream, certs, start):
    download_and_check(tls_proxy(start, kind, upstream, certs), certs, 64 * 1024 * 1024)


# ------------------------------------------------------------------------------------------
# Upstream: a cluster's UpstreamTlsContext.


def upstream_tls(common: str = "", sni: str = "") -> str:
    """A cluster's ``transport_socket:`` YAML (``common`` is the ``common_tls_context`` body)."""
    return (
        "transport_socket:\n"
        "  name: envoy.transport_sockets.tls\n"
        "  typed_config:\n"
        '    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n'
        + (f"    sni: {sni}\n" if sni else "")
        + ("    common_tls_context:\n" + "".join(f"      {line}\n" for line in common.splitlines()) if common else "")
    )


def tls_upstream_server(certs: Certs, *, pair=None, client_ca: str | None = None) -> Upstream:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pair = pair or certs.server
    context.load_cert_chain(pair.cert, pair.key)
    context.set_alpn_protocols(["http/1.1"])
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return Upstream("tls-app", tls=context)


@pytest.fixture
def tls_upstreams():
    made: list[Upstream] = []

    def make(*args, **kwargs) -> Upstream:
        server = tls_upstream_server(*args, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def plain_proxy_to(start, kind, upstream_port: int, cluster_tls: str, hcm_extra: str = "") -> Proxy:
    return start(kind, lambda port: bootstrap_yaml(port, {"app": [upstream_port]}, VIRTUAL_HOSTS, hcm_extra, cluster_extra=cluster_tls))


def plain_get(port: int, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_upstream_tls_verified_with_sni_and_alpn(kind, certs, start, tls_upstreams):
    server = tls_upstreams(certs)
    common = f'alpn_protocols: ["http/1.1"]\nvalidation_context:\n  trusted_ca: {{filename: {certs.ca.cert}}}'
    proxy = plain_proxy_to(start, kind, server.port, upstream_tls(common, sni="localhost"))
    status, _, body = plain_get(proxy.port, "/echo/up")
    assert status == 200 and json.loads(body)["upstream"] == "tls-app"
    assert server.sni == ["localhost"] and server.alpn == ["http/1.1"]
    stats = ssl_stats(proxy.admin_port, "cluster.app.")
    assert {name: stats[name] for name in COUNTED} == {
        "connection_error": 0, "handshake": 1, "session_reused": 0, "no_certificate": 0, "fail_verify_no_cert": 0, "fail_verify_error": 0
    }
    # Envoy's upstream default is TLS 1.2 only.
    assert stats["versions.TLSv1.2"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_upstream_tls_without_validation_context_does_not_verify(kind, certs, start, tls_upstreams):
    """As in Envoy: no validation context, no verification (a certificate of an unknown CA passes); no SNI."""
    stranger = certs.other_ca.issue("upstream-stranger", ("localhost",))
    server = tls_upstreams(certs, pair=stranger)
    proxy = plain_proxy_to(start, kind, server.port, upstream_tls())
    status, _, _ = plain_get(proxy.port, "/echo/unverified")
    assert status == 200
    assert server.sni == [None]


@pytest.mark.parametrize("kind", KINDS)
def test_upstream_verification_failure_is_envoys_503(kind, certs, start, tls_upstreams, tmp_path):
    server = tls_upstreams(certs)
    common = f"validation_context:\n  trusted_ca: {{filename: {certs.other_ca.cert}}}"
    log = tmp_path / f"{kind}.log"
    logging = access_log_block(str(log), text="%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON%\\n")
    proxy = plain_proxy_to(start, kind, server.port, upstream_tls(common), logging)
    status, _, body = plain_get(proxy.port, "/echo/refused")
    assert status == 503
    assert body == b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    deadline = time.monotonic() + 5
    while not log.exists() or not log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    reason = (
        "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:"
        "_certificate_verification_error_at_depth_0:_unable_to_get_local_issuer_certificate:TLS_error_end"
    )
    assert log.read_text() == f"503 UF upstream_reset_before_response_started{{remote_connection_failure|{reason}}} {reason}\n"
    stats = ssl_stats(proxy.admin_port, "cluster.app.")
    assert (stats["handshake"], stats["fail_verify_error"], stats["connection_error"]) == (0, 1, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_upstream_client_certificate(kind, certs, start, tls_upstreams):
    server = tls_upstreams(certs, client_ca=certs.ca.cert)
    with_cert = (
        f"tls_certificates:\n- certificate_chain: {{filename: {certs.client.cert}}}\n  private_key: {{filename: {certs.client.key}}}\n"
        f"validation_context:\n  trusted_ca: {{filename: {certs.ca.cert}}}"
    )
    proxy = plain_proxy_to(start, kind, server.port, upstream_tls(with_cert))
    assert plain_get(proxy.port, "/echo/client-cert")[0] == 200
    without = plain_proxy_to(start, kind, server.port, upstream_tls(f"validation_context:\n  trusted_ca: {{filename: {certs.ca.cert}}}"))
    assert plain_get(without.port, "/echo/no-client-cert")[0] == 503


@pytest.mark.parametrize("kind", KINDS)
def test_config_dump_redacts_the_private_key(kind, upstream, certs, start):
    proxy = tls_proxy(start, kind, upstream, certs)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=10)
    try:
        conn.request("GET", "/config_dump?resource=static_listeners")
        dump = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    chain = dump["configs"][0]["listener"]["filter_chains"][0]
    certificate = chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"][0]
    assert certificate == {"certificate_chain": {"filename": certs.server.cert}, "private_key": {"filename": "[redacted]"}}


@pytest.mark.parametrize("kind", KINDS)
def test_large_download_from_a_tls_upstream_through_a_tls_listener(kind, certs, start, tls_upstreams):
    """TLS on both sides: 64 MiB decrypted from the upstream and encrypted again, flow-controlled."""
    server = tls_upstreams(certs)
    common = f"validation_context:\n  trusted_ca: {{filename: {certs.ca.cert}}}"
    proxy = start(
        kind,
        lambda port: with_listener_tls(
            bootstrap_yaml(port, {"app": [server.port]}, VIRTUAL_HOSTS, cluster_extra=upstream_tls(common)), downstream_tls(certs)
        ),
    )
    download_and_check(proxy, certs, 64 * 1024 * 1024)
