"""HeaderMap's C base (pyevent_envoy._headers.HeaderFields) against the Python it replaced.

The lookups and the trusted set run in C.  A hypothesis state machine drives a
HeaderMap and a model that keeps the original pure-Python method bodies
through the same random operations, with names given as fresh string objects
(equal, not identical) as often as interned ones, and checks that both hold
the same fields and answer the same after every step.
"""

from __future__ import annotations

import copy
import gc
import pickle
import sys

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pyevent_envoy._headers import HeaderFields
from pyevent_envoy.http.header_map import HeaderMap

pytestmark = pytest.mark.timeout(120)


class Model:
    """The pure-Python HeaderMap methods now in C, verbatim, on two plain lists."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._values: list[str] = []

    def _get(self, name):
        names = self._names
        if name in names:
            return self._values[names.index(name)]
        return None

    def get(self, name):
        return self._get(name.lower())

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._names

    def _set_trusted(self, name, value):
        names = self._names
        if name in names:
            first = names.index(name)
            self._values[first] = value
            if names.count(name) > 1:
                self._remove_after(name, first + 1)
        elif name[0] == ":":
            self._insert_pseudo(name, value)
        else:
            names.append(name)
            self._values.append(value)

    def _insert_pseudo(self, name, value):
        names = self._names
        i = 0
        while i < len(names) and names[i][0] == ":":
            i += 1
        names.insert(i, name)
        self._values.insert(i, value)

    def add(self, name, value):
        name = name.lower()
        if name[0] == ":":
            self._insert_pseudo(name, value)
        else:
            self._names.append(name)
            self._values.append(value)

    def remove(self, name):
        name = name.lower()
        if name not in self._names:
            return 0
        return self._remove_after(name, 0)

    def _remove_after(self, name, start):
        keep = [i for i in range(len(self._names)) if i < start or self._names[i] != name]
        removed = len(self._names) - len(keep)
        self._names = [self._names[i] for i in keep]
        self._values = [self._values[i] for i in keep]
        return removed


LOWER = ["host", "x-request-id", "x-forwarded-for", "content-length", "a", "via", "x-envoy-internal"]
PSEUDO = [":method", ":path", ":authority", ":scheme", ":status"]


def fresh(name: str) -> str:
    """An equal string that is not the same object (as a parsed header name would be)."""
    return "".join(list(name))


lower_names = st.sampled_from(LOWER + PSEUDO).flatmap(lambda n: st.sampled_from([n, fresh(n)]))
any_case = st.sampled_from(LOWER + PSEUDO).flatmap(
    lambda n: st.sampled_from([n, n.upper(), n.title(), fresh(n)])
)
values = st.text(alphabet="abc123 -/", min_size=0, max_size=6)


class HeaderFieldsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.real = HeaderMap()
        self.model = Model()

    @rule(name=lower_names, value=values)
    def set_trusted(self, name, value):
        assert self.real._set_trusted(name, value) is None
        self.model._set_trusted(name, value)

    @rule(name=st.sampled_from(PSEUDO), value=values)
    def insert_pseudo(self, name, value):
        self.real._insert_pseudo(name, value)
        self.model._insert_pseudo(name, value)

    @rule(name=st.sampled_from(LOWER + PSEUDO), value=st.text(alphabet="abc123-/", min_size=1, max_size=6))
    def add(self, name, value):
        # add() validates in Python, then inserts a pseudo-header through the C method.
        self.real.add(name, value)
        self.model.add(name, value)

    @rule(name=any_case)
    def remove(self, name):
        assert self.real.remove(name) == self.model.remove(name)

    @rule(name=lower_names)
    def lookup_lower(self, name):
        assert self.real._get(name) == self.model._get(name)

    @rule(name=any_case)
    def lookup_any_case(self, name):
        assert self.real.get(name) == self.model.get(name)
        assert (name in self.real) == (name in self.model)

    @rule()
    def rewrap(self):
        # What the codec does: wrap lists it built; no copy.
        names, values_ = list(self.real._names), list(self.real._values)
        self.real = HeaderMap._trusted(names, values_)
        assert self.real._names is names and self.real._values is values_

    @invariant()
    def same_fields(self):
        assert self.real._names == self.model._names
        assert self.real._values == self.model._values


TestHeaderFieldsAgainstModel = HeaderFieldsMachine.TestCase
TestHeaderFieldsAgainstModel.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)


def test_trusted_makes_the_subclass_without_init():
    headers = HeaderMap._trusted([":status", "server"], ["200", "x"])
    assert type(headers) is HeaderMap
    assert list(headers) == [(":status", "200"), ("server", "x")]


def test_membership_is_for_str_names_only():
    headers = HeaderMap([("Host", "a")])
    assert "HOST" in headers
    assert b"host" not in headers
    assert 7 not in headers
    assert headers.get(b"host") is None  # as before: bytes never equal a str name
    with pytest.raises(AttributeError):
        headers.get(7)


def test_set_trusted_drops_repeats_after_the_first():
    headers = HeaderMap([("a", "1"), ("b", "2"), ("a", "3"), ("a", "4")])
    headers._set_trusted("a", "9")
    assert list(headers) == [("a", "9"), ("b", "2")]


def test_unset_lists_raise_attribute_error_like_empty_slots():
    bare = HeaderFields()
    with pytest.raises(AttributeError):
        bare._get("a")
    with pytest.raises(AttributeError):
        bare._names


def test_lists_of_another_type_are_refused():
    bare = HeaderFields()
    bare._names = ("a",)
    bare._values = ("b",)
    with pytest.raises(TypeError):
        bare._get("a")


def test_copy_and_pickle_keep_the_fields():
    headers = HeaderMap([(":path", "/"), ("x-a", "1"), ("x-a", "2")])
    assert copy.copy(headers) == headers
    assert copy.deepcopy(headers) == headers
    assert pickle.loads(pickle.dumps(headers)) == headers
    assert headers.copy() == headers and headers.copy()._names is not headers._names


def test_no_leak_and_cycles_are_collected():
    import weakref

    class Holder:
        pass

    before = sys.getrefcount(HeaderMap)
    for _ in range(1000):
        headers = HeaderMap._trusted(["a"], ["b"])
        headers._set_trusted("c", "d")
        headers.get("A")
        del headers
    assert sys.getrefcount(HeaderMap) == before  # each map released its type reference
    # A map whose list holds itself is garbage the cycle collector can free.
    holder = Holder()
    cyclic = HeaderMap._trusted([], [])
    cyclic._values.append(holder)
    holder.headers = cyclic
    ref = weakref.ref(holder)
    del holder, cyclic
    gc.collect()
    assert ref() is None
