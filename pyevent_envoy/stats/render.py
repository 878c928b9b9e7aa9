"""The admin's renderings of a stats snapshot: Envoy's text, JSON and Prometheus formats.

All functions take the sorted list :meth:`StatsStore.snapshot
<pyevent_envoy.stats.store.StatsStore.snapshot>` returns and are pure.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Optional, Sequence

from pyevent_envoy.stats.store import COUNTER, GAUGE, Stat

__all__ = ["StatsQueryError", "extract_tags", "prometheus_name", "render_json", "render_prometheus", "render_text", "select"]


class StatsQueryError(ValueError):
    """A bad ``/stats`` query (an invalid ``filter`` regex): the admin answers 400."""


def select(stats: Iterable[Stat], *, filter: Optional[str] = None, used_only: bool = False) -> list[Stat]:
    """Envoy's ``filter=<regex>`` (matched anywhere in the name) and ``usedonly``."""
    pattern = None
    if filter is not None:
        try:
            pattern = re.compile(filter)
        except re.error as exc:
            raise StatsQueryError(f"Invalid regex: {exc}") from None
    return [s for s in stats if (not used_only or s.used) and (pattern is None or pattern.search(s.name))]


def render_text(stats: Sequence[Stat]) -> str:
    """``name: value`` lines, in the snapshot's (Envoy's) order."""
    return "".join(f"{s.name}: {s.value}\n" for s in stats)


def render_json(stats: Sequence[Stat]) -> str:
    """Envoy's ``{"stats":[{"name":...,"value":...},...]}`` (compact, as Envoy writes it)."""
    return json.dumps({"stats": [{"name": s.name, "value": s.value} for s in stats]}, separators=(",", ":"))


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


def render_prometheus(stats: Sequence[Stat]) -> str:
    """Envoy's ``/stats/prometheus``: every counter metric, then every gauge.

    Metrics come in the order of their tag-extracted names
    (``cluster.upstream_rq`` before ``cluster_manager.cluster_added``: it is
    the name with dots that Envoy sorts, not the Prometheus one).
    One ``# TYPE`` line per metric, then its series in stat-name order, the
    labels in tag-extraction order (``{}`` when there is none).
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for stat in stats:  # already in name order
        extracted, tags = extract_tags(stat.name)
        labels = ",".join(f'{tag}="{_label_value(value)}"' for tag, value in tags)
        groups.setdefault((stat.kind, extracted), []).append(f"{prometheus_name(extracted)}{{{labels}}} {stat.value}\n")
    out = []
    for kind in (COUNTER, GAUGE):
        for extracted in sorted(e for k, e in groups if k == kind):
            out.append(f"# TYPE {prometheus_name(extracted)} {kind}\n")
            out.extend(groups[(kind, extracted)])
    return "".join(out)
