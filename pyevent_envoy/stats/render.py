"""The admin's renderings of a stats snapshot: Envoy's text, JSON and Prometheus formats.

All functions take the sorted list :meth:`StatsStore.snapshot
<pyevent_envoy.stats.store.StatsStore.snapshot>` returns, and optionally
the sorted list :meth:`StatsStore.histograms
<pyevent_envoy.stats.store.StatsStore.histograms>` returns, and are pure.
Histograms come after the counters and gauges in every format, as in Envoy.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Optional, Sequence, TypeVar

from pyevent_envoy.stats.histogram import DEFAULT_BUCKETS, SUPPORTED_QUANTILE_LABELS, ParentHistogram, format_number
from pyevent_envoy.stats.store import COUNTER, GAUGE, Stat

_Named = TypeVar("_Named", Stat, ParentHistogram)

__all__ = ["StatsQueryError", "extract_tags", "prometheus_name", "render_json", "render_prometheus", "render_text", "select"]


class StatsQueryError(ValueError):
    """A bad ``/stats`` query (an invalid ``filter`` regex): the admin answers 400."""


def select(stats: Iterable[_Named], *, filter: Optional[str] = None, used_only: bool = False) -> list[_Named]:
    """Envoy's ``filter=<regex>`` (matched anywhere in the name) and ``usedonly``, for stats or histograms."""
    pattern = None
    if filter is not None:
        try:
            pattern = re.compile(filter)
        except re.error as exc:
            raise StatsQueryError(f"Invalid regex: {exc}") from None
    return [s for s in stats if (not used_only or s.used) and (pattern is None or pattern.search(s.name))]


def render_text(stats: Sequence[Stat], histograms: Sequence[ParentHistogram] = ()) -> str:
    """``name: value`` lines in the snapshot's (Envoy's) order, then ``name: P0(interval,cumulative) ...``
    (or ``name: No recorded values``) per histogram."""
    lines = [f"{s.name}: {s.value}\n" for s in stats]
    lines.extend(f"{h.name}: {h.quantile_summary()}\n" for h in histograms)
    return "".join(lines)


def _json_number(value: float) -> str:
    return "null" if value != value else format_number(value)


def render_json(stats: Sequence[Stat], histograms: Sequence[ParentHistogram] = ()) -> str:
    """Envoy's ``{"stats":[{"name":...,"value":...},...]}`` (compact, as Envoy writes it).

    When there are histograms, the last element of ``stats`` is Envoy's
    ``{"histograms":{"supported_quantiles":[0,25,...],"computed_quantiles":
    [{"name":...,"values":[{"cumulative":...,"interval":...},...]},...]}}``,
    ``null`` standing for a quantile without samples.
    """
    items = [json.dumps({"name": s.name, "value": s.value}, separators=(",", ":")) for s in stats]
    if histograms:
        supported = ",".join(SUPPORTED_QUANTILE_LABELS)
        computed = []
        for h in histograms:
            values = ",".join(
                f'{{"cumulative":{_json_number(c)},"interval":{_json_number(i)}}}'
                for i, c in zip(h.interval.computed_quantiles, h.cumulative.computed_quantiles)
            )
            computed.append(f'{{"name":{json.dumps(h.name)},"values":[{values}]}}')
        items.append(
            f'{{"histograms":{{"supported_quantiles":[{supported}],"computed_quantiles":[{",".join(computed)}]}}}}'
        )
    return f'{{"stats":[{",".join(items)}]}}'


# Envoy's default tag extractors (source/common/config/well_known_names.cc),
# in Envoy's order, restricted to those that can match the stats kept here.
# Group 1 is cut out of the name, group 2 is the tag's value.
_NAME = r"[^\.]+"
_ADDRESS = r"(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+)"
_TAG_EXTRACTORS = (
    ("envoy_response_code", re.compile(r"_rq(_(\d{3}))$")),
    ("envoy_response_code_class", re.compile(r"_rq_((\d))xx$")),
    ("envoy_http_conn_manager_prefix", re.compile(rf"^http\.(({_NAME})\.)")),
    ("envoy_worker_id", re.compile(r"(?:^|\.)worker_((\d+)\.)")),
    ("envoy_listener_address", re.compile(rf"^listener\.(({_ADDRESS})\.)")),
    ("envoy_cluster_name", re.compile(rf"^cluster\.(({_NAME})\.)")),
)
_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")


def extract_tags(name: str) -> tuple[str, list[tuple[str, str]]]:
    """``(tag-extracted name, [(tag, value), ...])`` as Envoy's default tag extractors give them.

    ``cluster.app.upstream_rq_200`` gives ``("cluster.upstream_rq",
    [("envoy_response_code", "200"), ("envoy_cluster_name", "app")])``.
    """
    tags: list[tuple[str, str]] = []
    cuts: list[tuple[int, int]] = []
    for tag, regex in _TAG_EXTRACTORS:
        match = regex.search(name)
        if match is not None:
            tags.append((tag, match.group(2)))
            cuts.append(match.span(1))
    extracted = name
    for start, end in sorted(cuts, reverse=True):
        extracted = extracted[:start] + extracted[end:]
    return extracted, tags


def prometheus_name(extracted: str) -> str:
    """``envoy_`` plus the tag-extracted name with every character Prometheus refuses made ``_``."""
    return "envoy_" + _INVALID_METRIC_CHARS.sub("_", extracted)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_HISTOGRAM = "histogram"
_BUCKET_LABELS = tuple(f'le="{format_number(bound)}"' for bound in DEFAULT_BUCKETS) + ('le="+Inf"',)


def _histogram_series(metric: str, labels: str, histogram: ParentHistogram) -> str:
    """One histogram's ``_bucket`` lines (Envoy's default buckets, then ``+Inf``), ``_sum`` and ``_count``,
    from its cumulative statistics."""
    stats = histogram.cumulative
    joiner = "," if labels else ""
    counts = stats.computed_buckets + (stats.sample_count,)
    lines = [f"{metric}_bucket{{{labels}{joiner}{le}}} {count}\n" for le, count in zip(_BUCKET_LABELS, counts)]
    lines.append(f"{metric}_sum{{{labels}}} {stats.sample_sum:.32g}\n")
    lines.append(f"{metric}_count{{{labels}}} {stats.sample_count}\n")
    return "".join(lines)


def render_prometheus(stats: Sequence[Stat], histograms: Sequence[ParentHistogram] = ()) -> str:
    """Envoy's ``/stats/prometheus``: every counter metric, then every gauge, then every histogram.

    Metrics come in the order of their tag-extracted names
    (``cluster.upstream_rq`` before ``cluster_manager.cluster_added``: it is
    the name with dots that Envoy sorts, not the Prometheus one).
    One ``# TYPE`` line per metric, then its series in stat-name order, the
    labels in tag-extraction order (``{}`` when there is none).  A
    histogram's series are its cumulative ``_bucket{...,le="..."}`` counts,
    ``_sum`` (printed as ``%.32g``, as Envoy does) and ``_count``.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for kind, name, render in [(s.kind, s.name, s) for s in stats] + [(_HISTOGRAM, h.name, h) for h in histograms]:
        extracted, tags = extract_tags(name)
        labels = ",".join(f'{tag}="{_label_value(value)}"' for tag, value in tags)
        metric = prometheus_name(extracted)
        if kind == _HISTOGRAM:
            series = _histogram_series(metric, labels, render)
        else:
            series = f"{metric}{{{labels}}} {render.value}\n"
        groups.setdefault((kind, extracted), []).append(series)  # inputs are in name order
    out = []
    for kind in (COUNTER, GAUGE, _HISTOGRAM):
        for extracted in sorted(e for k, e in groups if k == kind):
            out.append(f"# TYPE {prometheus_name(extracted)} {kind}\n")
            out.extend(groups[(kind, extracted)])
    return "".join(out)
