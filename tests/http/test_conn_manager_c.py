"""The connection manager's C bookkeeping against the Python it mirrors.

``ConnectionManagerImpl.new_stream`` is C (``csrc/conn_manager_module.c``):
for one filter factory, no request timeout and no head pending it makes the
stream itself, as ``ActiveStream.__init__`` does; otherwise it calls
``_new_stream_general``.  These tests open streams both ways on the same
connection manager and compare every field of the stream and of its
``StreamInfo``, the filters they made, the stats and the connection's timer;
and they check that ``destroy`` and ``_on_stream_done`` end a stream as the
connection manager's own callers expect.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyevent_envoy.event.dispatcher_impl import DispatcherImpl
from pyevent_envoy.http.codec.http1 import ResponseEncoderImpl
from pyevent_envoy.http.conn_manager_impl import ActiveStream, ConnectionManagerConfig, ConnectionManagerImpl
from pyevent_envoy.http.filter import StreamDecoderFilter, StreamEncoderFilter
from pyevent_envoy.http.router.router import RouterFilter
from pyevent_envoy.http.stream_info import StreamInfo
from pyevent_envoy.network.connection import ConnectionState
from pyevent_envoy.network.connection_impl import ServerConnectionImpl
from pyevent_envoy.testing.helpers import drain_socket, run_nonblock, socketpair_nonblocking

pytestmark = pytest.mark.timeout(60)


class EncoderOnly(StreamEncoderFilter):
    __slots__ = ("stream", "encoder_callbacks")

    def __init__(self, stream):
        self.stream = stream


class DecoderOnly(StreamDecoderFilter):
    __slots__ = ("stream", "decoder_callbacks")

    def __init__(self, stream):
        self.stream = stream


@pytest.fixture
def dispatcher():
    dispatcher = DispatcherImpl("conn_manager_c")
    yield dispatcher
    dispatcher.close()


def manager_on(dispatcher, sockets, **config):
    """A connection manager on a real connection, as a listener sets one up."""
    ours, theirs = socketpair_nonblocking()
    sockets.extend((ours, theirs))
    connection = ServerConnectionImpl(dispatcher, ours.detach(), None, None)
    manager = ConnectionManagerImpl(
        ConnectionManagerConfig(stat_prefix="t", route_table=None, filter_factories=config.pop("factories", (RouterFilter,)), **config),
        dispatcher,
        None,
        random.Random(1),
    )
    connection.add_read_filter(manager)
    connection.initialize_read_filters()
    return manager


def fields(obj, skip=()):
    """Every slot of obj by name (unset ones as a marker)."""
    names = set()
    for cls in type(obj).__mro__:
        names.update(name for name, value in vars(cls).items() if type(value).__name__ == "member_descriptor")
    return {name: getattr(obj, name, "<unset>") for name in sorted(names - set(skip))}


def stat_values(stats):
    """The counters and gauges, and each histogram's counts."""
    values = {name: getattr(stats, name) for name in type(stats).COUNTERS + type(stats).GAUGES}
    values.update((name, list(getattr(stats, name).counts)) for name in type(stats).HISTOGRAMS)
    return values


def comparable(stream):
    info = stream.stream_info
    state = fields(stream, skip=("stream_info", "_decoder_filters", "_encoder_filters", "_encoder", "_last_activity"))
    info_state = fields(info, skip=("start_time", "start_monotonic"))
    chains = [
        [(type(f).__name__, f.stream is stream) for f in stream._decoder_filters],
        [(type(f).__name__, f.stream is stream) for f in stream._encoder_filters],
    ]
    callbacks = [getattr(f, "decoder_callbacks", None) is stream for f in stream._decoder_filters] + [
        getattr(f, "encoder_callbacks", None) is stream for f in stream._encoder_filters
    ]
    return state, info_state, chains, callbacks, stream._last_activity == info.start_monotonic


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"stream_idle_timeout": 0.0},
        {"idle_timeout": 0.0},
        {"factories": (EncoderOnly,)},
        {"factories": (DecoderOnly,)},
        {"factories": (DecoderOnly, RouterFilter)},  # two filters: the general path
        {"request_timeout": 5.0},  # a request timeout: the general path
    ],
)
@pytest.mark.parametrize("upgrade", [False, True])
def test_new_stream_makes_the_stream_the_general_path_makes(dispatcher, config, upgrade):
    sockets = []
    try:
        one = manager_on(dispatcher, sockets, **config)
        other = manager_on(dispatcher, sockets, **config)
        encoders = [ResponseEncoderImpl(m.codec, "HTTP/1.1", True, upgrade=upgrade) for m in (one, other)]
        fast = one.new_stream(encoders[0])
        general = other._new_stream_general(encoders[1])
        assert type(fast) is ActiveStream and type(fast.stream_info) is StreamInfo
        assert fast._encoder is encoders[0] and general._encoder is encoders[1]
        assert one.streams == [fast] and other.streams == [general]
        fast_state, general_state = comparable(fast), comparable(general)
        # The fields that name the connection manager or what is its own differ by identity only.
        for state, manager in ((fast_state, one), (general_state, other)):
            assert state[0].pop("_manager") is manager
            assert state[0].pop("connection") is manager.connection
            assert state[0].pop("stats") is manager.stats
            assert state[0].pop("config") is manager.config
            assert state[1].pop("connection_id") == manager.connection.id
            timer = state[0].pop("_request_timer")
            state[0]["_request_timer enabled"] = timer is not None and timer.enabled()
        assert fast_state == general_state
        assert fast.stream_info.start_monotonic == dispatcher.approximate_now
        assert abs(fast.stream_info.start_time - general.stream_info.start_time) < 60
        assert stat_values(one.stats) == stat_values(other.stats)
        assert (one._timer_deadline, one._idle_since) == (other._timer_deadline, other._idle_since)
        for manager, stream in ((one, fast), (other, general)):
            stream.destroy()
            stream.destroy()  # once only
            assert stream._destroyed and stream._decoder_filters == () and stream._encoder_filters == ()
            assert manager.stats.downstream_rq_active == 0
            assert stream.stream_info.end_monotonic == dispatcher.approximate_now
        assert stat_values(one.stats) == stat_values(other.stats)
    finally:
        for sock in sockets:
            sock.close()


def test_a_pending_head_takes_the_general_path(dispatcher):
    sockets = []
    try:
        manager = manager_on(dispatcher, sockets)
        start = manager._head_started = dispatcher.approximate_now - 1.0
        stream = manager.new_stream(ResponseEncoderImpl(manager.codec, "HTTP/1.1", True))
        # The stream began with the head's first byte (_begin_at_head).
        assert stream.stream_info.start_monotonic == stream._last_activity == start
        assert manager._head_started is None and manager.streams == [stream]
    finally:
        for sock in sockets:
            sock.close()


def test_on_stream_done_destroys_and_closes_as_asked(dispatcher):
    sockets = []
    try:
        manager = manager_on(dispatcher, sockets, idle_timeout=30.0)
        stream = manager.new_stream(ResponseEncoderImpl(manager.codec, "HTTP/1.1", True))
        # A stream that ends before its request did is a reset, as Envoy counts it.
        manager._on_stream_done(stream)
        assert stream._destroyed and manager.streams == []
        assert manager.stats.downstream_rq_rx_reset == 1
        assert manager._idle_since == dispatcher.approximate_now
        manager._on_stream_done(stream)  # already destroyed: nothing more
        assert manager.stats.downstream_rq_rx_reset == 1
        # A stream not in the list (a protocol error's reply) is fine too.
        other = manager._new_stream_general(ResponseEncoderImpl(manager.codec, "HTTP/1.1", True))
        manager.streams.clear()
        other.request_complete = True
        manager._close_after_response = True
        manager._on_stream_done(other)
        assert other._destroyed and manager.connection.state is ConnectionState.CLOSING
        with pytest.raises(TypeError):
            manager._on_stream_done(object())
    finally:
        for sock in sockets:
            sock.close()


# The stream's C methods and the general methods each hands its declined cases to.
GENERAL_METHODS = [
    (ConnectionManagerImpl, "new_stream", "_new_stream_general"),
    (ActiveStream, "decode_headers", "_decode_headers_general"),
    (ActiveStream, "encode_headers", "_encode_headers_general"),
]


def exchange(dispatcher, request, general, **config):
    """What the client reads back for ``request`` (the date field left out), and the stats after it."""
    sockets = []
    methods = [(cls, name, vars(cls)[name]) for cls, name, _ in GENERAL_METHODS]
    if general:
        for cls, name, other in GENERAL_METHODS:
            setattr(cls, name, getattr(cls, other))
    try:
        manager = manager_on(dispatcher, sockets, **config)
        manager.connection.read_disable(True)  # the request is handed over below, not read
        manager.codec.dispatch(request)
        run_nonblock(dispatcher, 3)
        reply = drain_socket(sockets[1])
        lines = [line for line in reply.split(b"\r\n") if not line.lower().startswith(b"date:")]
        streams = [(s.request_complete, s.response_complete, s._destroyed) for s in manager.streams]
        return lines, stat_values(manager.stats), streams, manager.connection.state
    finally:
        for cls, name, method in methods:
            setattr(cls, name, method)
        for sock in sockets:
            sock.close()


REQUEST_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["x-a", "x-request-id", "x-forwarded-proto", "x-envoy-internal", "x-envoy-retry-on", "connection", "expect"]),
        st.sampled_from(["1", "abc", "https", "true", "close", "100-continue", "keep-alive"]),
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["GET", "HEAD", "DELETE"]),
    REQUEST_FIELDS,
    st.sampled_from([{}, {"server_name": ""}, {"generate_request_id": False}, {"use_remote_address": True}]),
)
def test_requests_are_answered_as_the_general_path_answers(method, fields, config):
    # The router with no route table answers 404 from the proxy itself: the
    # request's headers go through decode_headers, the reply's through encode_headers.
    request = f"{method} /p HTTP/1.1\r\nhost: h\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"
    dispatcher = DispatcherImpl("conn_manager_c_exchange")
    try:
        fast = exchange(dispatcher, request.encode(), False, **config)
        general = exchange(dispatcher, request.encode(), True, **config)
    finally:
        dispatcher.close()
    assert fast == general
    assert fast[0][0].startswith(b"HTTP/1.1 ")
