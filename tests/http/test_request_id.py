"""x-request-id values: pyevent_envoy._headers.request_id against the Python format it replaced."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyevent_envoy._headers import request_id
from pyevent_envoy.http.conn_manager_impl import _uuid4

_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def python_format(bits: int) -> str:
    h = "%032x" % bits
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_same_string_as_the_python_format(bits):
    assert request_id(bits) == python_format(bits)


@pytest.mark.parametrize("bits", [0, 1, (1 << 64) - 1, 1 << 64, (1 << 128) - 1, 0x0123456789ABCDEF_FEDCBA9876543210])
def test_edges_are_version_4_uuids(bits):
    text = request_id(bits)
    assert text == python_format(bits)
    parsed = uuid.UUID(text)
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert str(parsed) == text


@pytest.mark.parametrize("bad", [-1, -(1 << 70), 1 << 128])
def test_out_of_range_is_a_value_error(bad):
    with pytest.raises(ValueError):
        request_id(bad)


def test_only_ints():
    with pytest.raises(TypeError):
        request_id("1")


def test_the_connection_manager_draws_128_bits_from_the_workers_generator():
    assert _uuid4(random.Random(7)) == python_format(random.Random(7).getrandbits(128))
