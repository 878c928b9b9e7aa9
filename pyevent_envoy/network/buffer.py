"""Byte buffers (Envoy's ``Buffer::OwnedImpl`` and ``WatermarkBuffer``).

A buffer is a list of ``bytes`` chunks plus a running length: adding never
copies, draining copies only the chunk it cuts.  ``WatermarkBuffer`` calls
``on_high`` when its length rises above the high watermark and ``on_low``
when it falls back to the low one, which is how flow control pauses and
resumes the connection feeding it.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["OwnedBuffer", "WatermarkBuffer"]


class OwnedBuffer:
    """An append-only queue of bytes with cheap length and drain."""

    __slots__ = ("_chunks", "_length")

    def __init__(self, data: bytes = b"") -> None:
        self._chunks: list[bytes] = [data] if data else []
        self._length = len(data)

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length != 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._length} bytes>"

    def add(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._length += len(data)
            self._changed()

    def prepend(self, data: bytes) -> None:
        if data:
            self._chunks.insert(0, data)
            self._length += len(data)
            self._changed()

    def move(self, other: "OwnedBuffer") -> None:
        """Append all of ``other``'s bytes and empty it."""
        if other._length:
            self._chunks.extend(other._chunks)
            self._length += other._length
            other._chunks = []
            other._length = 0
            other._changed()
            self._changed()

    def take(self) -> bytes:
        """Remove and return everything."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._length = 0
        self._changed()
        return data

    def peek(self) -> bytes:
        """Everything, without removing it (joins the chunks into one)."""
        chunks = self._chunks
        if len(chunks) > 1:
            self._chunks = chunks = [b"".join(chunks)]
        return chunks[0] if chunks else b""

    def drain(self, size: int) -> None:
        """Remove the first ``size`` bytes."""
        if size >= self._length:
            self._chunks = []
            self._length = 0
        else:
            chunks = self._chunks
            remaining = size
            while remaining:
                head = chunks[0]
                if len(head) <= remaining:
                    remaining -= len(head)
                    del chunks[0]
                else:
                    chunks[0] = head[remaining:]
                    remaining = 0
            self._length -= size
        self._changed()

    def _changed(self) -> None:
        """Hook for WatermarkBuffer."""


class WatermarkBuffer(OwnedBuffer):
    """An :class:`OwnedBuffer` that reports crossing its watermarks.

    ``on_high()`` runs when the length goes above ``high``; ``on_low()`` when
    it then drops to ``low`` or below.  A ``high`` of 0 disables both.
    """

    __slots__ = ("_high", "_low", "_above", "_on_high", "_on_low")

    def __init__(self, on_low: Callable[[], None], on_high: Callable[[], None]) -> None:
        super().__init__()
        self._high = 0
        self._low = 0
        self._above = False
        self._on_high = on_high
        self._on_low = on_low

    def set_watermarks(self, high: int) -> None:
        """Envoy's rule: low is half of high."""
        self._high = high
        self._low = high // 2
        self._changed()

    @property
    def above_high_watermark(self) -> bool:
        return self._above

    # add, take and drain run for every read and write: the watermark checks
    # are inlined (a call to _changed() costs more than the check).

    def add(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._length += len(data)
            if not self._above and self._high and self._length > self._high:
                self._above = True
                self._on_high()

    def take(self) -> bytes:
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._length = 0
        if self._above:
            self._above = False
            self._on_low()
        return data

    def drain(self, size: int) -> None:
        if size >= self._length:
            self._chunks = []
            self._length = 0
            if self._above:
                self._above = False
                self._on_low()
        else:
            OwnedBuffer.drain(self, size)

    def _changed(self) -> None:
        high = self._high
        if not high:
            if self._above:
                self._above = False
                self._on_low()
            return
        if not self._above:
            if self._length > high:
                self._above = True
                self._on_high()
        elif self._length <= self._low:
            self._above = False
            self._on_low()
