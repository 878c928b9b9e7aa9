"""The header map: ``pyevent_envoy/http/header_map.py``."""

from __future__ import annotations

import pytest

from pyevent_envoy.http import HeaderMap


def test_header_map_is_ordered_and_case_insensitive():
    h = HeaderMap([("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2")])
    assert list(h) == [("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")]
    assert h.get("CONTENT-TYPE") == "text/plain"
    assert h.get("x-A") == "1"
    assert h.get_all("X-a") == ["1", "2"]
    assert h.get("missing") is None and h.get_all("missing") == []
    assert "X-A" in h and "nope" not in h and 3 not in h
    assert len(h) == 3 and bool(h) and not HeaderMap()


def test_header_map_add_set_remove():
    h = HeaderMap()
    h.add("a", "1")
    h.add("b", "2")
    h.add("A", "3")
    h.set("a", "x")
    assert list(h) == [("a", "x"), ("b", "2")]
    h.set("c", "new")
    assert list(h)[-1] == ("c", "new")
    assert h.remove("B") == 1 and h.remove("b") == 0
    h.add("c", "again")
    assert h.remove("c") == 2
    assert list(h) == [("a", "x")]


def test_header_map_pseudo_headers_come_first():
    h = HeaderMap([("x", "1")])
    h.add(":status", "200")
    h.add("y", "2")
    assert h.names() == [":status", "x", "y"]
    h2 = HeaderMap([(":method", "GET"), ("host", "h")])
    h2.add(":path", "/")
    assert h2.names() == [":method", ":path", "host"]


def test_header_map_byte_size_counts_names_and_values():
    h = HeaderMap([(":status", "200"), ("ab", "cde")])
    assert h.byte_size() == len(":status") + 3 + 2 + 3


def test_header_map_accepts_mapping_bytes_and_ints():
    h = HeaderMap({"content-length": 5})
    assert h.get("content-length") == "5"
    h.add(b"X-Bytes", b"caf\xe9")
    assert h.get("x-bytes") == "caf\xe9"


def test_header_map_strips_value_whitespace():
    h = HeaderMap([("x", "  v \t")])
    assert h.get("x") == "v"


@pytest.mark.parametrize("name", ["", "a b", "a:b", "a\r\nb", "é", ":bogus", "x\x00", "(x)"])
def test_header_map_rejects_invalid_names(name):
    with pytest.raises(ValueError):
        HeaderMap().add(name, "v")
    with pytest.raises(ValueError):
        HeaderMap().set(name, "v")


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\r\nx: injected", "a\x00", "\u20ac"])
def test_header_map_rejects_values_that_break_the_wire_format(value):
    with pytest.raises(ValueError):
        HeaderMap().add("x", value)


def test_header_map_rejects_wrong_types():
    with pytest.raises(TypeError):
        HeaderMap().add(1, "v")
    with pytest.raises(TypeError):
        HeaderMap().add("x", 1.5)
    with pytest.raises(TypeError):
        HeaderMap().add("x", None)


def test_header_map_copy_equality_repr():
    h = HeaderMap([("a", "1")])
    c = h.copy()
    assert c == h and c is not h
    c.add("b", "2")
    assert c != h
    assert h != [("a", "1")]
    assert repr(h) == "HeaderMap([('a', '1')])"
    with pytest.raises(TypeError):
        hash(h)
