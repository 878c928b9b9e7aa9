"""DnsResolverImpl: lookups on a pool, answers posted to the dispatcher, lookup families, cancel, shutdown."""

import socket
import threading
import time

import pytest
from upstream_helpers import StubResolver, drain_main, resolver_threads_alive

from pyevent_envoy.testing import run_until
from pyevent_envoy.upstream import DnsLookupFamily, DnsResolverImpl, ResolutionStatus, getaddrinfo_resolve
from pyevent_envoy.upstream.dns import apply_lookup_family

pytestmark = pytest.mark.timeout(60)

BOTH = ["10.0.0.1", "fd00::1", "10.0.0.2", "10.0.0.1", "fd00::2"]


@pytest.mark.parametrize(
    "family, expected",
    [
        (DnsLookupFamily.AUTO, ("fd00::1", "fd00::2")),
        (DnsLookupFamily.V4_PREFERRED, ("10.0.0.1", "10.0.0.2")),
        (DnsLookupFamily.V4_ONLY, ("10.0.0.1", "10.0.0.2")),
        (DnsLookupFamily.V6_ONLY, ("fd00::1", "fd00::2")),
        (DnsLookupFamily.ALL, ("10.0.0.1", "fd00::1", "10.0.0.2", "fd00::2")),
    ],
)
def test_apply_lookup_family_filters_and_deduplicates_in_order(family, expected):
    assert apply_lookup_family(BOTH, family) == expected


def test_apply_lookup_family_falls_back_to_the_other_family():
    assert apply_lookup_family(["10.0.0.1"], DnsLookupFamily.AUTO) == ("10.0.0.1",)
    assert apply_lookup_family(["fd00::1"], DnsLookupFamily.V4_PREFERRED) == ("fd00::1",)
    assert apply_lookup_family(["10.0.0.1"], DnsLookupFamily.V6_ONLY) == ()


def test_apply_lookup_family_normalizes_and_rejects_garbage():
    assert apply_lookup_family(["FD00:0::1", "fe80::1%eth0"], DnsLookupFamily.ALL) == ("fd00::1", "fe80::1")
    with pytest.raises(ValueError):
        apply_lookup_family(["not-an-ip"], DnsLookupFamily.ALL)


def test_getaddrinfo_resolve_localhost():
    addresses = set(getaddrinfo_resolve("localhost", socket.AF_UNSPEC))
    assert addresses and addresses <= {"127.0.0.1", "::1"}
    with pytest.raises(OSError):
        getaddrinfo_resolve("does-not-exist.invalid", socket.AF_UNSPEC)


def resolve_and_wait(main, resolver, name, family=DnsLookupFamily.AUTO):
    results = []
    query = resolver.resolve(name, family, lambda status, addresses: results.append((status, addresses)))
    assert results == []  # never inline
    run_until(main, lambda: results)
    assert not query.active
    return results[0]


def test_resolver_answer_runs_on_the_dispatcher_thread(main_dispatcher):
    stub = StubResolver({"svc": ["10.0.0.1"]})
    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=stub)
    threads = []
    resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *_a: threads.append(threading.get_ident()))
    run_until(main_dispatcher, lambda: threads)
    assert threads == [threading.get_ident()]
    assert all(name.startswith("dns_resolver") for name in stub.threads)  # the lookup ran on the pool
    resolver.shutdown()


@pytest.mark.parametrize(
    "family, socket_family",
    [
        (DnsLookupFamily.AUTO, socket.AF_UNSPEC),
        (DnsLookupFamily.V4_ONLY, socket.AF_INET),
        (DnsLookupFamily.V6_ONLY, socket.AF_INET6),
        (DnsLookupFamily.V4_PREFERRED, socket.AF_UNSPEC),
        (DnsLookupFamily.ALL, socket.AF_UNSPEC),
    ],
)
def test_resolver_passes_the_socket_family_to_resolve_fn(main_dispatcher, family, socket_family):
    stub = StubResolver({"svc": BOTH})
    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=stub)
    status, addresses = resolve_and_wait(main_dispatcher, resolver, "svc", family)
    assert status is ResolutionStatus.SUCCESS
    assert addresses == apply_lookup_family(BOTH, family)
    assert stub.calls == [("svc", socket_family)]
    resolver.shutdown()


def test_resolver_failures_are_reported_not_raised(main_dispatcher):
    stub = StubResolver({"boom": RuntimeError("resolver bug"), "garbage": ["nope"], "v4": ["10.0.0.1"]})
    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=stub)
    assert resolve_and_wait(main_dispatcher, resolver, "missing") == (ResolutionStatus.FAILURE, ())
    assert resolve_and_wait(main_dispatcher, resolver, "boom") == (ResolutionStatus.FAILURE, ())
    assert resolve_and_wait(main_dispatcher, resolver, "garbage") == (ResolutionStatus.FAILURE, ())
    # resolved, but nothing of the requested family: a failure too
    assert resolve_and_wait(main_dispatcher, resolver, "v4", DnsLookupFamily.V6_ONLY) == (ResolutionStatus.FAILURE, ())
    resolver.shutdown()


def test_resolver_cancelled_query_never_calls_back(main_dispatcher):
    stub = StubResolver({"svc": ["10.0.0.1"]})
    stub.gate = threading.Event()
    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=stub)
    calls = []
    query = resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *a: calls.append(a))
    other = resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *a: calls.append(("other",) + a))
    assert resolver.pending == 2
    query.cancel()
    query.cancel()  # idempotent
    assert resolver.pending == 1
    stub.gate.set()
    run_until(main_dispatcher, lambda: calls)
    assert calls == [("other", ResolutionStatus.SUCCESS, ("10.0.0.1",))]
    assert not other.active and resolver.pending == 0
    resolver.shutdown()


def test_resolver_slow_lookup_does_not_block_the_loop(main_dispatcher):
    def slow(name, family):
        time.sleep(1.0)
        return ["10.0.0.1"]

    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=slow)
    answered = []
    fired = []
    start = time.monotonic()
    resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *a: answered.append(time.monotonic() - start))
    timer = main_dispatcher.create_timer(lambda: fired.append(time.monotonic() - start))
    timer.enable_timer(0.010)
    run_until(main_dispatcher, lambda: fired)
    assert fired[0] < 0.5 and not answered
    run_until(main_dispatcher, lambda: answered)
    assert answered[0] >= 0.9
    timer.close()
    resolver.shutdown()


def test_resolver_shutdown_cancels_pending_and_stops_its_threads(main_dispatcher):
    stub = StubResolver({"svc": ["10.0.0.1"]})
    stub.gate = threading.Event()
    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=stub, max_threads=2)
    calls = []
    for _ in range(4):
        resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *a: calls.append(a))
    run_until(main_dispatcher, lambda: stub.call_count() == 2)  # two threads busy, two queued
    threading.Timer(0.1, stub.gate.set).start()
    resolver.shutdown()  # waits for the two lookups in flight; drops the queued ones
    resolver.shutdown()  # idempotent
    assert resolver.pending == 0
    assert stub.call_count() == 2
    assert resolver_threads_alive() == []
    drain_main(main_dispatcher)
    assert calls == []
    with pytest.raises(RuntimeError):
        resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *a: None)


def test_resolver_answer_after_the_dispatcher_closed_is_dropped():
    from pyevent_envoy.event import DispatcherImpl

    main = DispatcherImpl("short_lived")
    stub = StubResolver({"svc": ["10.0.0.1"]})
    stub.gate = threading.Event()
    resolver = DnsResolverImpl(main, resolve_fn=stub)
    resolver.resolve("svc", DnsLookupFamily.AUTO, lambda *a: None)
    main.close()
    stub.gate.set()
    resolver.shutdown()  # the pool thread's post hits a closed dispatcher: swallowed
    assert resolver_threads_alive() == []
