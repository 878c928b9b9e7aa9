"""Histograms: bins, quantiles against known distributions, per-thread recording merged at each flush,
interval against cumulative, Envoy's three renderings, and the connections' byte stats."""

from __future__ import annotations

import bisect
import json
import math
import random
import re
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.network.connection_impl import ServerConnectionImpl
from pyevent_envoy.stats import (
    ClusterTrafficStats,
    ConnectionStats,
    HistogramRecorder,
    HttpConnManagerStats,
    ParentHistogram,
    StatsStore,
    render_json,
    render_prometheus,
    render_text,
    select,
)
from pyevent_envoy.stats.histogram import (
    DEFAULT_BUCKETS,
    NUM_BINS,
    SUPPORTED_QUANTILES,
    HistogramStatistics,
    bin_bounds,
    bin_index,
    format_number,
)


def _statistics(values) -> HistogramStatistics:
    recorder = HistogramRecorder()
    for value in values:
        recorder.record(value)
    return HistogramStatistics(recorder.counts)


def _true_quantile(values, q):
    """The nearest-rank quantile: the ceil(q * n)-th smallest value (the first for q = 0)."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


# -- bins --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, bounds",
    [
        (0, (0.0, 0.1)),
        (0.05, (0.0, 0.1)),
        (-3, (0.0, 0.1)),
        (0.1, (0.1, 0.11)),
        (1, (1.0, 1.1)),
        (1.09, (1.0, 1.1)),
        (1.1, (1.1, 1.2)),
        (9.99, (9.9, 10.0)),
        (10, (10.0, 11.0)),
        (99, (99.0, 100.0)),
        (100, (100.0, 110.0)),
        (109, (100.0, 110.0)),
        (205, (200.0, 210.0)),
        (3_600_000, (3_600_000.0, 3_700_000.0)),
        (10**12 - 1, (9.9e11, 1e12)),
        (10**12, (1e12, math.inf)),
        (10**15, (1e12, math.inf)),
    ],
)
def test_bin_edges_are_two_significant_digits(value, bounds):
    assert bin_bounds(bin_index(value)) == bounds


def test_bins_are_ordered_and_every_default_bucket_bound_is_an_edge():
    edges = [bin_bounds(i)[0] for i in range(NUM_BINS)]
    assert edges == sorted(edges) and len(set(edges)) == NUM_BINS
    for bound in DEFAULT_BUCKETS:
        assert bound in edges, bound
    with pytest.raises(IndexError):
        bin_bounds(NUM_BINS)


def test_recorder_allocates_its_bins_on_the_first_value():
    recorder = HistogramRecorder()
    assert recorder.counts == []
    recorder.record(5)
    recorder.record(5)
    recorder.record(10**13)
    assert len(recorder.counts) == NUM_BINS
    assert recorder.counts[bin_index(5)] == 2
    assert recorder.counts[-1] == 1 and sum(recorder.counts) == 3


def test_durations_are_whole_milliseconds_rounded_down_as_envoys_timespans():
    recorder = HistogramRecorder()
    for seconds in (0.0, 0.0009, 0.0019, 0.2057):
        recorder.record_duration(seconds)
    assert [i for i, c in enumerate(recorder.counts) if c] == [bin_index(0), bin_index(1), bin_index(205)]
    assert recorder.counts[bin_index(0)] == 2


# The recorders count in C (csrc/stats_module.c); their bins must be exactly
# bisect_right over the edges, the definition the rest of this module uses.
_EDGES = [bin_bounds(i)[1] for i in range(NUM_BINS - 1)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(10**15), max_value=10**15),
            st.sampled_from(_EDGES),  # exactly on an edge: the bin above it
            st.sampled_from(_EDGES).map(lambda edge: math.nextafter(edge, -math.inf)),
        ),
        max_size=40,
    ),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, min_value=None), max_size=20),
)
def test_c_bins_are_bisect_right_over_the_edges(values, durations):
    recorder = HistogramRecorder()
    expected = [0] * NUM_BINS
    for value in values:
        recorder.record(value)
        expected[bisect.bisect_right(_EDGES, float(value))] += 1
    for seconds in durations:
        recorder.record_duration(seconds)
        expected[bisect.bisect_right(_EDGES, seconds * 1000.0 // 1.0)] += 1
    if values or durations:
        assert recorder.counts == expected
        assert recorder
    else:
        assert recorder.counts == [] and not recorder


def test_recorder_counts_are_a_copy_and_bad_values_count_nothing():
    recorder = HistogramRecorder()
    recorder.record(True)  # any real number: bool and int included
    snapshot = recorder.counts
    snapshot[0] = 99
    assert recorder.counts[bin_index(1)] == 1 and sum(recorder.counts) == 1
    for bad in ("5", None, 1j):
        with pytest.raises(TypeError):
            recorder.record(bad)
        with pytest.raises(TypeError):
            recorder.record_duration(bad)
    assert sum(recorder.counts) == 1
    assert repr(recorder) == "<HistogramRecorder 1 values>"
    with pytest.raises(AttributeError):
        recorder.counts = []  # read-only: only record() writes


def test_the_c_bins_accept_only_the_edges_they_were_given():
    from pyevent_envoy import _stats

    _stats.set_upper_edges(tuple(_EDGES))  # the same edges again: a no-op
    with pytest.raises(RuntimeError):
        _stats.set_upper_edges(tuple(_EDGES[:-1]))
    recorder = HistogramRecorder()
    recorder.record(5)
    assert recorder.counts[bin_index(5)] == 1


# -- quantiles ---------------------------------------------------------------


def test_no_samples_gives_nan_quantiles_and_zero_buckets():
    stats = HistogramStatistics()
    assert all(math.isnan(q) for q in stats.computed_quantiles)
    assert stats.computed_buckets == (0,) * len(DEFAULT_BUCKETS)
    assert (stats.sample_count, stats.sample_sum) == (0, 0.0)


def test_one_sample_is_its_bins_midpoint_at_every_quantile():
    # As Envoy: 1 ms shows as 1.05, 205 ms as 205 ([200, 210)), 0 as 0.
    assert _statistics([1]).computed_quantiles == (1.05,) * len(SUPPORTED_QUANTILES)
    assert _statistics([205]).computed_quantiles == (205.0,) * len(SUPPORTED_QUANTILES)
    assert _statistics([0]).computed_quantiles == (0.0,) * len(SUPPORTED_QUANTILES)


def test_quantiles_of_whole_milliseconds_below_100_are_within_one_bin():
    values = list(range(100))  # 0..99, one each
    stats = _statistics(values)
    for q, estimate in zip(SUPPORTED_QUANTILES, stats.computed_quantiles):
        true = _true_quantile(values, q)
        lower, upper = bin_bounds(bin_index(true))
        assert lower <= estimate < upper or estimate == true == 0, (q, true, estimate)


@pytest.mark.parametrize(
    "name, draw",
    [
        ("uniform 0-1000 ms", lambda rng: rng.randrange(0, 1000)),
        ("exponential, mean 50 ms", lambda rng: int(rng.expovariate(1 / 50))),
        ("lognormal latencies", lambda rng: int(rng.lognormvariate(3, 1.2))),
        ("seconds-long", lambda rng: rng.randrange(1_000, 3_600_000)),
        ("fractional", lambda rng: rng.uniform(0.1, 10.0)),
    ],
)
def test_quantiles_of_known_distributions_are_within_the_documented_error(name, draw):
    rng = random.Random(name)
    values = [draw(rng) for _ in range(20_000)]
    stats = _statistics(values)
    assert stats.sample_count == len(values)
    for q, estimate in zip(SUPPORTED_QUANTILES, stats.computed_quantiles):
        true = _true_quantile(values, q)
        if true < 0.1:
            assert estimate == 0, (q, true, estimate)
            continue
        # In the same bin as the true sample: off by less than one bin width, at most a tenth of the value.
        lower, upper = bin_bounds(bin_index(true))
        assert lower <= estimate < upper, (q, true, estimate)
        assert abs(estimate - true) <= 0.1 * true + 1e-9, (q, true, estimate)


def test_sum_is_the_bins_midpoints_and_close_to_the_true_sum():
    rng = random.Random(7)
    values = [rng.randrange(1, 10_000) for _ in range(5_000)]
    stats = _statistics(values)
    expected = sum((bin_bounds(bin_index(v))[0] + bin_bounds(bin_index(v))[1]) / 2 for v in values)
    assert stats.sample_sum == pytest.approx(expected)
    assert stats.sample_sum == pytest.approx(sum(values), rel=0.01)


def test_buckets_count_whole_milliseconds_at_most_the_bound():
    values = [0, 1, 1, 4, 5, 6, 25, 99, 100, 250, 999, 1000, 3_600_000, 5_000_000]
    stats = _statistics(values)
    assert stats.computed_buckets == tuple(sum(1 for v in values if v <= bound) for bound in DEFAULT_BUCKETS)


def test_a_bucket_counts_a_value_sharing_the_bounds_bin():
    # The documented limit: 101 shares [100, 110) with 100, so it counts as <= 100.
    assert _statistics([101]).computed_buckets[DEFAULT_BUCKETS.index(100)] == 1
    assert _statistics([110]).computed_buckets[DEFAULT_BUCKETS.index(100)] == 0


# -- merging: workers, intervals ---------------------------------------------


def test_workers_are_merged_and_intervals_are_since_the_previous_flush():
    store = StatsStore()
    workers = [store.register("cluster.app.", ClusterTrafficStats()) for _ in range(2)]
    workers[0].upstream_rq_time.record(10)
    workers[1].upstream_rq_time.record(20)
    workers[1].upstream_rq_time.record(30)
    store.merge_histograms()
    (rq_time,) = [h for h in store.histograms() if h.name == "cluster.app.upstream_rq_time"]
    assert rq_time.interval.sample_count == rq_time.cumulative.sample_count == 3
    assert rq_time.interval.computed_quantiles[0] == 10.5 and rq_time.interval.computed_quantiles[-1] == 30.5

    workers[0].upstream_rq_time.record(500)
    store.merge_histograms()
    (rq_time,) = [h for h in store.histograms() if h.name == "cluster.app.upstream_rq_time"]
    assert rq_time.interval.sample_count == 1
    assert rq_time.interval.computed_quantiles == (505.0,) * len(SUPPORTED_QUANTILES)
    assert rq_time.cumulative.sample_count == 4
    assert rq_time.cumulative.computed_quantiles[0] == 10.5 and rq_time.cumulative.computed_quantiles[-1] == 505

    store.merge_histograms()  # nothing new: an empty interval, the cumulative stays
    (rq_time,) = [h for h in store.histograms() if h.name == "cluster.app.upstream_rq_time"]
    assert all(math.isnan(q) for q in rq_time.interval.computed_quantiles)
    assert rq_time.cumulative.sample_count == 4 and rq_time.used


def test_values_are_invisible_until_a_flush_merges_them():
    store = StatsStore()
    scope = store.register("http.ingress.", HttpConnManagerStats())
    scope.downstream_rq_time.record(3)
    histograms = {h.name: h for h in store.histograms()}
    assert set(histograms) == {"http.ingress.downstream_cx_length_ms", "http.ingress.downstream_rq_time"}
    assert not histograms["http.ingress.downstream_rq_time"].used
    store.merge_histograms()
    assert {h.name: h.used for h in store.histograms()} == {
        "http.ingress.downstream_cx_length_ms": False,
        "http.ingress.downstream_rq_time": True,
    }


def test_response_timing_histograms_appear_on_first_use():
    store = StatsStore()
    scope = store.register("cluster.app.", ClusterTrafficStats())
    assert {h.name for h in store.histograms()} == {
        "cluster.app.upstream_cx_connect_ms",
        "cluster.app.upstream_cx_length_ms",
        "cluster.app.upstream_rq_per_cx",
    }
    scope.charge_response_timing(0.012, internal=False)
    store.merge_histograms()
    names = {h.name: h.cumulative.sample_count for h in store.histograms()}
    assert names["cluster.app.external.upstream_rq_time"] == 1
    assert names["cluster.app.upstream_rq_time"] == 1
    assert "cluster.app.internal.upstream_rq_time" not in names


def test_an_unregistered_scopes_histograms_go_away():
    store = StatsStore()
    scope = store.register("cluster.gone.", ClusterTrafficStats())
    scope.upstream_rq_time.record(1)
    store.merge_histograms()
    store.unregister("cluster.gone.", scope)
    store.merge_histograms()
    assert store.histograms() == []


def test_recording_while_flushing_loses_nothing():
    """A worker records without locks while the main thread flushes: every value lands in one interval."""
    store = StatsStore()
    scope = store.register("cluster.app.", ClusterTrafficStats())
    total = 200_000
    done = threading.Event()

    def worker():
        record = scope.upstream_rq_time.record
        for i in range(total):
            record(i % 1000)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    intervals = []
    while not done.is_set():
        store.merge_histograms()
        intervals.append({h.name: h for h in store.histograms()}["cluster.app.upstream_rq_time"].interval.sample_count)
    thread.join()
    store.merge_histograms()
    (rq_time,) = [h for h in store.histograms() if h.name == "cluster.app.upstream_rq_time"]
    intervals.append(rq_time.interval.sample_count)
    assert sum(intervals) == rq_time.cumulative.sample_count == total


# -- rendering ---------------------------------------------------------------


def _merged(name: str, *batches) -> ParentHistogram:
    parent = ParentHistogram(name)
    for batch in batches:
        recorder = HistogramRecorder()
        for value in batch:
            recorder.record(value)
        parent.merge(recorder.counts or None)
    return parent


def test_text_rendering_is_envoys():
    used = _merged("cluster.app.upstream_rq_time", [0, 1, 205], [])
    unused = ParentHistogram("cluster.app.upstream_cx_length_ms")
    text = render_text([], [used, unused])
    assert text == (
        "cluster.app.upstream_rq_time: P0(nan,0) P25(nan,0) P50(nan,1.05) P75(nan,205) P90(nan,205)"
        " P95(nan,205) P99(nan,205) P99.5(nan,205) P99.9(nan,205) P100(nan,205)\n"
        "cluster.app.upstream_cx_length_ms: No recorded values\n"
    )


def test_json_rendering_is_envoys():
    used = _merged("cluster.app.upstream_rq_time", [1, 1, 3])
    unused = ParentHistogram("cluster.app.upstream_cx_length_ms")
    body = render_json([], [used, unused])
    document = json.loads(body)
    (element,) = document["stats"]
    assert list(element) == ["histograms"]
    histograms = element["histograms"]
    assert histograms["supported_quantiles"] == [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]
    assert [h["name"] for h in histograms["computed_quantiles"]] == [used.name, unused.name]
    first = histograms["computed_quantiles"][0]["values"]
    assert first[0] == {"cumulative": 1.025, "interval": 1.025} and first[-1] == {"cumulative": 3.05, "interval": 3.05}
    assert histograms["computed_quantiles"][1]["values"] == [{"cumulative": None, "interval": None}] * 10
    # Envoy's spelling: compact, cumulative before interval, whole numbers without ".0".
    assert '"supported_quantiles":[0,25,50,75,90,95,99,99.5,99.9,100]' in body
    assert '{"cumulative":null,"interval":null}' in body
    assert render_json([]) == '{"stats":[]}'


def test_prometheus_rendering_is_envoys():
    used = _merged("cluster.app.upstream_rq_time", [0, 1, 205])
    unused = _merged("server.initialization_time_ms")
    text = render_prometheus([], [used, unused])
    lines = text.splitlines()
    assert lines[0] == "# TYPE envoy_cluster_upstream_rq_time histogram"
    assert lines[1] == 'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app",le="0.5"} 1'
    assert lines[2] == 'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app",le="1"} 2'
    assert lines[8] == 'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app",le="250"} 3'
    assert lines[20] == 'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app",le="+Inf"} 3'
    assert lines[21] == 'envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="app"} 206.0500000000000113686837721616'
    assert lines[22] == 'envoy_cluster_upstream_rq_time_count{envoy_cluster_name="app"} 3'
    assert lines[23] == "# TYPE envoy_server_initialization_time_ms histogram"
    assert lines[24] == 'envoy_server_initialization_time_ms_bucket{le="0.5"} 0'
    assert lines[-2:] == ["envoy_server_initialization_time_ms_sum{} 0", "envoy_server_initialization_time_ms_count{} 0"]
    les = [re.search(r'le="([^"]+)"', line).group(1) for line in lines[1:21]]
    assert les == [format_number(b) for b in DEFAULT_BUCKETS] + ["+Inf"]


def test_histograms_come_after_counters_and_gauges_in_every_format():
    store = StatsStore()
    scope = store.register("cluster.app.", ClusterTrafficStats())
    scope.upstream_rq_total += 1
    store.merge_histograms()
    stats, histograms = store.snapshot(), store.histograms()
    text = render_text(stats, histograms).splitlines()
    first_histogram = next(i for i, line in enumerate(text) if "upstream_cx_connect_ms" in line)
    assert all(":" in line and line.split(": ")[1].lstrip("-").isdigit() for line in text[:first_histogram])
    assert all(": No recorded values" in line for line in text[first_histogram:])
    assert "histograms" in json.loads(render_json(stats, histograms))["stats"][-1]
    types = [line.rsplit(" ", 1)[1] for line in render_prometheus(stats, histograms).splitlines() if line.startswith("# TYPE")]
    assert types == sorted(types, key=["counter", "gauge", "histogram"].index)


def test_filter_and_usedonly_select_histograms():
    used = _merged("cluster.app.upstream_rq_time", [3])
    unused = ParentHistogram("cluster.app.upstream_cx_length_ms")
    assert select([used, unused], used_only=True) == [used]
    assert select([used, unused], filter="cx_length") == [unused]


@pytest.mark.parametrize(
    "value, text",
    [(0.0, "0"), (205.0, "205"), (1.05, "1.05"), (1.0333333333333334, "1.0333333333333334"), (1e16, "1e+16"),
     (1e15, "1000000000000000"), (1e-05, "1e-05"), (math.nan, "nan")],
)
def test_numbers_are_formatted_as_envoys_fmt(value, text):
    assert format_number(value) == text


# -- connection byte stats ---------------------------------------------------


def test_a_connection_counts_its_bytes_as_envoy_does():
    """Reads and writes on a real socket pair: totals, the buffered gauges (read side measured before
    the filters consume), and both gauges back to 0 when the connection closes."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(True)
    stats = ConnectionStats()

    class Keep:  # a read filter that consumes nothing, so the buffer keeps what was read
        def on_data(self, data, end_stream):
            from pyevent_envoy.network.filter import FilterStatus

            return FilterStatus.STOP_ITERATION

        def initialize_read_filter_callbacks(self, callbacks):
            pass

        def on_new_connection(self):
            from pyevent_envoy.network.filter import FilterStatus

            return FilterStatus.CONTINUE

    with DispatcherImpl("test") as dispatcher:
        connection = ServerConnectionImpl(dispatcher, ours.detach(), None, None)
        connection.set_connection_stats(stats)
        connection.add_read_filter(Keep())
        connection.initialize_read_filters()
        theirs.sendall(b"x" * 1000)
        while stats.read_total < 1000:
            dispatcher.run(RunType.NON_BLOCK)
        assert (stats.read_total, stats.read_current) == (1000, 1000)
        connection.write(b"y" * 300)
        while stats.write_total < 300:
            dispatcher.run(RunType.NON_BLOCK)
        assert theirs.recv(1000) == b"y" * 300
        assert (stats.write_total, stats.write_current, stats.write_current_moved) == (300, 0, False)
        connection.close()
        assert (stats.read_current, stats.write_current) == (0, 0)
        assert (stats.read_total, stats.write_total) == (1000, 300)
        dispatcher.clear_deferred_delete_list()
    theirs.close()
