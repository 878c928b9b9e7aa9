"""glibc malloc settings for a proxy process.

A proxied body passes through short-lived allocations of up to 64 KiB (one
per read, sometimes a join).  With glibc's defaults, freeing them leaves more
than 128 KiB free at the top of a heap, which glibc hands back to the kernel,
and the next request faults the same pages in again: measured here, about a
third of the CPU of proxying 64 KiB responses.  :func:`tune_malloc` keeps up
to :data:`TRIM_THRESHOLD` free bytes per heap and serves allocations below
:data:`MMAP_THRESHOLD` from the heap, which stops the churn for a bounded
amount of retained memory.

The ``pyevent-envoy`` command applies it at start.  A program that embeds the
dispatcher or the proxy decides for itself: malloc settings are process-wide.
"""

from __future__ import annotations

from pyevent_envoy.event.libevent import lib

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_malloc"]

#: Free bytes a heap keeps instead of returning them to the kernel.
TRIM_THRESHOLD = 8 * 1024 * 1024
#: Allocations at least this large get their own mapping (glibc's default
#: starts at 128 KiB and moves; fixing it keeps body-sized blocks in the heap).
MMAP_THRESHOLD = 1024 * 1024


def tune_malloc(trim_threshold: int = TRIM_THRESHOLD, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Apply the thresholds with ``mallopt``; False where the C library is not glibc."""
    return bool(lib.pe_tune_malloc(trim_threshold, mmap_threshold))
