"""The ``envoy.filters.http.compressor`` filter (gzip), differentially against Envoy 1.40.

The same YAML runs under pyevent-envoy and Envoy; each case sends the same
request to both and compares what the client gets: the status, the headers
the filter decides (Content-Encoding, Vary, Content-Length,
Transfer-Encoding, ETag) and the decoded body (compressed bytes may differ
between zlib builds; what they decode to may not).  The expected decision
is also asserted on its own, so a case means something without Envoy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import zlib

import pytest

from filter_setup import Proxies, request
from upstream import text_bytes

pytestmark = pytest.mark.timeout(120)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/direct"}
    direct_response: {status: 200, body: {inline_string: "a direct response long enough to be compressed"}}
  - match: {prefix: "/"}
    route: {cluster: app}
"""

COMPRESSOR_TYPE = "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor"
GZIP_TYPE = "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"

#: Everything by default: Envoy's content types, 30 bytes at least, ETags handled.
DEFAULT_FILTERS = f"""\
- name: envoy.filters.http.compressor
  typed_config:
    "@type": {COMPRESSOR_TYPE}
    compressor_library:
      name: text
      typed_config: {{"@type": {GZIP_TYPE}}}
"""

#: The response direction set: its own types and length, no compression with an ETag,
#: Accept-Encoding kept from the upstream; zlib tuned.
TUNED_FILTERS = f"""\
- name: envoy.filters.http.compressor
  typed_config:
    "@type": {COMPRESSOR_TYPE}
    response_direction_config:
      common_config:
        min_content_length: 100
        content_type: [application/json, text/html]
      disable_on_etag_header: true
      remove_accept_encoding_header: true
    compressor_library:
      name: tuned
      typed_config:
        "@type": {GZIP_TYPE}
        memory_level: 9
        compression_level: BEST_SPEED
        compression_strategy: RLE
        window_bits: 9
        chunk_size: 8192
"""

#: Response headers the filter decides.
DECIDED = ("content-encoding", "vary", "content-length", "transfer-encoding", "etag")


@pytest.fixture(scope="module")
def default_proxies(upstream):
    proxies = Proxies({"app": [upstream.port]}, VIRTUAL_HOSTS, DEFAULT_FILTERS)
    yield proxies
    proxies.stop()


@pytest.fixture(scope="module")
def tuned_proxies(upstream):
    proxies = Proxies({"app": [upstream.port]}, VIRTUAL_HOSTS, TUNED_FILTERS)
    yield proxies
    proxies.stop()


def _length(path: str) -> int:
    """The body length a /content path asks for."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    return int(query.get("length", ["1000"])[0])


def same_answer(proxies, method, path, headers, **kwargs):
    """The answer every kind gives (asserted the same on status, decided headers and decoded body)."""
    answers = proxies.each(lambda port: request(port, method, path, headers, **kwargs))
    views = {kind: answer.view(*DECIDED) for kind, answer in answers.items()}
    assert len(set(map(repr, views.values()))) == 1, views
    return answers["pyevent-envoy"]


GZIP = {"accept-encoding": "gzip"}

# (name, method, path, request headers, compressed?)
DEFAULT_CASES = [
    ("text", "GET", "/content?type=text/plain", GZIP, True),
    ("html-with-charset", "GET", "/content?type=text/html;%20charset=utf-8", GZIP, True),
    ("type-case-insensitive", "GET", "/content?type=TEXT/CSS", GZIP, True),
    ("no-content-type", "GET", "/content", GZIP, True),
    ("binary-type", "GET", "/content?type=application/octet-stream", GZIP, False),
    ("identity-only", "GET", "/content?type=text/plain", {"accept-encoding": "identity"}, False),
    ("no-accept-encoding", "GET", "/content?type=text/plain", {"accept-encoding": ""}, False),
    ("gzip-q0", "GET", "/content?type=text/plain", {"accept-encoding": "gzip;q=0"}, False),
    ("identity-preferred", "GET", "/content?type=text/plain", {"accept-encoding": "gzip;q=0.5, identity;q=0.8"}, False),
    ("gzip-preferred", "GET", "/content?type=text/plain", {"accept-encoding": "identity;q=0.5, gzip;Q=0.9"}, True),
    ("wildcard", "GET", "/content?type=text/plain", {"accept-encoding": "*"}, True),
    ("wildcard-twice", "GET", "/content?type=text/plain", {"accept-encoding": "*, *"}, True),
    ("wildcard-but-not-gzip", "GET", "/content?type=text/plain", {"accept-encoding": "gzip;q=0, *"}, False),
    ("unknown-coding", "GET", "/content?type=text/plain", {"accept-encoding": "br, deflate"}, False),
    ("coding-case-sensitive", "GET", "/content?type=text/plain", {"accept-encoding": "GZIP"}, False),
    ("bad-q-value", "GET", "/content?type=text/plain", {"accept-encoding": "gzip;q=abc"}, False),
    ("bad-q-value-then-gzip", "GET", "/content?type=text/plain", {"accept-encoding": "gzip;q=abc, gzip"}, True),
    ("other-parameter", "GET", "/content?type=text/plain", {"accept-encoding": "gzip;level=1;q=0"}, True),
    ("empty-tokens", "GET", "/content?type=text/plain", {"accept-encoding": ",, gzip ,"}, True),
    ("too-short", "GET", "/content?type=text/plain&length=29", GZIP, False),
    ("just-long-enough", "GET", "/content?type=text/plain&length=30", GZIP, True),
    ("short-but-chunked", "GET", "/content?type=text/plain&length=10&chunked=5", GZIP, True),
    ("already-encoded", "GET", "/content?type=text/plain&encoding=br", GZIP, False),
    ("no-transform", "GET", "/content?type=text/plain&cache_control=public,%20No-Transform", GZIP, False),
    ("cache-control-other", "GET", "/content?type=text/plain&cache_control=max-age=60", GZIP, True),
    ("strong-etag-dropped", "GET", "/content?type=text/plain&etag=%22v1%22", GZIP, True),
    ("weak-etag-kept", "GET", "/content?type=text/plain&etag=W/%22v1%22", GZIP, True),
    ("vary-appended", "GET", "/content?type=text/plain&vary=Origin", GZIP, True),
    ("vary-already", "GET", "/content?type=text/plain&vary=Origin,%20Accept-Encoding", GZIP, True),
    ("vary-other-case", "GET", "/content?type=text/plain&vary=accept-encoding", GZIP, True),
    ("head", "HEAD", "/content?type=text/plain", GZIP, False),
    ("no-content", "GET", "/content?type=text/plain&status=204", GZIP, False),
    ("not-modified", "GET", "/content?type=text/plain&status=304", GZIP, False),
    ("error-status", "GET", "/content?type=text/plain&status=503", GZIP, True),
    ("local-reply", "GET", "/direct", GZIP, True),
]


@pytest.mark.parametrize("name,method,path,headers,compressed", DEFAULT_CASES, ids=[c[0] for c in DEFAULT_CASES])
def test_compression_decision_matches_envoy(default_proxies, name, method, path, headers, compressed):
    answer = same_answer(default_proxies, method, path, headers)
    assert (answer.headers.get("content-encoding") == "gzip") == compressed
    if compressed:
        # Content-Length gone, chunked, Vary set, a strong ETag dropped and a weak one kept.
        assert "content-length" not in answer.headers
        assert answer.headers["transfer-encoding"] == "chunked"
        assert "Accept-Encoding" in answer.headers["vary"]
        assert answer.headers.get("etag") in (None, 'W/"v1"')
    if path.startswith("/content") and method == "GET" and answer.status == 200:
        assert answer.body == text_bytes(_length(path))


def test_default_stats_count_what_envoy_counts(default_proxies):
    """Each decision's counters, from the same traffic on fresh counters (totals aside)."""
    before = {kind: default_proxies.stats(kind, "http.test.compressor.") for kind in default_proxies.processes}
    for _, method, path, headers, _ in DEFAULT_CASES:
        same_answer(default_proxies, method, path, headers)
    for process in default_proxies.processes.values():
        # No Accept-Encoding at all (http.client would send "identity").
        with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:
            sock.sendall(b"GET /content?type=text/plain HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and b"content-encoding" not in reply.lower()
    deltas = {}
    for kind, old in before.items():
        new = default_proxies.stats(kind, "http.test.compressor.")
        deltas[kind] = {name: new[name] - old.get(name, 0) for name in new}
    ours = deltas["pyevent-envoy"]
    assert ours["http.test.compressor.text.gzip.compressed"] == sum(c[4] for c in DEFAULT_CASES)
    assert ours["http.test.compressor.text.gzip.no_accept_header"] == 1
    assert 0 < ours["http.test.compressor.text.gzip.total_compressed_bytes"] < ours["http.test.compressor.text.gzip.total_uncompressed_bytes"]
    if "envoy" in deltas:
        # The compressed byte counts depend on the zlib build: compared above on their own.
        compressed_bytes = "http.test.compressor.text.gzip.total_compressed_bytes"
        assert {k: v for k, v in ours.items() if k != compressed_bytes} == {
            k: v for k, v in deltas["envoy"].items() if k != compressed_bytes
        }


TUNED_CASES = [
    ("json", "GET", "/content?type=application/json&length=100", GZIP, True),
    ("shorter-than-its-minimum", "GET", "/content?type=application/json&length=99", GZIP, False),
    ("type-not-listed", "GET", "/content?type=text/plain", GZIP, False),
    ("etag-disables", "GET", "/content?type=text/html&etag=%22v1%22", GZIP, False),
    ("weak-etag-disables-too", "GET", "/content?type=text/html&etag=W/%22v1%22", GZIP, False),
    ("large-chunked", "GET", "/content?type=text/html&length=300000&chunked=16384", GZIP, True),
]


@pytest.mark.parametrize("name,method,path,headers,compressed", TUNED_CASES, ids=[c[0] for c in TUNED_CASES])
def test_response_direction_config_matches_envoy(tuned_proxies, name, method, path, headers, compressed):
    answer = same_answer(tuned_proxies, method, path, headers)
    assert (answer.headers.get("content-encoding") == "gzip") == compressed
    assert answer.body == text_bytes(_length(path))


def test_accept_encoding_removed_before_the_upstream(tuned_proxies):
    answers = tuned_proxies.each(lambda port: request(port, "POST", "/echo", {"accept-encoding": "gzip"}, body=b"x"))
    seen = {}
    for kind, answer in answers.items():
        assert answer.headers["content-encoding"] == "gzip", kind  # the echo is JSON, long enough
        seen[kind] = sorted(json.loads(answer.body)["headers"])
    assert "accept-encoding" not in seen["pyevent-envoy"]
    assert len({repr(names) for names in seen.values()}) == 1, seen


def test_response_direction_stats_are_named_as_envoy_names_them(tuned_proxies):
    same_answer(tuned_proxies, "GET", "/content?type=text/html&etag=%22v1%22", GZIP)
    names = {kind: sorted(tuned_proxies.stats(kind, "http.test.compressor.")) for kind in tuned_proxies.processes}
    assert "http.test.compressor.tuned.gzip.response.compressed" in names["pyevent-envoy"]
    assert "http.test.compressor.tuned.gzip.not_compressed_etag" in names["pyevent-envoy"]
    if "envoy" in names:
        assert names["pyevent-envoy"] == names["envoy"]


def _first_chunk_decoded(port: int, path: str) -> tuple[bytes, bytes]:
    """The first HTTP chunk of a gzip response, decoded on its own, and then the whole body decoded."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nhost: test\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n" % path.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head.lower(), head
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size:
            rest += sock.recv(65536)
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        first = decoder.decompress(rest[:size])
        # The rest of the stream: read it all, then de-chunk.
        while True:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
    body, stream = b"", rest[size + 2 :]
    body_gz = rest[:size]
    while stream:
        size_line, _, stream = stream.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body_gz += stream[:size]
        stream = stream[size + 2 :]
    body = zlib.decompress(body_gz, 16 + zlib.MAX_WBITS)
    return first, body


def test_each_frame_is_flushed_as_it_passes(default_proxies):
    """The upstream pauses between chunks: what came before the pause decodes on its own."""
    path = "/content?type=text/plain&length=3000&chunked=1000&pause=0.3"
    results = default_proxies.each(lambda port: _first_chunk_decoded(port, path))
    for kind, (first, body) in results.items():
        assert first == text_bytes(1000), kind
        assert body == text_bytes(3000), kind


def test_curl_compressed_decodes_a_large_streamed_body(default_proxies):
    path = "/content?type=text/plain&length=2000000&chunked=65536"
    for kind, process in default_proxies.processes.items():
        out = subprocess.run(
            ["curl", "-sS", "--compressed", "-D", "-", f"http://127.0.0.1:{process.port}{path}"],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head.lower(), (kind, head)
        assert body == text_bytes(2_000_000), kind
