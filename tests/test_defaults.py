"""Base classes whose instances start with their attributes set (pyevent_envoy._defaults)."""

from __future__ import annotations

import dis
import enum
import gc
import sys

import pytest

from pyevent_envoy import _fields
from pyevent_envoy._defaults import defaults_base

_Fields = defaults_base(
    "tests.test_defaults._Fields",
    name=None,
    count=0,
    ratio=0.5,
    label="",
    raw=b"",
    pair=(1, ("a", None)),
    done=False,
)


class _Thing(_Fields):
    __slots__ = ("owner", "items")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.items: list = []


class _Colour(enum.Enum):
    RED = 1


def test_instances_start_with_the_defaults_and_set_the_rest_in_init():
    thing = _Thing("me")
    assert (thing.name, thing.count, thing.ratio, thing.label, thing.raw) == (None, 0, 0.5, "", b"")
    assert thing.pair == (1, ("a", None)) and thing.done is False
    assert thing.owner == "me" and thing.items == []
    other = _Thing("you")
    other.count += 5
    other.items.append(1)
    assert thing.count == 0 and thing.items == []  # nothing shared but the immutable defaults
    assert type(thing).__mro__[1].__name__ == "_Fields"
    assert _Fields.__module__ == "tests.test_defaults" and _Fields.__qualname__ == "_Fields"


def test_attributes_behave_as_slots():
    thing = _Thing(None)
    thing.name = "x"
    assert thing.name == "x"
    del thing.name
    with pytest.raises(AttributeError):
        thing.name
    with pytest.raises(AttributeError):
        thing.not_a_field = 1  # no __dict__: the subclass has __slots__
    with pytest.raises(AttributeError):
        thing.__dict__


def test_a_subclass_without_slots_and_a_mixin_work():
    class Mixin:  # a plain class in the bases, as the filter interfaces are
        def hello(self) -> str:
            return "hello"

    class Loose(Mixin, _Fields):
        pass

    loose = Loose()
    loose.extra = 1
    assert loose.count == 0 and loose.extra == 1 and loose.hello() == "hello"

    class Deeper(_Thing):
        __slots__ = ("more",)

    deeper = Deeper("x")
    assert deeper.done is False and deeper.owner == "x"


def test_cycles_through_the_fields_are_collected():
    collected = []

    class Probe:
        def __del__(self) -> None:
            collected.append(True)

    thing = _Thing(None)
    thing.name = [thing, Probe()]  # a cycle through a C field
    del thing
    gc.collect()
    assert collected == [True]


def test_mutable_or_missing_defaults_are_refused():
    for bad in ([], {}, set(), bytearray(), object(), (1, [])):
        with pytest.raises(TypeError, match="immutable"):
            defaults_base("tests.test_defaults.Bad", field=bad)
    with pytest.raises(TypeError):
        defaults_base("tests.test_defaults.Empty")
    base = defaults_base("tests.test_defaults.WithEnum", colour=_Colour.RED, frozen=(1, 2.0, "x"))
    assert base().colour is _Colour.RED
    with pytest.raises((TypeError, ValueError)):
        _fields.make_type("tests.test_defaults.Odd", ("a", "b"), (1,))
    with pytest.raises(TypeError):
        _fields.make_type("tests.test_defaults.Odd", (1,), (1,))


@pytest.mark.skipif(
    sys.implementation.name != "cpython" or sys.version_info < (3, 11), reason="CPython's specializing interpreter"
)
def test_the_fields_are_read_and_written_as_specialized_slots():
    def touch(thing):
        thing.count = thing.count + 1
        return thing.count

    thing = _Thing(None)
    for _ in range(100):
        touch(thing)
    ops = {i.opname for i in dis.get_instructions(touch, adaptive=True)}
    assert any(op.startswith("LOAD_ATTR_SLOT") for op in ops), ops
    assert "STORE_ATTR_SLOT" in ops, ops
