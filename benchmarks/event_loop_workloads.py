"""Event-layer workloads, each written for pyevent-envoy, asyncio and uvloop.

One function per workload and implementation.  Each builds a fresh loop,
does the work, checks that the work happened (callback counts, bytes
moved), closes the loop and returns a :class:`Result` whose ``seconds`` is
measured inside the loop: from the first schedule/create/write/post to the
callback that completes the work.  Loop construction and teardown are not
timed.

Used by the pytest-benchmark files under ``benchmarks/event/`` and by
``benchmarks/compare_event_loops.py``, which runs one measurement per fresh
interpreter through this module's command line::

    python3 benchmarks/event_loop_workloads.py WORKLOAD IMPL N [--warmup N] [--fresh-malloc]

It prints one JSON object (the :class:`Result`) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import socket
import sys
import threading
import time
from typing import Any, Callable

import uvloop

from pyevent_envoy.event import DispatcherImpl, FileReadyType, FileTriggerType, RunType

__all__ = [
    "IMPLEMENTATIONS",
    "WORKLOADS",
    "Result",
    "Workload",
    "WorkloadError",
    "run_workload",
    "settle_allocator",
]

perf_counter = time.perf_counter

#: implementation names, in table order
PE = "pyevent-envoy"
ASYNCIO = "asyncio"
UVLOOP = "uvloop"
IMPLEMENTATIONS = (PE, ASYNCIO, UVLOOP)

#: seed for the timer delays, the same for every implementation
TIMER_SEED = 20240611
#: the timer delays are uniform in [0, TIMER_MAX_DELAY) seconds
TIMER_MAX_DELAY = 0.1
#: bytes asked for per read in the ping-pong workloads (asyncio's
#: selector transport asks for 256 KiB, uvloop's libuv for 64 KiB)
READ_SIZE = 65536


def settle_allocator() -> None:
    """Free one 1 MiB block, as any process that has run for a while has done.

    glibc serves blocks above its mmap threshold (128 KiB at start) with
    ``mmap`` and raises the threshold to the size of the largest such block
    freed.  asyncio's selector transport reads into a fresh 256 KiB
    ``bytes`` each time, so in a brand-new interpreter every read costs an
    ``mmap``/``munmap`` pair and its page faults (3-4x slower ping-pong);
    once a larger block has been freed, those reads come from the heap.
    pyevent-envoy (64 KiB reads) and uvloop (its own buffer) are unaffected.
    """
    block = bytearray(1 << 20)
    del block


class WorkloadError(AssertionError):
    """A workload did not do the work it was timed for."""


@dataclasses.dataclass
class Result:
    """One timed run of one workload on one implementation."""

    workload: str
    impl: str
    n: int
    #: wall time of the work, measured inside the loop
    seconds: float
    #: what was verified (callbacks run, round trips, bytes), for the record
    counts: dict[str, int]
    #: phase timings or other detail worth keeping in the JSON output
    extra: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.n / self.seconds


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise WorkloadError(message)


def _new_asyncio_loop(impl: str) -> asyncio.AbstractEventLoop:
    if impl == ASYNCIO:
        return asyncio.new_event_loop()
    if impl == UVLOOP:
        return uvloop.new_event_loop()
    raise ValueError(f"not an asyncio implementation: {impl!r}")


# a/b. callback chains ------------------------------------------------------


def _chain_pe(n: int, next_iteration: bool) -> Result:
    dispatcher = DispatcherImpl("bench")
    count = 0
    t1 = 0.0

    def step() -> None:
        nonlocal count, t1
        count += 1
        if count < n:
            schedule()
        else:
            t1 = perf_counter()

    cb = dispatcher.create_schedulable_callback(step)
    schedule = cb.schedule_callback_next_iteration if next_iteration else cb.schedule_callback_current_iteration
    t0 = perf_counter()
    schedule()
    dispatcher.run(RunType.BLOCK)  # returns once nothing is queued
    cb.close()
    dispatcher.close()
    _check(count == n, f"{count} callbacks ran, expected {n}")
    name = "chain_next" if next_iteration else "chain_current"
    return Result(name, PE, n, t1 - t0, {"callbacks": count})


def _chain_asyncio(impl: str, n: int, name: str) -> Result:
    loop = _new_asyncio_loop(impl)
    call_soon = loop.call_soon
    count = 0
    t1 = 0.0

    def step() -> None:
        nonlocal count, t1
        count += 1
        if count < n:
            call_soon(step)
        else:
            t1 = perf_counter()
            loop.stop()

    try:
        t0 = perf_counter()
        call_soon(step)
        loop.run_forever()
    finally:
        loop.close()
    _check(count == n, f"{count} callbacks ran, expected {n}")
    return Result(name, impl, n, t1 - t0, {"callbacks": count})


def chain_current(impl: str, n: int) -> Result:
    if impl == PE:
        return _chain_pe(n, next_iteration=False)
    return _chain_asyncio(impl, n, "chain_current")


def chain_next(impl: str, n: int) -> Result:
    if impl == PE:
        return _chain_pe(n, next_iteration=True)
    return _chain_asyncio(impl, n, "chain_next")


# c. timers -----------------------------------------------------------------


def timer_delays(n: int, seed: int = TIMER_SEED) -> list[float]:
    """The same ``n`` delays, uniform in [0, 100 ms), for every implementation."""
    rng = random.Random(seed)
    return [rng.random() * TIMER_MAX_DELAY for _ in range(n)]


def timers(impl: str, n: int) -> Result:
    delays = timer_delays(n)
    count = 0
    t0 = t_created = t1 = 0.0

    def fire() -> None:
        nonlocal count, t1
        count += 1
        if count == n:
            t1 = perf_counter()
            done()

    if impl == PE:
        dispatcher = DispatcherImpl("bench")

        def create_all() -> None:
            nonlocal t0, t_created
            create_timer = dispatcher.create_timer
            t0 = perf_counter()
            for delay in delays:
                create_timer(fire).enable_timer(delay)
            t_created = perf_counter()

        def done() -> None:
            pass  # BLOCK returns once no timer is armed

        dispatcher.post(create_all)
        dispatcher.run(RunType.BLOCK)
        armed = dispatcher.statistics().events_armed
        dispatcher.close()
        _check(armed == 0, f"{armed} timers still armed")
    else:
        loop = _new_asyncio_loop(impl)

        def create_all() -> None:
            nonlocal t0, t_created
            call_later = loop.call_later
            t0 = perf_counter()
            for delay in delays:
                call_later(delay, fire)
            t_created = perf_counter()

        done = loop.stop
        try:
            loop.call_soon(create_all)
            loop.run_forever()
        finally:
            loop.close()
    _check(count == n, f"{count} timers fired, expected {n}")
    # Every timer fired no earlier than its deadline (2 ms slack for coarse clocks).
    _check(t1 - t0 >= max(delays) - 0.002, f"last timer fired after {t1 - t0:.4f} s, before its deadline")
    return Result("timers", impl, n, t1 - t0, {"timers_fired": count}, {"create_seconds": t_created - t0})


# d. socketpair ping-pong ----------------------------------------------------


def _socketpair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def _ping_pong_pe(n: int) -> Result:
    """FileEventImpl (EDGE, READ) on both ends; reads and writes in Python.

    One message is in flight at a time, so one read (shorter than
    READ_SIZE) drains the socket, as libuv concludes from a short read.
    """
    dispatcher = DispatcherImpl("bench")
    a, b = _socketpair()
    fa, fb = a.fileno(), b.fileno()
    read, write = os.read, os.write
    trips = received_a = received_b = 0
    t1 = 0.0

    def on_a(ready: FileReadyType) -> None:
        nonlocal trips, received_a, t1
        data = read(fa, READ_SIZE)
        received_a += len(data)
        trips += 1
        if trips < n:
            write(fa, data)
        else:
            t1 = perf_counter()
            dispatcher.exit()

    def on_b(ready: FileReadyType) -> None:
        nonlocal received_b
        data = read(fb, READ_SIZE)
        received_b += len(data)
        write(fb, data)

    ev_a = dispatcher.create_file_event(fa, on_a, FileTriggerType.EDGE, FileReadyType.READ)
    ev_b = dispatcher.create_file_event(fb, on_b, FileTriggerType.EDGE, FileReadyType.READ)
    try:
        t0 = perf_counter()
        write(fa, b"x")
        dispatcher.run(RunType.RUN_UNTIL_EXIT)
    finally:
        ev_a.close()
        ev_b.close()
        dispatcher.close()
        a.close()
        b.close()
    _check(trips == n and received_a == n and received_b == n,
           f"{trips} round trips, {received_a}/{received_b} bytes, expected {n}")
    return Result("ping_pong", PE, n, t1 - t0, {"round_trips": trips, "bytes_a": received_a, "bytes_b": received_b})


def _ping_pong_protocol(impl: str, n: int) -> Result:
    """asyncio's idiomatic API: transports and protocols (uvloop reads in C)."""
    loop = _new_asyncio_loop(impl)
    a, b = _socketpair()
    trips = received_a = received_b = 0
    t1 = 0.0

    class Ping(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            nonlocal trips, received_a, t1
            received_a += len(data)
            trips += 1
            if trips < n:
                self.transport.write(data)
            else:
                t1 = perf_counter()
                loop.stop()

    class Pong(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            nonlocal received_b
            received_b += len(data)
            self.transport.write(data)

    async def connect() -> tuple[Any, Any]:
        ta, _ = await loop.create_connection(Ping, sock=a)
        tb, _ = await loop.connect_accepted_socket(Pong, sock=b)
        return ta, tb

    try:
        ta, tb = loop.run_until_complete(connect())
        t0 = perf_counter()
        ta.write(b"x")
        loop.run_forever()
        ta.close()
        tb.close()
        loop.run_until_complete(asyncio.sleep(0))  # let the transports close
    finally:
        loop.close()
    _check(trips == n and received_a == n and received_b == n,
           f"{trips} round trips, {received_a}/{received_b} bytes, expected {n}")
    return Result("ping_pong", impl, n, t1 - t0, {"round_trips": trips, "bytes_a": received_a, "bytes_b": received_b})


def ping_pong(impl: str, n: int) -> Result:
    """``n`` 1-byte round trips over a socketpair, both ends on one loop."""
    if impl == PE:
        return _ping_pong_pe(n)
    return _ping_pong_protocol(impl, n)


def ping_pong_fd(impl: str, n: int) -> Result:
    """Like-for-like ping-pong: readiness callbacks that read and write in Python.

    pyevent-envoy: the same FileEventImpl run as :func:`ping_pong`;
    asyncio/uvloop: ``loop.add_reader`` with ``os.read``/``os.write``.
    """
    if impl == PE:
        result = _ping_pong_pe(n)
        result.workload = "ping_pong_fd"
        return result
    loop = _new_asyncio_loop(impl)
    a, b = _socketpair()
    fa, fb = a.fileno(), b.fileno()
    read, write = os.read, os.write
    trips = received_a = received_b = 0
    t1 = 0.0

    def on_a() -> None:
        nonlocal trips, received_a, t1
        data = read(fa, READ_SIZE)
        received_a += len(data)
        trips += 1
        if trips < n:
            write(fa, data)
        else:
            t1 = perf_counter()
            loop.stop()

    def on_b() -> None:
        nonlocal received_b
        data = read(fb, READ_SIZE)
        received_b += len(data)
        write(fb, data)

    try:
        loop.add_reader(fa, on_a)
        loop.add_reader(fb, on_b)
        t0 = perf_counter()
        write(fa, b"x")
        loop.run_forever()
        loop.remove_reader(fa)
        loop.remove_reader(fb)
    finally:
        loop.close()
        a.close()
        b.close()
    _check(trips == n and received_a == n and received_b == n,
           f"{trips} round trips, {received_a}/{received_b} bytes, expected {n}")
    counts = {"round_trips": trips, "bytes_a": received_a, "bytes_b": received_b}
    return Result("ping_pong_fd", impl, n, t1 - t0, counts)


# e. cross-thread posts -----------------------------------------------------


def _cross_thread(impl: str, n: int, producers: int, name: str) -> Result:
    """``producers`` threads post ``n`` callbacks in all to a loop in another thread.

    Timed from the first post (the earliest producer start) to the run of the
    callback that completes the count.
    """
    _check(n % producers == 0, f"n={n} is not a multiple of {producers} producers")
    per_producer = n // producers
    count = 0
    t1 = 0.0
    ready = threading.Event()
    barrier = threading.Barrier(producers)
    starts = [0.0] * producers

    if impl == PE:
        dispatcher = DispatcherImpl("bench")
        post: Callable[[Callable[[], None]], None] = dispatcher.post
        stop = dispatcher.exit

        def run_loop() -> None:
            dispatcher.run(RunType.RUN_UNTIL_EXIT)

        def close() -> None:
            dispatcher.close()
    else:
        loop = _new_asyncio_loop(impl)
        post = loop.call_soon_threadsafe
        stop = loop.stop

        def run_loop() -> None:
            asyncio.set_event_loop(loop)
            loop.run_forever()

        close = loop.close

    def callback() -> None:
        nonlocal count, t1
        count += 1
        if count == n:
            t1 = perf_counter()
            stop()

    def produce(k: int) -> None:
        barrier.wait()
        starts[k] = perf_counter()
        for _ in range(per_producer):
            post(callback)

    loop_thread = threading.Thread(target=run_loop, name="bench-loop")
    post(ready.set)
    loop_thread.start()
    try:
        _check(ready.wait(30), "the loop did not start")
        threads = [threading.Thread(target=produce, args=(k,), name=f"bench-producer-{k}") for k in range(producers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        loop_thread.join(120)
        _check(not loop_thread.is_alive(), f"the loop did not finish: {count} of {n} callbacks ran")
    finally:
        if not loop_thread.is_alive():
            close()
    _check(count == n, f"{count} posted callbacks ran, expected {n}")
    t0 = min(starts)
    return Result(name, impl, n, t1 - t0, {"callbacks": count, "producers": producers})


def cross_thread_post(impl: str, n: int) -> Result:
    return _cross_thread(impl, n, 1, "cross_thread_post")


def cross_thread_post_4(impl: str, n: int) -> Result:
    return _cross_thread(impl, n, 4, "cross_thread_post_4")


# the table ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """A row of the comparison table."""

    name: str
    fn: Callable[[str, int], Result]
    #: default size; --quick divides it by ``quick_divisor``
    n: int
    unit: str
    title: str
    #: what pyevent-envoy runs / what asyncio and uvloop run
    pe_side: str
    asyncio_side: str
    #: minimum rate of pyevent-envoy / rate of uvloop (None: no uvloop target)
    uvloop_target: float | None
    #: minimum rate of pyevent-envoy / rate of asyncio
    asyncio_target: float = 2.0
    note: str = ""
    quick_divisor: int = 10


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "chain_current", chain_current, 200_000, "callbacks",
            "callback chain, same-iteration",
            "SchedulableCallbackImpl.schedule_callback_current_iteration",
            "loop.call_soon",
            1 / 1.2,
            note="Not like-for-like: pyevent-envoy re-drains same-iteration work up to 16 rounds per poll "
            "(Envoy semantics); asyncio/uvloop poll once per call_soon generation.",
        ),
        Workload(
            "chain_next", chain_next, 200_000, "callbacks",
            "callback chain, next-iteration",
            "SchedulableCallbackImpl.schedule_callback_next_iteration",
            "loop.call_soon",
            1 / 1.2,
            note="Like-for-like: one poll per step on all three.",
        ),
        Workload(
            "timers", timers, 100_000, "timers",
            "timers, random 0-100 ms delays",
            "dispatcher.create_timer(cb).enable_timer(delay)",
            "loop.call_later(delay, cb)",
            1 / 1.2,
            note="Timed from the first create to the last fire; the 100 ms horizon is a floor under every time.",
        ),
        Workload(
            "ping_pong", ping_pong, 50_000, "round trips",
            "socketpair ping-pong, 1 byte",
            "FileEventImpl (EDGE, READ) + os.read/os.write",
            "Protocol.data_received + transport.write",
            0.8,
            note="pyevent-envoy reads in Python; uvloop reads in C before one Python call.",
        ),
        Workload(
            "ping_pong_fd", ping_pong_fd, 50_000, "round trips",
            "socketpair ping-pong, 1 byte, fd callbacks",
            "FileEventImpl (EDGE, READ) + os.read/os.write",
            "loop.add_reader + os.read/os.write",
            None,
            note="Like-for-like: every implementation reads and writes in Python.",
        ),
        Workload(
            "cross_thread_post", cross_thread_post, 200_000, "posts",
            "cross-thread post, 1 producer",
            "dispatcher.post from another thread (RUN_UNTIL_EXIT)",
            "loop.call_soon_threadsafe",
            1.0,
        ),
        Workload(
            "cross_thread_post_4", cross_thread_post_4, 200_000, "posts",
            "cross-thread post, 4 producers",
            "dispatcher.post from 4 threads (RUN_UNTIL_EXIT)",
            "loop.call_soon_threadsafe",
            1.0,
        ),
    )
}


def run_workload(name: str, impl: str, n: int) -> Result:
    """Run workload ``name`` once on ``impl`` with size ``n``, on a fresh loop."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLEMENTATIONS}")
    return WORKLOADS[name].fn(impl, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one event-loop workload and print its result as JSON.")
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("impl", choices=IMPLEMENTATIONS)
    parser.add_argument("n", type=int)
    parser.add_argument("--warmup", type=int, default=0, help="size of an untimed run first, on its own loop")
    parser.add_argument("--fresh-malloc", action="store_true", help="skip settle_allocator()")
    args = parser.parse_args(argv)
    if not args.fresh_malloc:
        settle_allocator()
    if args.warmup > 0:
        run_workload(args.workload, args.impl, args.warmup)
    result = run_workload(args.workload, args.impl, args.n)
    json.dump(dataclasses.asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
