"""Durations: proto3 JSON strings ("1.5s") and {seconds, nanos} objects, with Envoy's limits."""

from __future__ import annotations

import pytest

from pyevent_envoy.config import format_duration, parse_duration
from pyevent_envoy.config.durations import MAX_DURATION_SECONDS, parse_duration_nanos


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        ("15s", 15_000_000_000),
        ("0.5s", 500_000_000),
        ("1.5s", 1_500_000_000),
        ("0s", 0),
        ("-0s", 0),
        ("007s", 7_000_000_000),
        ("1.000000001s", 1_000_000_001),
        ("0.000000001s", 1),
        ("300s", 300_000_000_000),
        (f"{MAX_DURATION_SECONDS}.999999999s", MAX_DURATION_SECONDS * 10**9 + 999_999_999),
        ({"seconds": 1, "nanos": 500_000_000}, 1_500_000_000),
        ({"seconds": "5"}, 5_000_000_000),
        ({"seconds": 5.0}, 5_000_000_000),
        ({"nanos": 250}, 250),
        ({}, 0),
        ({"seconds": None, "nanos": None}, 0),
    ],
)
def test_parse(value, nanos):
    assert parse_duration_nanos(value) == nanos
    assert parse_duration(value) == nanos / 1e9


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (15, "got the number 15"),
        (1.5, "got the number 1.5"),
        (True, "got a boolean"),
        (None, "got NoneType"),
        (["1s"], "got list"),
        ("15", "invalid duration '15'"),
        ("5ms", "invalid duration '5ms'"),
        ("1m", "invalid duration '1m'"),
        ("1h", "invalid duration"),
        (".5s", "invalid duration"),
        ("1.s", "invalid duration"),
        ("+5s", "invalid duration"),
        (" 5s", "invalid duration"),
        ("5 s", "invalid duration"),
        ("1e3s", "invalid duration"),
        ("0.0000000001s", "invalid duration"),
        ("-1s", "is negative"),
        ("-0.5s", "is negative"),
        ("315576000001s", "out of range"),
        (f"{MAX_DURATION_SECONDS + 1}s", "out of range"),
        ({"seconds": -1}, "negative"),
        ({"seconds": 1, "nanos": -1}, "negative"),
        ({"nanos": 1_000_000_000}, "at most 999999999"),
        ({"seconds": 1.5}, "must be an integer"),
        ({"seconds": "x"}, "must be an integer"),
        ({"seconds": True}, "boolean"),
        ({"seconds": 1, "millis": 1}, "unknown duration field 'millis'"),
        ({"seconds": MAX_DURATION_SECONDS + 1}, "out of range"),
    ],
)
def test_reject(value, reason):
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert reason in str(info.value)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (15, "15s"), (1.5, "1.5s"), (0.25, "0.25s"), (1e-9, "0.000000001s")])
def test_format_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_format_rejects_negative():
    with pytest.raises(ValueError):
        format_duration(-1)
