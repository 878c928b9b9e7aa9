"""Byte buffers (Envoy's ``Buffer::OwnedImpl`` and ``WatermarkBuffer``).

A buffer is a list of ``bytes`` chunks plus a running length: adding never
copies, draining copies only the chunk it cuts.  ``WatermarkBuffer`` calls
``on_high`` when its length rises above the high watermark and ``on_low``
when it falls back to the low one, which is how flow control pauses and
resumes the connection feeding it.

The methods are in C (``csrc/buffer_module.c``, the base type ``Buffer``):
a proxied request uses its connections' buffers about a dozen times, and
each was a Python frame.  Two attributes are part of the network layer's
internal contract and are read directly on the hot path: ``_length`` (the
total length, an int) and ``_chunks`` (the list of chunks, oldest first,
which a gathered write sends as it is); ``_above`` says whether the buffer
is above its high watermark.  All three are read-only.
"""

from __future__ import annotations

from typing import Callable

from pyevent_envoy._buffer import Buffer

__all__ = ["OwnedBuffer", "WatermarkBuffer"]


class OwnedBuffer(Buffer):
    """An append-only queue of bytes with cheap length and drain.

    ``OwnedBuffer(data=b"")``.  Methods:

    - ``add(data)``: append ``data`` (no copy); ``prepend(data)``: put it first.
    - ``move(other)``: append all of ``other``'s bytes and empty it.
    - ``take()``: remove and return everything, as one bytes.
    - ``peek()``: everything, without removing it (joins the chunks into one).
    - ``drain(size)``: remove the first ``size`` bytes.
    - ``len(buffer)``, ``bool(buffer)``.
    """

    __slots__ = ()


class WatermarkBuffer(OwnedBuffer):
    """An :class:`OwnedBuffer` that reports crossing its watermarks.

    ``on_high()`` runs when the length goes above ``high``; ``on_low()`` when
    it then drops to ``low`` or below; each once per crossing, after the
    buffer's own state changed.  ``set_watermarks(high)`` sets them (Envoy's
    rule: low is half of high); a ``high`` of 0, the start, disables both.
    ``above_high_watermark`` says which side the buffer is on.
    """

    __slots__ = ()

    def __init__(self, on_low: Callable[[], None], on_high: Callable[[], None]) -> None:
        super().__init__(on_low=on_low, on_high=on_high)
