"""Envoy's histograms: recorded per worker without locks, merged on the main thread at each stats flush.

Envoy records a histogram value into the recording thread's own histogram
and, at each stats flush (``stats_flush_interval``, 5 s by default), merges
every thread's values into one *parent* histogram, which keeps two sets of
statistics: the *interval* ones (the values recorded since the previous
flush) and the *cumulative* ones (every value so far).  The admin shows the
parent as of the last flush: a value recorded since is not visible yet, and a
histogram no flush has seen a value for is ``No recorded values``.

Here the same split holds:

- :class:`HistogramRecorder` is one thread's share of one histogram: a count
  per bin, kept in C.  Only its owner thread writes it (one C call per
  value: a binary search for the bin and an increment); nothing else ever
  writes it, so it needs no lock.
- :class:`ParentHistogram` is the merged histogram.  A flush (see
  :meth:`StatsStore.merge_histograms
  <pyevent_envoy.stats.store.StatsStore.merge_histograms>`) copies every
  recorder's counts (one C-level copy into a list, atomic under the GIL) and
  subtracts the copy it took at the previous flush: what is left are the
  interval's values.  The recorders are never reset, so a value a worker
  records while the flush reads is counted in this interval or the next,
  never lost and never twice.

Bins and precision.  Envoy uses circllhist: log-linear bins with two
significant decimal digits.  The bins here are the same: every decade from
0.1 up to 10^12 is cut into 90 bins of equal width (``[1.0, 1.1)``,
``[1.1, 1.2)`` ... ``[9.9, 10)``, ``[10, 11)`` ... ``[990, 1000)``...);
values below 0.1 fall in a bin of their own that stands for 0, values from
10^12 up in an overflow bin.  A bin's width is at most a tenth of its lower
edge, so:

- a quantile is the estimate of the sample of that rank (nearest rank: the
  ``ceil(q * count)``-th smallest) inside its bin, the bin's samples taken
  as spread evenly across it (a bin holding one sample gives its midpoint,
  as Envoy's does).  It lies in the same bin as the true sample, so its
  error is below one bin width: under 10 % of the value at the bottom of a
  decade, under 1 % at its top; below 0.1 for values under 10, below 1 for
  values under 100.  Whole milliseconds below 10 come out as ``v.05``
  (``1.05`` for 1 ms), as in Envoy.
- the sum (Prometheus ``_sum``) is Envoy's approximation too: each bin's
  count times its midpoint.
- a Prometheus bucket ``le`` counts the bins whose lower edge is at most
  ``le``.  Every default bucket bound is a bin edge, so the count is exact
  except for values less than one bin width above the bound (a 101 ms value
  counts as ``le="100"``: it shares the bin ``[100, 110)`` with 100).

Memory: a recorder's counts (1,172 bins of 8 bytes, about 9 KB) are allocated on
the first recorded value, so histograms that never see a value cost a few
dozen bytes.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Optional, Sequence

from pyevent_envoy._stats import Recorder, set_upper_edges

__all__ = [
    "DEFAULT_BUCKETS",
    "NUM_BINS",
    "SUPPORTED_QUANTILES",
    "SUPPORTED_QUANTILE_LABELS",
    "HistogramRecorder",
    "HistogramStatistics",
    "ParentHistogram",
    "bin_bounds",
    "bin_index",
    "format_number",
]

#: Envoy's quantiles, as fractions (shown as P0, P25 ... P100).
SUPPORTED_QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0)
#: Envoy's default Prometheus histogram buckets (``stats_config.histogram_bucket_settings`` unset).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)

_FIRST_DECADE = -1  # 10^-1: the lowest value told apart from 0
_LAST_DECADE = 11  # the last decade with bins: [10^11, 10^12)


def _edges() -> list[float]:
    """The lower edges of the log-linear bins, ascending (each correctly rounded)."""
    edges = []
    for exponent in range(_FIRST_DECADE, _LAST_DECADE + 1):
        for mantissa in range(10, 100):
            # m * 10^(e-1): divide for negative powers so that 0.11 is the double nearest 0.11.
            power = exponent - 1
            edges.append(mantissa * 10.0**power if power >= 0 else mantissa / 10.0**-power)
    edges.append(10.0 ** (_LAST_DECADE + 1))  # where the overflow bin starts
    return edges


#: ``_UPPER[i]`` is bin i's exclusive upper edge: bin 0 is below 0.1, the
#: last bin (index ``len(_UPPER)``) holds everything from 10^12 up.
_UPPER: tuple[float, ...] = tuple(_edges())
set_upper_edges(_UPPER)  # the recorders' C bins use exactly these edges
NUM_BINS = len(_UPPER) + 1
#: Bin i covers ``[_LOWER[i], _UPPER[i])``; bin 0 stands for 0.
_LOWER: tuple[float, ...] = (0.0,) + _UPPER
#: What a bin's samples are taken to be worth: its midpoint (0 for bin 0, the edge for the overflow bin).
_MIDPOINT: tuple[float, ...] = (0.0,) + tuple((lo + hi) / 2 for lo, hi in zip(_UPPER, _UPPER[1:])) + (_UPPER[-1],)
_WIDTH: tuple[float, ...] = (0.0,) + tuple(hi - lo for lo, hi in zip(_UPPER, _UPPER[1:])) + (0.0,)
#: For each default bucket, how many leading bins have a lower edge <= the bound.
_BUCKET_BINS: tuple[int, ...] = tuple(bisect_right(_LOWER, bound) for bound in DEFAULT_BUCKETS)


def bin_index(value: float) -> int:
    """The bin ``value`` is counted in (0 for anything below 0.1, negative values included)."""
    return bisect_right(_UPPER, value)


def bin_bounds(index: int) -> tuple[float, float]:
    """``(lower, upper)`` edges of bin ``index`` (bin 0 is ``(0, 0.1)``; the last is ``(10^12, inf)``)."""
    if not 0 <= index < NUM_BINS:
        raise IndexError(f"bin {index} out of range(0, {NUM_BINS})")
    upper = _UPPER[index] if index < len(_UPPER) else math.inf
    return _LOWER[index], upper


class HistogramRecorder(Recorder):
    """One thread's share of one histogram (Envoy's ``ThreadLocalHistogramImpl``).

    Written by its owner thread only (:meth:`record`, :meth:`record_duration`);
    read by the stats flush on the main thread through :attr:`counts`.  The
    bins are counted in C (``csrc/stats_module.c``): a value is one call, a
    binary search over the edges and one increment, where a Python method
    with :func:`bisect.bisect_right` over Python floats cost about as much
    as the rest of a request's stats together.

    - ``record(value)``: count ``value`` (a real number, >= 0, in the
      histogram's unit) in bin :func:`bin_index` ``(value)``.
    - ``record_duration(seconds)``: count a duration as Envoy's timespans
      do, in whole milliseconds rounded down.
    - ``counts``: a new list of ``NUM_BINS`` ints, cumulative since the
      recorder was made (never reset); ``[]`` before the first value, when
      the recorder is also false.  Made while the GIL is held, so each
      read is a consistent view.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<HistogramRecorder {sum(self.counts)} values>"


class HistogramStatistics:
    """Envoy's ``HistogramStatisticsImpl`` of one set of bin counts: quantiles, buckets, count and sum.

    Attributes:
        computed_quantiles: one value per :data:`SUPPORTED_QUANTILES`; NaN
            when there is no sample (Envoy's text shows ``nan``, its JSON
            ``null``).
        computed_buckets: per :data:`DEFAULT_BUCKETS`, the samples at most
            that bound (cumulative, as Prometheus wants them).
        sample_count: the number of samples.
        sample_sum: the sum, each sample taken as its bin's midpoint.
    """

    __slots__ = ("computed_quantiles", "computed_buckets", "sample_count", "sample_sum")

    def __init__(self, counts: Optional[Sequence[int]] = None) -> None:
        """``counts``: a count per bin (``NUM_BINS`` of them), or None or empty for no sample."""
        occupied = [(i, c) for i, c in enumerate(counts) if c] if counts else []
        total = sum(c for _, c in occupied)
        self.sample_count = total
        self.sample_sum = math.fsum(_MIDPOINT[i] * c for i, c in occupied)
        self.computed_buckets: tuple[int, ...] = (
            tuple(sum(counts[:n]) for n in _BUCKET_BINS) if total else (0,) * len(DEFAULT_BUCKETS)
        )
        self.computed_quantiles: tuple[float, ...] = (
            tuple(_quantile(occupied, total, q) for q in SUPPORTED_QUANTILES) if total else (math.nan,) * len(SUPPORTED_QUANTILES)
        )


def _quantile(occupied: list[tuple[int, int]], total: int, q: float) -> float:
    """The nearest-rank sample for ``q``, placed inside its bin as the module docstring says."""
    rank = min(total, max(1, math.ceil(q * total)))
    below = 0
    for index, count in occupied:
        if below + count >= rank:
            position = rank - below  # 1..count within the bin
            return _LOWER[index] + (position - 0.5) / count * _WIDTH[index]
        below += count
    raise AssertionError("rank beyond the sample count")  # rank <= total by construction


class ParentHistogram:
    """A histogram as the admin shows it: the workers' recorders merged at the last flush.

    Main thread only (the flush and the admin both run there).

    Attributes:
        name: Envoy's full name (``cluster.app.upstream_rq_time``).
        interval: statistics of the values merged at the last flush.
        cumulative: statistics of every value merged so far.
        used: a flush has merged at least one value (Envoy's ``used()``:
            ``usedonly`` keeps it, the text shows its quantiles instead of
            ``No recorded values``).
    """

    __slots__ = ("name", "interval", "cumulative", "_counts")

    def __init__(self, name: str) -> None:
        self.name = name
        self.interval = HistogramStatistics()
        self.cumulative = HistogramStatistics()
        self._counts: list[int] = []

    def __repr__(self) -> str:
        return f"<ParentHistogram {self.name} {self.cumulative.sample_count} values>"

    @property
    def used(self) -> bool:
        return self.cumulative.sample_count > 0

    def merge(self, interval_counts: Optional[Sequence[int]]) -> None:
        """End an interval: ``interval_counts`` (bin counts, or None for none) were recorded since the last merge."""
        self.interval = HistogramStatistics(interval_counts)
        if interval_counts and self.interval.sample_count:
            if self._counts:
                self._counts = [a + b for a, b in zip(self._counts, interval_counts)]
            else:
                self._counts = list(interval_counts)
            self.cumulative = HistogramStatistics(self._counts)

    def quantile_summary(self) -> str:
        """Envoy's text form: ``P0(interval,cumulative) P25(...) ... P100(...)``, or ``No recorded values``."""
        if not self.used:
            return "No recorded values"
        return " ".join(
            f"P{label}({format_number(i)},{format_number(c)})"
            for label, i, c in zip(SUPPORTED_QUANTILE_LABELS, self.interval.computed_quantiles, self.cumulative.computed_quantiles)
        )


def format_number(value: float) -> str:
    """A double as Envoy prints one with fmt's ``{}``: the shortest round-trip digits, no ``.0``, ``nan``."""
    if value != value:
        return "nan"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


#: The quantiles as Envoy names them: ``0``, ``25`` ... ``99.9``, ``100``.
SUPPORTED_QUANTILE_LABELS: tuple[str, ...] = tuple(format_number(100 * q) for q in SUPPORTED_QUANTILES)
