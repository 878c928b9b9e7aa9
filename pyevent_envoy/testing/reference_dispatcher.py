"""``ReferenceDispatcher``: the dispatcher contract in plain Python.

A dispatcher on :mod:`selectors` and :mod:`heapq`, with no libevent in it,
whose observable behaviour is that of :class:`~pyevent_envoy.event.DispatcherImpl`.
It is slow, but short enough to read: the contract test suite runs every
test against both dispatchers, so this module is the executable statement of
what the event layer promises (``docs/design.md``, "The event-layer
contract"; Envoy's ``source/common/event/libevent_scheduler.h``).

One pass of the loop (:meth:`ReferenceDispatcher._run_loop`) is one
iteration of Envoy's loop:

0. Records that a ``BaseException`` kept from running in the previous pass
   run first (nothing that was ready is lost).
1. Poll.  The poll does not wait when Python work is queued, when an exit is
   pending, or under ``RunType.NON_BLOCK``; otherwise it waits for the
   earliest timer deadline (or forever).  Under ``RunType.BLOCK`` the loop
   returns instead when nothing is armed and nothing is posted.
2. The approximate monotonic time is refreshed.
3. Records run: ready file events (and signals, and the wake-up that carries
   posts), then timers whose deadline is reached, earliest first (an order
   DispatcherImpl does not promise: libevent's is unspecified).  A timer
   armed during a pass is checked only after the next poll, so a zero delay
   fires in the next iteration.  A record whose event was disabled, re-armed
   or closed by an earlier callback of the pass is skipped.
4. The next-iteration queue, as it was before the pass
   (``schedule_callback_next_iteration``, ``FileEvent.activate``).
5. The same-iteration queue (``schedule_callback_current_iteration``, and
   through it posts and deferred deletes), re-drained for work it schedules
   itself, at most :data:`MAX_SAME_ITERATION_ROUNDS` rounds; what remains
   runs after the next poll, which does not wait.  This is what keeps a
   callback that re-schedules itself forever from starving I/O.

:meth:`ReferenceDispatcher.run` first runs the posts queued before it, before
any other event, as Envoy does.

Each callback runs inside ``try``: an ``Exception`` goes to the error handler
(by default logged to ``pyevent_envoy.event``) and the pass goes on; a
``BaseException`` leaves :meth:`run`, and whatever the pass had not run yet
is kept for the next pass.

What selectors cannot express, and how this module emulates it.  Both
concern file events only; the contract tests that depend on the difference
run on libevent alone.

- ``FileTriggerType.EDGE``: selectors are level-triggered.  An edge event
  reports everything that is ready, once, then goes *quiet* until an edge
  of its descriptor, as epoll's ``EPOLLET`` does.  The edges it recognises:
  a (re-)registration (:meth:`FileEvent.set_enabled`, creation); new data
  (more unread bytes than were left when the callback returned, or data on
  a drained socket); a new end of stream; write space after the socket was
  seen full.  A quiet event is checked after each of its callbacks and
  before each poll; while unread data sits in it the poll waits at most
  :data:`PROBE_INTERVAL`, so new data is noticed.  Unlike epoll, a socket
  filled and emptied again between two checks reports no new ``WRITE``.
- ``FileReadyType.CLOSED``: selectors have no ``EPOLLRDHUP``.  When the
  descriptor polls readable, a zero-timeout ``select.poll`` probe for
  ``POLLRDHUP`` decides (where the platform lacks it: readable with no unread
  bytes).  An event asking for ``CLOSED`` without ``READ`` whose peer sent
  data it does not read is probed every :data:`PROBE_INTERVAL` instead of
  being polled readable, so it does not spin.

Other differences, each a limit of pure Python: signals use the
:mod:`signal` module, so :meth:`ReferenceDispatcher.listen_for_signal` works
only on the main thread and a callback runs when the interpreter has run
the Python-level handler; a poll waits for a timer deadline only on the
real clock (on a :class:`~pyevent_envoy.testing.SimulatedClock` it waits for
:meth:`~pyevent_envoy.testing.SimulatedClock.advance`).
"""

from __future__ import annotations

import array
import fcntl
import heapq
import itertools
import logging
import select
import selectors
import signal as _signal
import socket
import termios
import threading
import warnings
from typing import Any, Callable

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event.dispatcher import Dispatcher, ErrorHandler, FileDescriptor, PostCb, RunType
from pyevent_envoy.event.dispatcher_impl import DispatcherStatistics
from pyevent_envoy.event.file_event import FileEvent, FileReadyCb, FileReadyType, FileTriggerType
from pyevent_envoy.event.schedulable_cb import SchedulableCallback
from pyevent_envoy.event.signal import SignalEvent
from pyevent_envoy.event.timer import Duration, Timer, TimerCb, to_seconds
from pyevent_envoy.testing.simulated_time import RealClock

__all__ = [
    "MAX_SAME_ITERATION_ROUNDS",
    "PROBE_INTERVAL",
    "ReferenceDispatcher",
    "ReferenceFileEvent",
    "ReferenceSchedulableCallback",
    "ReferenceSignalEvent",
    "ReferenceTimer",
]

_log = logging.getLogger("pyevent_envoy.event")
_get_ident = threading.get_ident

#: Rounds of the same-iteration phase before the loop polls again (the
#: libevent scheduler's bound of the same name).
MAX_SAME_ITERATION_ROUNDS = 16

#: Longest poll wait, in seconds, while an emulated file event needs probing
#: (see the module docstring).
PROBE_INTERVAL = 0.01

_READ = int(FileReadyType.READ)
_WRITE = int(FileReadyType.WRITE)
_CLOSED = int(FileReadyType.CLOSED)
_ALL = _READ | _WRITE | _CLOSED
_TIMEOUT = 0x8  # the ready bit of timer and signal records
_WAKE_ID = 1  # record id of the wake-up socket; arming ids start above it

_POLLRDHUP = getattr(select, "POLLRDHUP", 0)


# Probes of a descriptor's state, for the edge and CLOSED emulation.


def _unread_and_peer_closed(fd: int) -> tuple[int, bool]:
    """Bytes waiting to be read, and whether the peer has shut down its side."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, count, True)
    except OSError:
        count[0] = 0
    poller = select.poll()
    poller.register(fd, select.POLLIN | _POLLRDHUP)
    ready = poller.poll(0)
    bits = ready[0][1] if ready else 0
    if _POLLRDHUP:
        closed = bool(bits & (_POLLRDHUP | select.POLLHUP))
    else:  # readable with nothing to read: the end of the stream
        closed = bool(bits & select.POLLHUP) or (bool(bits & select.POLLIN) and count[0] == 0)
    return count[0], closed


def _writable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


# The events.


class _Event:
    """The arming and close protocol shared by the reference events.

    An armed event sits in its dispatcher's ``_armed`` map under a fresh
    arming id: that keeps it (and its callback's owner) alive, and a record
    carrying an id that is no longer armed is skipped.  Internal events (the
    dispatcher's own) are not counted in :meth:`ReferenceDispatcher.statistics`.
    """

    __slots__ = ("_dispatcher", "_id", "_closed", "_internal", "__weakref__")

    def __init__(self, dispatcher: ReferenceDispatcher, internal: bool = False) -> None:
        self._dispatcher = dispatcher
        self._id = 0
        self._closed = False
        self._internal = internal
        if not internal:
            dispatcher._events_created += 1

    def _arm(self) -> None:
        d = self._dispatcher
        d._check_open()
        if self._id:
            del d._armed[self._id]
        self._id = next(d._ids)
        d._armed[self._id] = self

    def _disarm(self) -> None:
        if self._id:
            del self._dispatcher._armed[self._id]
            self._id = 0

    def _check_open(self) -> None:
        if self._closed:
            raise DispatcherClosedError(f"{type(self).__name__} is closed")
        self._dispatcher._check_open()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._internal:
            self._dispatcher._events_closed += 1
        self._disarm()


class ReferenceTimer(_Event, Timer):
    """A one-shot timer: an entry ``(deadline, arming id)`` in the dispatcher's heap."""

    __slots__ = ("_cb",)

    def __init__(self, dispatcher: ReferenceDispatcher, cb: TimerCb) -> None:
        _Event.__init__(self, dispatcher)
        self._cb = cb

    # Timer

    def enable_timer(self, delay: Duration) -> None:
        self._check_open()
        seconds = to_seconds(delay)
        self._arm()  # a fresh id: the entry of an earlier arming is now stale
        d = self._dispatcher
        heapq.heappush(d._timers, (d._clock.monotonic() + seconds, self._id))

    enable_hr_timer = enable_timer

    def disable_timer(self) -> None:
        self._disarm()

    def enabled(self) -> bool:
        return self._id != 0

    # dispatcher

    def _fire(self, ready: int) -> None:
        self._disarm()  # one-shot: disabled while its callback runs
        self._cb()


class ReferenceSchedulableCallback(_Event, SchedulableCallback):
    """A callback in one of the dispatcher's two queues, as ``(callback, token)``.

    Every schedule or cancel bumps the token, so entries left behind by an
    earlier call are skipped when their queue runs.
    """

    __slots__ = ("_cb", "_scheduled", "_token")

    _IDLE, _CURRENT, _NEXT = 0, 1, 2

    def __init__(self, dispatcher: ReferenceDispatcher, cb: Callable[[], None], internal: bool = False) -> None:
        _Event.__init__(self, dispatcher, internal)
        self._cb = cb
        self._scheduled = self._IDLE
        self._token = 0

    def _schedule(self, state: int, queue: list) -> None:
        if self._scheduled == state:
            return  # already in that queue
        self._check_open()
        self._token += 1
        self._scheduled = state
        queue.append((self, self._token))

    # SchedulableCallback

    def schedule_callback_current_iteration(self) -> None:
        self._schedule(self._CURRENT, self._dispatcher._current)

    def schedule_callback_next_iteration(self) -> None:
        self._schedule(self._NEXT, self._dispatcher._next)

    def cancel(self) -> None:
        if self._scheduled:
            self._scheduled = self._IDLE
            self._token += 1

    def enabled(self) -> bool:
        return self._scheduled != self._IDLE

    def close(self) -> None:
        self.cancel()
        _Event.close(self)


class ReferenceFileEvent(_Event, FileEvent):
    """Readiness of one descriptor, from the dispatcher's selector.

    Several events may watch one descriptor: the selector registration is
    the union of what each wants.  ``LEVEL`` reports what the selector polls.
    ``EDGE`` (see the module docstring) reports the current readiness once,
    then stays *quiet* until an edge: ``_read_mark`` and ``_write_blocked``
    remember what was seen after the report, so that new data, a new end of
    stream, or write space after a full buffer can be told apart.
    """

    __slots__ = (
        "_fd",
        "_cb",
        "_trigger",
        "_events",
        "_injected",
        "_activation",
        "_quiet",
        "_read_mark",
        "_write_blocked",
        "_parked",
    )

    def __init__(
        self,
        dispatcher: ReferenceDispatcher,
        fd: FileDescriptor,
        cb: FileReadyCb,
        trigger: FileTriggerType,
        events: FileReadyType,
    ) -> None:
        if not isinstance(trigger, FileTriggerType):
            raise TypeError(f"trigger must be a FileTriggerType, got {trigger!r}")
        number = fd if isinstance(fd, int) else fd.fileno()
        if number < 0:
            raise ValueError(f"invalid file descriptor {number}")
        dispatcher._check_open()
        _Event.__init__(self, dispatcher)
        self._fd = number
        self._cb = cb
        self._trigger = trigger
        self._events = int(events) & _ALL
        self._injected = 0
        self._activation = ReferenceSchedulableCallback(dispatcher, self._on_activation, internal=True)
        self._quiet = False  # EDGE: reported, waiting for an edge
        self._read_mark: tuple[int, bool] | None = None  # EDGE: (unread bytes, peer closed) since the report
        self._write_blocked = False  # EDGE: seen not writable since the report
        self._parked = False  # LEVEL, CLOSED without READ: readable for data it does not report
        dispatcher._fd_events.setdefault(number, []).append(self)
        try:
            self._register()
        except BaseException:
            self.close()  # keeps the statistics balanced
            raise

    def _register(self) -> None:
        """A fresh registration: libevent's ``event_del`` + ``event_add``; an edge reports again."""
        self._quiet = False
        self._read_mark = None
        self._write_blocked = False
        self._parked = False
        if self._events:
            self._arm()
        else:
            self._disarm()
        self._refresh()

    def _selector_mask(self) -> int:
        if not self._id:
            return 0
        events = self._events
        mask = 0
        if self._quiet:  # poll only for what would be an edge
            if events & (_READ | _CLOSED) and self._read_mark == (0, False):
                mask |= selectors.EVENT_READ  # nothing to read: any readability is new
            if events & _WRITE and self._write_blocked:
                mask |= selectors.EVENT_WRITE  # was full: write space is new
            return mask
        if events & _READ or (events & _CLOSED and not self._parked):
            mask |= selectors.EVENT_READ
        if events & _WRITE:
            mask |= selectors.EVENT_WRITE
        return mask

    def _readiness(self, polled: int) -> int:
        """The bits to report for what the selector polled (``EVENT_READ|EVENT_WRITE``)."""
        events = self._events
        if self._trigger is FileTriggerType.EDGE:
            # An edge (a registration, or an edge seen while quiet): report
            # everything that is ready now, as epoll does.
            ready = 0
            if events & (_READ | _CLOSED):
                unread, closed = _unread_and_peer_closed(self._fd)
                if events & _READ and (polled & selectors.EVENT_READ or unread or closed):
                    ready |= _READ
                if events & _CLOSED and closed:
                    ready |= _CLOSED
            if events & _WRITE and (polled & selectors.EVENT_WRITE or _writable(self._fd)):
                ready |= _WRITE
            return ready
        ready = 0
        if polled & selectors.EVENT_READ:
            if events & _READ:
                ready |= _READ
            if events & _CLOSED:
                if _unread_and_peer_closed(self._fd)[1]:
                    ready |= _CLOSED
                elif not events & _READ:
                    self._refresh()  # readable only for data it does not report: park
        if polled & selectors.EVENT_WRITE and events & _WRITE:
            ready |= _WRITE
        return ready

    def _refresh(self) -> bool:
        """Look for edges, (un)park, update the selector.  True: probe again within PROBE_INTERVAL."""
        d = self._dispatcher
        timed = watch = False
        events = self._events
        if self._id and self._trigger is FileTriggerType.EDGE and self._quiet:
            watch = True
            edge = False
            if events & (_READ | _CLOSED):
                unread, closed = _unread_and_peer_closed(self._fd)
                mark = self._read_mark
                if mark is not None and (unread > mark[0] or (closed and not mark[1])):
                    edge = True  # new data, or a new end of stream
                else:
                    self._read_mark = (unread if mark is None else min(unread, mark[0]), closed)
                    timed = unread > 0 and not closed  # new data would not make it readable again
            if events & _WRITE:
                if not _writable(self._fd):
                    self._write_blocked = True
                elif self._write_blocked:
                    edge = True  # write space after a full buffer
            if edge:
                self._quiet = False  # the coming poll reports the current readiness
                watch = timed = False
        elif self._id and events & _CLOSED and not events & _READ:
            watch = True
            unread, closed = _unread_and_peer_closed(self._fd)
            self._parked = timed = unread > 0 and not closed
        if watch:
            d._probing.add(self)
        else:
            d._probing.discard(self)
        d._update_fd(self._fd)
        return timed

    # FileEvent

    def activate(self, events: FileReadyType) -> None:
        self._check_open()
        pending = self._injected
        self._injected = pending | (int(events) & _ALL)
        if not pending:
            self._activation.schedule_callback_next_iteration()

    def set_enabled(self, events: FileReadyType) -> None:
        self._check_open()
        if self._injected:  # re-registering recomputes readiness
            self._injected = 0
            self._activation.cancel()
        events = int(events) & _ALL
        if events == self._events and self._trigger is not FileTriggerType.EDGE:
            return
        self._events = events
        self._register()

    def close(self) -> None:
        if self._closed:
            return
        self._activation.close()
        _Event.close(self)
        d = self._dispatcher
        d._probing.discard(self)
        watchers = d._fd_events.get(self._fd)
        if watchers is not None:
            watchers.remove(self)
            if not watchers:
                del d._fd_events[self._fd]
        if not d._closed:
            d._update_fd(self._fd)

    # dispatcher

    def _fire(self, ready: int) -> None:
        injected = self._injected
        if injected:  # real readiness first: merge, and drop the pending injection
            self._injected = 0
            self._activation.cancel()
        edge = self._trigger is FileTriggerType.EDGE
        if edge:
            self._quiet = True
            self._read_mark = None
            self._write_blocked = False
        try:
            self._cb(FileReadyType(ready | injected))
        finally:
            if edge and self._id and self._quiet:
                self._refresh()  # what the callback left behind is the baseline for the next edge

    def _on_activation(self) -> None:
        injected = self._injected
        if injected:
            self._injected = 0
            self._cb(FileReadyType(injected))


class ReferenceSignalEvent(_Event, SignalEvent):
    """A Python-level handler (:func:`signal.signal`) that wakes the dispatcher.

    Main thread only, as :func:`signal.signal` is.  The previous handler is
    restored when the last listener of the signal closes.
    """

    __slots__ = ("_signum", "_cb")

    def __init__(self, dispatcher: ReferenceDispatcher, signum: int, cb: Callable[[], None]) -> None:
        signum = int(signum)
        if not 0 < signum < _signal.NSIG:
            raise ValueError(f"invalid signal number {signum}")
        dispatcher._check_open()
        dispatcher._install_signal_handler(signum)  # raises off the main thread
        _Event.__init__(self, dispatcher)
        self._signum = signum
        self._cb = cb
        dispatcher._signal_listeners.setdefault(signum, []).append(self)
        self._arm()

    @property
    def signum(self) -> int:
        return self._signum

    def close(self) -> None:
        if self._closed:
            return
        _Event.close(self)
        d = self._dispatcher
        listeners = d._signal_listeners[self._signum]
        listeners.remove(self)
        if not listeners:
            del d._signal_listeners[self._signum]
            d._restore_signal_handler(self._signum)

    def _fire(self, ready: int) -> None:
        self._cb()


class _WakeTarget:
    """The record of the wake-up socket: posts arrived from another thread."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: ReferenceDispatcher) -> None:
        self._dispatcher = dispatcher

    def _fire(self, ready: int) -> None:
        d = self._dispatcher
        if d._posts:
            d._post_cb.schedule_callback_current_iteration()


# The dispatcher.


class ReferenceDispatcher(Dispatcher):
    """A :class:`~pyevent_envoy.event.Dispatcher` in pure Python.

    Args:
        name: as for :class:`~pyevent_envoy.event.DispatcherImpl`.
        clock: where time comes from: a :class:`~pyevent_envoy.testing.RealClock`
            (the default) or a :class:`~pyevent_envoy.testing.SimulatedClock`.
    """

    def __init__(self, name: str = "dispatcher", *, clock: Any = None) -> None:
        self._name = name
        self._clock = clock if clock is not None else RealClock()
        self._closed = False
        self._running = False
        self._run_tid: int | None = None
        self._exit_requested = False
        self._error_handler: ErrorHandler | None = None
        self._events_created = 0
        self._events_closed = 0
        # arming id -> armed event; also what keeps enabled events alive
        self._ids = itertools.count(_WAKE_ID + 1)
        self._armed: dict[int, Any] = {_WAKE_ID: _WakeTarget(self)}
        self._internal = 1  # armed entries that do not keep RunType.BLOCK running
        self._timers: list[tuple[float, int]] = []  # heap of (deadline, arming id)
        self._current: list[tuple[ReferenceSchedulableCallback, int]] = []
        self._next: list[tuple[ReferenceSchedulableCallback, int]] = []
        self._leftover: list[tuple[int, int]] = []
        self.approximate_now = self._clock.monotonic()
        # file events
        self._selector = selectors.DefaultSelector()
        self._fd_events: dict[int, list[ReferenceFileEvent]] = {}
        self._probing: set[ReferenceFileEvent] = set()
        # wake-up: a socketpair, written from any thread (and by signal handlers)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._clock.attach(self._wake)
        # signals
        self._signal_listeners: dict[int, list[ReferenceSignalEvent]] = {}
        self._previous_handlers: dict[int, Any] = {}
        self._caught: list[int] = []
        # posts and deferred deletes, as DispatcherImpl
        self._post_lock = threading.Lock()
        self._posts: list[PostCb] = []
        self._post_cb = ReferenceSchedulableCallback(self, self._run_post_callbacks, internal=True)
        self._deferred_delete_cb = ReferenceSchedulableCallback(self, self.clear_deferred_delete_list, internal=True)
        self._to_delete_lists: tuple[list[Any], list[Any]] = ([], [])
        self._current_to_delete = self._to_delete_lists[0]
        self._deleting = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._running else "idle")
        return f"<ReferenceDispatcher {self._name!r} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise DispatcherClosedError(f"dispatcher {self._name!r} is closed")

    def _assert_thread(self, what: str) -> None:
        assert self.is_thread_safe(), f"{what}() off the dispatcher's thread"

    # Dispatcher: identity and factories

    @property
    def name(self) -> str:
        return self._name

    @property
    def clock(self) -> Any:
        return self._clock

    @property
    def closed(self) -> bool:
        return self._closed

    def create_timer(self, cb: TimerCb) -> ReferenceTimer:
        self._assert_thread("create_timer")
        return ReferenceTimer(self, cb)  # on a closed dispatcher: enable_timer() raises

    def create_schedulable_callback(self, cb: Callable[[], None]) -> ReferenceSchedulableCallback:
        self._assert_thread("create_schedulable_callback")
        return ReferenceSchedulableCallback(self, cb)  # on a closed dispatcher: scheduling raises

    def create_file_event(
        self,
        fd: FileDescriptor,
        cb: FileReadyCb,
        trigger: FileTriggerType,
        events: FileReadyType,
    ) -> ReferenceFileEvent:
        self._assert_thread("create_file_event")
        return ReferenceFileEvent(self, fd, cb, trigger, events)

    def listen_for_signal(self, signum: int, cb: Callable[[], None]) -> ReferenceSignalEvent:
        self._assert_thread("listen_for_signal")
        return ReferenceSignalEvent(self, signum, cb)

    # Dispatcher: posts

    def post(self, cb: PostCb) -> None:
        with self._post_lock:
            self._check_open()
            self._posts.append(cb)
            if len(self._posts) == 1:  # only the empty -> non-empty transition wakes
                if self._running and _get_ident() == self._run_tid:
                    self._post_cb.schedule_callback_current_iteration()
                else:
                    self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a full socket wakes the loop just as well; a closed one has no loop

    def _run_post_callbacks(self) -> None:
        # As Envoy: purge deferred deletes first, then run a snapshot FIFO.
        self.clear_deferred_delete_list()
        with self._post_lock:
            callbacks, self._posts = self._posts, []
        it = iter(callbacks)
        try:
            for cb in it:
                try:
                    cb()
                except Exception as exc:
                    self._on_callback_error(exc)
        except BaseException:
            rest = list(it)
            if rest:  # they run first next time
                with self._post_lock:
                    self._posts[:0] = rest
                self._post_cb.schedule_callback_current_iteration()
            raise

    # Dispatcher: deferred deletion

    def deferred_delete(self, obj: Any) -> None:
        self._assert_thread("deferred_delete")
        pending = getattr(obj, "delete_is_pending", None)
        if pending is not None:
            pending()
        self._current_to_delete.append(obj)
        if len(self._current_to_delete) == 1:
            self._deferred_delete_cb.schedule_callback_current_iteration()

    def clear_deferred_delete_list(self) -> None:
        to_delete = self._current_to_delete
        if self._deleting or not to_delete:
            return
        # Objects deferred while this list is released go to the other list,
        # which gets a purge of its own.
        first, second = self._to_delete_lists
        self._current_to_delete = second if to_delete is first else first
        self._deleting = True
        it = iter(to_delete)
        try:
            for obj in it:
                close = getattr(obj, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception as exc:
                        self._on_callback_error(exc)
        finally:
            rest = list(it)
            to_delete.clear()
            self._deleting = False
            if rest:  # a BaseException escaped: release the rest next time
                self._current_to_delete[:0] = rest
                self._deferred_delete_cb.schedule_callback_current_iteration()

    # Dispatcher: running

    def run(self, run_type: RunType = RunType.BLOCK) -> None:
        self._check_open()
        if self._running:
            raise RuntimeError(f"dispatcher {self._name!r} is already running")
        if not isinstance(run_type, RunType):
            raise TypeError(f"run_type must be a RunType, got {run_type!r}")
        self._running = True
        self._run_tid = _get_ident()
        try:
            self._run_post_callbacks()  # startup posts run before any other event
            self._run_loop(
                blocking=run_type is not RunType.NON_BLOCK,
                until_exit=run_type is RunType.RUN_UNTIL_EXIT,
            )
        finally:
            self._exit_requested = False
            self._running = False

    def _run_loop(self, *, blocking: bool, until_exit: bool) -> None:
        while True:
            # 0. what a BaseException kept from running last time
            if self._leftover:
                records, self._leftover = self._leftover, []
                self._run_records(records)
            # 1. poll: never wait while Python work is queued or exit is pending
            if self._current or self._next or not blocking or self._exit_requested:
                records = self._poll(wait=False)
            elif until_exit or len(self._armed) > self._internal or self._posts:
                records = self._poll(wait=True)
            else:
                return  # BLOCK with nothing left to wait for
            # 2. the approximate clock
            self.approximate_now = self._clock.monotonic()
            nxt, self._next = self._next, []
            # 3. file events (signals, wake-up), then expired timers
            try:
                self._run_records(records)
            except BaseException:
                self._next[:0] = nxt
                raise
            # 4. next-iteration work scheduled before this pass
            self._run_queue(nxt, "_next")
            # 5. the same-iteration phase, at most MAX_SAME_ITERATION_ROUNDS rounds
            rounds = MAX_SAME_ITERATION_ROUNDS
            while self._current and rounds:
                rounds -= 1
                current, self._current = self._current, []
                self._run_queue(current, "_current")
            if not blocking or self._exit_requested:
                return

    def _poll(self, *, wait: bool) -> list[tuple[int, int]]:
        """Poll the selector; return the pass's records: file events, signals, then expired timers."""
        clock = self._clock
        timed_probe = False
        for event in list(self._probing):
            timed_probe = event._refresh() or timed_probe
        deadline = self._earliest_deadline()
        jump = False
        if not wait:
            timeout: float | None = 0.0
        elif deadline is None:
            timeout = None
        elif deadline <= clock.monotonic():
            timeout = 0.0
        elif not clock.simulated:
            timeout = deadline - clock.monotonic()
        elif clock.autojump:
            timeout, jump = 0.0, True
        else:
            timeout = None  # SimulatedClock.advance() wakes the poll
        if timed_probe and (timeout is None or timeout > PROBE_INTERVAL):
            timeout = PROBE_INTERVAL
        records: list[tuple[int, int]] = []
        for key, polled in self._selector.select(timeout):
            if key.data is None:  # the wake-up socket
                try:
                    while self._wake_r.recv(4096):
                        pass  # the bytes only wake the loop
                except OSError:
                    pass
                records.append((_WAKE_ID, 0))
                continue
            for event in list(key.data):
                if event._id:
                    ready = event._readiness(polled)
                    if ready:
                        records.append((event._id, ready))
        caught = self._caught
        if caught:  # a handler may append to this list until it is swapped
            self._caught = []
            for signum in caught:
                for listener in self._signal_listeners.get(signum, ()):
                    records.append((listener._id, _TIMEOUT))
        if jump and not records and deadline is not None:
            clock.jump_to(deadline)
        now = clock.monotonic()
        timers, armed = self._timers, self._armed
        while timers and timers[0][0] <= now:
            _deadline, rid = heapq.heappop(timers)
            if rid in armed:
                records.append((rid, _TIMEOUT))
        return records

    def _earliest_deadline(self) -> float | None:
        timers, armed = self._timers, self._armed
        while timers and timers[0][1] not in armed:
            heapq.heappop(timers)  # disabled or re-armed since
        if len(timers) > 64 and len(timers) > 2 * len(armed):
            self._timers = timers = [entry for entry in timers if entry[1] in armed]
            heapq.heapify(timers)
        return timers[0][0] if timers else None

    def _run_records(self, records: list[tuple[int, int]]) -> None:
        armed_get = self._armed.get
        it = iter(records)
        try:
            for rid, ready in it:
                event = armed_get(rid)
                if event is not None:  # else disabled, re-armed or closed meanwhile
                    try:
                        event._fire(ready)
                    except Exception as exc:
                        self._on_callback_error(exc)
        except BaseException:
            self._leftover = list(it) + self._leftover
            raise

    def _run_queue(self, queue: list, name: str) -> None:
        it = iter(queue)
        try:
            for cb, token in it:
                if cb._token == token:  # else cancelled or re-scheduled since
                    cb._scheduled = cb._IDLE
                    try:
                        cb._cb()
                    except Exception as exc:
                        self._on_callback_error(exc)
        except BaseException:
            setattr(self, name, list(it) + getattr(self, name))
            raise

    def exit(self) -> None:
        self._exit_requested = True
        if self._running and _get_ident() == self._run_tid:
            return  # checked after the current pass
        with self._post_lock:
            if not self._closed:
                self._wake()

    def is_thread_safe(self) -> bool:
        tid = self._run_tid
        return tid is None or tid == _get_ident()

    # Dispatcher: time and errors

    def approximate_monotonic_time(self) -> float:
        return self.approximate_now

    def update_approximate_monotonic_time(self) -> None:
        self.approximate_now = self._clock.monotonic()

    def set_error_handler(self, fn: ErrorHandler | None) -> None:
        self._error_handler = fn

    def _on_callback_error(self, exc: BaseException) -> None:
        handler = self._error_handler
        if handler is None:
            _log.error("unhandled exception in a callback on dispatcher %r", self._name, exc_info=exc)
        else:
            handler(exc)

    # the selector and signals

    def _update_fd(self, fd: int) -> None:
        mask = 0
        for event in self._fd_events.get(fd, ()):
            mask |= event._selector_mask()
        selector = self._selector
        try:
            key = selector.get_key(fd)
        except KeyError:
            key = None
        if key is None:
            if mask:
                selector.register(fd, mask, self._fd_events[fd])
        elif not mask:
            selector.unregister(fd)
        elif key.events != mask:
            try:
                selector.modify(fd, mask, self._fd_events[fd])
            except OSError:  # the descriptor was closed and its number reused
                selector.unregister(fd)
                selector.register(fd, mask, self._fd_events[fd])

    def _install_signal_handler(self, signum: int) -> None:
        if signum not in self._previous_handlers:
            self._previous_handlers[signum] = _signal.signal(signum, self._on_signal)

    def _restore_signal_handler(self, signum: int) -> None:
        previous = self._previous_handlers.pop(signum)
        _signal.signal(signum, previous if previous is not None else _signal.SIG_DFL)

    def _on_signal(self, signum: int, frame: object) -> None:
        # Runs on the main thread between two bytecodes: no locks here.
        self._caught.append(signum)
        self._wake()

    # Dispatcher: lifetime

    def statistics(self) -> DispatcherStatistics:
        """Counts of events, posts and deferred deletes, as :meth:`DispatcherImpl.statistics`."""
        return DispatcherStatistics(
            events_created=self._events_created,
            events_closed=self._events_closed,
            events_live=self._events_created - self._events_closed,
            events_armed=0 if self._closed else len(self._armed) - self._internal,
            posts_pending=len(self._posts),
            deferred_deletes_pending=len(self._current_to_delete),
        )

    def close(self) -> None:
        if self._closed:
            return
        if self._running:
            raise RuntimeError(f"dispatcher {self._name!r} cannot close while it runs")
        # Deferred objects may own events; release them (and what they defer) first.
        while self._current_to_delete:
            self.clear_deferred_delete_list()
        with self._post_lock:  # from here on, post() and exit() from other threads see it closed
            self._closed = True
            dropped, self._posts = len(self._posts), []
        if dropped:
            warnings.warn(
                f"dispatcher {self._name!r} closed with {dropped} posted callback(s) not run",
                ResourceWarning,
                stacklevel=2,
            )
        self._post_cb.close()
        self._deferred_delete_cb.close()
        leftovers = [event for event in self._armed.values() if isinstance(event, _Event) and not event._internal]
        for event in leftovers:
            event.close()
            warnings.warn(
                f"{type(event).__name__} still enabled when dispatcher {self._name!r} closed; closed it",
                ResourceWarning,
                stacklevel=2,
            )
        for cb, _token in self._current + self._next:
            cb.cancel()
        self._current.clear()
        self._next.clear()
        self._leftover.clear()
        self._armed.clear()
        self._timers.clear()
        self._probing.clear()
        self._clock.detach(self._wake)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
