"""OwnedBuffer and WatermarkBuffer."""

from pyevent_envoy.network import OwnedBuffer, WatermarkBuffer


def test_owned_buffer_add_take_drain_move():
    buffer = OwnedBuffer(b"ab")
    buffer.add(b"cd")
    buffer.prepend(b"_")
    assert len(buffer) == 5 and buffer.peek() == b"_abcd"
    buffer.drain(2)
    assert buffer.peek() == b"bcd"
    other = OwnedBuffer(b"ef")
    buffer.move(other)
    assert len(other) == 0 and not other
    assert buffer.take() == b"bcdef"
    assert len(buffer) == 0 and buffer.take() == b""


def test_owned_buffer_drain_across_chunks():
    buffer = OwnedBuffer()
    for part in (b"abc", b"def", b"ghi"):
        buffer.add(part)
    buffer.drain(4)
    assert buffer.take() == b"efghi"
    buffer.add(b"xyz")
    buffer.drain(100)
    assert len(buffer) == 0


def test_watermark_buffer_fires_high_then_low_once_each():
    calls = []
    buffer = WatermarkBuffer(lambda: calls.append("low"), lambda: calls.append("high"))
    buffer.set_watermarks(10)
    buffer.add(b"x" * 10)
    assert calls == []  # at the watermark is not above it
    buffer.add(b"x")
    buffer.add(b"x" * 100)
    assert calls == ["high"] and buffer.above_high_watermark
    buffer.drain(100)
    assert calls == ["high"]  # 11 bytes: still above low (5)
    buffer.drain(6)
    assert calls == ["high", "low"] and not buffer.above_high_watermark


def test_watermark_buffer_disabled_with_zero():
    calls = []
    buffer = WatermarkBuffer(lambda: calls.append("low"), lambda: calls.append("high"))
    buffer.add(b"x" * 1000)
    assert calls == []
    buffer.set_watermarks(10)
    assert calls == ["high"]
    buffer.set_watermarks(0)
    assert calls == ["high", "low"]


# The buffers are a C type (csrc/buffer_module.c).  This state machine runs
# random operations on one against a plain-Python model of the documented
# behaviour and checks every observable after each step: the bytes, the
# length, the chunk list the network layer reads, the watermark state and
# the order of the callbacks.

from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402


class _ModelBuffer:
    def __init__(self, events, name):
        self.data = b""
        self.high = self.low = 0
        self.above = False
        self.events = events
        self.name = name

    def changed(self):
        if not self.high:
            if self.above:
                self.above = False
                self.events.append((self.name, "low"))
            return
        if not self.above:
            if len(self.data) > self.high:
                self.above = True
                self.events.append((self.name, "high"))
        elif len(self.data) <= self.low:
            self.above = False
            self.events.append((self.name, "low"))


CHUNKS = st.one_of(st.binary(max_size=12), st.binary(max_size=12).map(bytearray), st.binary(max_size=12).map(memoryview))


class BufferMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.events = []
        self.model_events = []
        self.real = {}
        self.model = {}
        for name in ("a", "b"):
            self.real[name] = WatermarkBuffer(
                lambda name=name: self.events.append((name, "low")), lambda name=name: self.events.append((name, "high"))
            )
            self.model[name] = _ModelBuffer(self.model_events, name)

    names = st.sampled_from(["a", "b"])

    @rule(name=names, data=CHUNKS)
    def add(self, name, data):
        self.real[name].add(data)
        model = self.model[name]
        if len(data):
            model.data += bytes(data)
            if model.high and not model.above and len(model.data) > model.high:
                model.above = True
                self.model_events.append((name, "high"))

    @rule(name=names, data=CHUNKS)
    def prepend(self, name, data):
        self.real[name].prepend(data)
        model = self.model[name]
        if len(data):
            model.data = bytes(data) + model.data
            model.changed()

    @rule(name=names, size=st.integers(min_value=0, max_value=40))
    def drain(self, name, size):
        self.real[name].drain(size)
        model = self.model[name]
        model.data = model.data[size:]
        model.changed()

    @rule(name=names)
    def take(self, name):
        got = self.real[name].take()
        model = self.model[name]
        assert bytes(got) == model.data
        if model.data:
            model.data = b""
            model.changed()

    @rule(name=names)
    def peek(self, name):
        got = self.real[name].peek()
        assert bytes(got) == self.model[name].data
        assert len(self.real[name]._chunks) <= 1  # peek leaves one chunk

    @rule(source=names, into=names)
    def move(self, source, into):
        self.real[into].move(self.real[source])
        src, dst = self.model[source], self.model[into]
        if source != into and src.data:
            dst.data += src.data
            src.data = b""
            src.changed()
            dst.changed()

    @rule(name=names, high=st.integers(min_value=0, max_value=30))
    def set_watermarks(self, name, high):
        self.real[name].set_watermarks(high)
        model = self.model[name]
        model.high, model.low = high, high // 2
        model.changed()

    @invariant()
    def same_as_the_model(self):
        assert self.events == self.model_events
        for name, real in self.real.items():
            model = self.model[name]
            assert b"".join(bytes(c) for c in real._chunks) == model.data
            assert real._length == len(real) == len(model.data)
            assert bool(real) == bool(model.data)
            assert real._above is model.above is real.above_high_watermark
            assert all(len(c) for c in real._chunks)  # no empty chunk is ever kept


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_buffer_errors_and_repr():
    import pytest

    buffer = OwnedBuffer(b"abc")
    assert repr(buffer) == "<OwnedBuffer 3 bytes>"
    with pytest.raises(ValueError):
        buffer.drain(-1)
    with pytest.raises(TypeError):
        buffer.move(b"not a buffer")
    with pytest.raises(TypeError):
        buffer.add(42)  # no len()
    with pytest.raises(AttributeError):
        buffer._length = 0  # read-only: only the methods change a buffer
    assert buffer.take() == b"abc"


def test_a_callback_that_raises_leaves_the_buffer_consistent():
    import pytest

    def boom():
        raise RuntimeError("callback")

    buffer = WatermarkBuffer(boom, boom)
    buffer.set_watermarks(4)
    with pytest.raises(RuntimeError):
        buffer.add(b"12345")
    # The bytes went in and the crossing was recorded before the callback ran.
    assert buffer.peek() == b"12345" and buffer.above_high_watermark
    with pytest.raises(RuntimeError):
        buffer.drain(5)
    assert len(buffer) == 0 and not buffer.above_high_watermark
