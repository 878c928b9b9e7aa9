"""The connection manager's request-header mutation in C against the Python it shortcuts.

With ``use_remote_address`` off and no ``xff_num_trusted_hops`` (Envoy's
defaults), ``ActiveStream.decode_headers`` mutates the request's headers
with one call to ``pyevent_envoy._headers.mutate_plain`` instead of
``ActiveStream._mutate_request_headers``.  Hypothesis builds request header
maps full of the fields the mutation reads (in any case, repeated, with
values of any case, next to pseudo-headers and other fields), runs both on
copies with equally seeded generators, and checks that the two leave the
same fields in the same order, the same request id and the same
``internal_request``.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyevent_envoy._headers import mutate_plain
from pyevent_envoy.http.conn_manager_impl import _INTERNAL_ONLY_HEADERS, ActiveStream
from pyevent_envoy.http.header_map import HeaderMap

pytestmark = pytest.mark.timeout(120)

_NAMES = [
    "x-envoy-internal",
    "x-forwarded-proto",
    "x-request-id",
    "x-forwarded-for",
    "x-envoy-retry-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-decorator-operation",  # internal-only only at the edge: stays here
    "host",
    "accept",
    "content-length",
]
_VALUES = ["http", "https", "HTTPS", "Http", "ftp", "", "true", "1234", "a,b"]


def _python_mutation(headers: HeaderMap, scheme: str, rng, generate: bool) -> tuple[str, bool]:
    config = SimpleNamespace(
        use_remote_address=False,
        xff_num_trusted_hops=0,
        generate_request_id=generate,
        local_address="127.0.0.1",
        internal_networks=(),
    )
    manager = SimpleNamespace(config=config, _remote_address=None, _scheme=scheme, _rng=rng)
    stream = SimpleNamespace(_manager=manager, stream_info=SimpleNamespace(stream_id=None), internal_request=False)
    ActiveStream._mutate_request_headers(stream, headers)
    return stream.stream_info.stream_id, stream.internal_request


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(
        st.tuples(st.sampled_from(_NAMES).map(lambda n: n.upper() if n.startswith("x-forwarded") else n),
                  st.sampled_from(_VALUES)),
        max_size=10,
    ),
    scheme=st.sampled_from(["http", "https"]),
    generate=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_c_mutation_is_the_python_mutation(fields, scheme, generate, seed):
    pseudo = [(":method", "GET"), (":path", "/x"), (":authority", "example.com")]
    python_headers = HeaderMap(pseudo + fields)
    c_headers = python_headers.copy()
    expected_id, internal = _python_mutation(python_headers, scheme, random.Random(seed), generate)
    request_id = mutate_plain(c_headers, scheme, _INTERNAL_ONLY_HEADERS, random.Random(seed) if generate else None)
    assert list(c_headers) == list(python_headers)
    assert (request_id or "") == expected_id
    assert internal is False  # never internal without use_remote_address


def test_c_mutation_takes_only_its_arguments():
    headers = HeaderMap([(":path", "/")])
    with pytest.raises(TypeError):
        mutate_plain({}, "http", _INTERNAL_ONLY_HEADERS, None)
    with pytest.raises(TypeError):
        mutate_plain(headers, "http", set(_INTERNAL_ONLY_HEADERS), None)
    with pytest.raises(TypeError):
        mutate_plain(headers, "http", _INTERNAL_ONLY_HEADERS)
    assert mutate_plain(headers, "https", _INTERNAL_ONLY_HEADERS, None) is None
    assert list(headers) == [(":path", "/"), (":scheme", "https"), ("x-forwarded-proto", "https")]
