"""The health check filter's answer cache on a fake clock: it holds for the rest of its ``cache_time`` period."""

from __future__ import annotations

from pyevent_envoy.http.filters.health_check import HealthCheckCache


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_cache_is_empty_until_an_answer_is_kept():
    assert HealthCheckCache(2.0, FakeClock()).get() is None


def test_cache_keeps_the_answer_until_the_period_ends():
    clock = FakeClock()
    cache = HealthCheckCache(2.0, clock)  # periods [500, 502), [502, 504), ...
    clock.now = 501.0
    cache.set(503, False)
    assert cache.get() == (503, False)
    clock.now = 501.75
    assert cache.get() == (503, False)
    clock.now = 502.0  # Envoy's timer clears it at the period's end, not cache_time after the answer
    assert cache.get() is None


def test_cache_newer_answer_replaces_the_older():
    clock = FakeClock()
    cache = HealthCheckCache(10.0, clock)
    cache.set(200, False)
    cache.set(200, True)
    assert cache.get() == (200, True)
    clock.now += 30.0
    cache.set(500, False)
    assert cache.get() == (500, False)
