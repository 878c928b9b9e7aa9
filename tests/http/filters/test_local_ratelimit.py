"""The local rate limit's token bucket on a fake clock: capacity, continuous refill, Envoy's header values."""

from __future__ import annotations

import threading

import pytest

from pyevent_envoy.http.filters.local_ratelimit import TokenBucket


class FakeClock:
    """A monotonic clock that moves only when told (times are binary fractions: exact in floats)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _take_all(bucket: TokenBucket, limit: int = 1000) -> int:
    taken = 0
    while taken < limit and bucket.consume():
        taken += 1
    return taken


def test_token_bucket_starts_full_and_empties():
    clock = FakeClock()
    bucket = TokenBucket(3, 1, 60.0, clock)
    assert bucket.remaining_tokens() == 3
    assert _take_all(bucket) == 3
    assert not bucket.consume()
    assert bucket.remaining_tokens() == 0


def test_token_bucket_refills_continuously_at_tokens_per_fill_over_fill_interval():
    clock = FakeClock()
    bucket = TokenBucket(10, 4, 2.0, clock)  # 2 tokens a second
    assert _take_all(bucket) == 10
    clock.advance(0.25)  # half a token: still none
    assert not bucket.consume()
    clock.advance(0.25)  # one whole token, not a step of four at the interval's end
    assert bucket.consume()
    assert not bucket.consume()
    clock.advance(1.5)  # three more
    assert _take_all(bucket) == 3


def test_token_bucket_never_holds_more_than_max_tokens():
    clock = FakeClock()
    bucket = TokenBucket(2, 1, 1.0, clock)
    clock.advance(3600.0)
    assert bucket.remaining_tokens() == 2
    assert _take_all(bucket) == 2


def test_token_bucket_failed_consume_takes_nothing():
    clock = FakeClock()
    bucket = TokenBucket(1, 1, 1.0, clock)
    assert bucket.consume()
    clock.advance(0.5)
    for _ in range(5):
        assert not bucket.consume()  # refused requests do not push the refill back
    clock.advance(0.5)
    assert bucket.consume()


def test_token_bucket_reset_seconds_as_envoy_reports_it():
    clock = FakeClock()
    bucket = TokenBucket(2, 1, 3600.0, clock)
    assert bucket.reset_seconds() == 0  # a token is there
    _take_all(bucket)
    assert bucket.reset_seconds() == 3600  # one token takes the whole interval to come back
    fast = TokenBucket(1, 3, 1.0, clock)  # a token every 1/3 s: 334 ms, divided down to 0 s
    _take_all(fast)
    assert fast.reset_seconds() == 0


def test_token_bucket_is_shared_safely_by_threads():
    bucket = TokenBucket(1000, 1, 3600.0)
    counts = []

    def worker() -> None:
        counts.append(_take_all(bucket, 2000))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 1000  # no token given twice, none lost


@pytest.mark.parametrize(("max_tokens", "tokens_per_fill", "fill_interval"), [(0, 1, 1.0), (1, 0, 1.0), (1, 1, 0.0)])
def test_token_bucket_rejects_a_degenerate_bucket(max_tokens, tokens_per_fill, fill_interval):
    with pytest.raises(ValueError):
        TokenBucket(max_tokens, tokens_per_fill, fill_interval)
