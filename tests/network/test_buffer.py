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
