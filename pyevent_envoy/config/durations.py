"""Durations as Envoy's configuration writes them.

A ``google.protobuf.Duration`` in proto3 JSON (and so in Envoy's YAML) is a
string of seconds with an ``s`` suffix and at most nine fractional digits:
``"15s"``, ``"0.5s"``, ``"1.000000001s"``.  Envoy's loader also takes the
message form ``{seconds: 1, nanos: 500000000}``.  A bare number is not a
duration (``timeout: 15`` is an error, as in Envoy).

Envoy then refuses negative durations and durations whose seconds exceed
9223372035 (they would overflow its nanosecond clock).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["MAX_DURATION_SECONDS", "format_duration", "parse_duration", "parse_duration_nanos"]

# Envoy's own ceiling (the largest whole number of seconds whose nanoseconds fit in int64, less one).
MAX_DURATION_SECONDS = 9_223_372_035
# protobuf's ceiling for the string form, checked first as protobuf does.
_PROTOBUF_MAX_SECONDS = 315_576_000_000
_NANOS_PER_SECOND = 1_000_000_000
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1

_DURATION_RE = re.compile(r"(-)?([0-9]+)(?:\.([0-9]{1,9}))?s")
_INTEGER_RE = re.compile(r"[-+]?[0-9]+")
_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _integer(value: Any, what: str, lo: int, hi: int) -> int:
    """An integer in proto3 JSON: a number with no fraction, or such a number in a string."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got a boolean")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise ValueError(f"{what} must be an integer, got {value!r}")
        result = int(value)
    elif isinstance(value, str):
        if _INTEGER_RE.fullmatch(value):
            result = int(value)
        elif _NUMBER_RE.fullmatch(value) and float(value).is_integer():
            result = int(float(value))
        else:
            raise ValueError(f"{what} must be an integer, got {value!r}")
    else:
        raise ValueError(f"{what} must be an integer, got {type(value).__name__}")
    if not lo <= result <= hi:
        raise ValueError(f"{what} {result} is out of range")
    return result


def parse_duration_nanos(value: Any) -> int:
    """Parse a configuration duration into whole nanoseconds.

    Raises:
        ValueError: the value is not a duration Envoy accepts; the message is
            the reason, without the YAML path.
    """
    if isinstance(value, str):
        m = _DURATION_RE.fullmatch(value)
        if m is None:
            raise ValueError(
                f"invalid duration {value!r}: expected seconds with an 's' suffix and at most "
                "9 fractional digits, like '15s' or '0.25s'"
            )
        negative, whole, frac = m.groups()
        seconds = int(whole)
        nanos = int((frac or "").ljust(9, "0")) if frac else 0
        if seconds > _PROTOBUF_MAX_SECONDS:
            raise ValueError(f"duration {value!r} is out of range")
        if negative and (seconds or nanos):
            raise ValueError(f"duration {value!r} is negative")
    elif isinstance(value, Mapping):
        unknown = [k for k in value if k not in ("seconds", "nanos")]
        if unknown:
            raise ValueError(f"unknown duration field {unknown[0]!r} (expected 'seconds' and 'nanos')")
        raw_seconds = value.get("seconds")
        raw_nanos = value.get("nanos")
        seconds = 0 if raw_seconds is None else _integer(raw_seconds, "duration seconds", -_INT64_MAX - 1, _INT64_MAX)
        nanos = 0 if raw_nanos is None else _integer(raw_nanos, "duration nanos", -_INT32_MAX - 1, _INT32_MAX)
        if seconds < 0 or nanos < 0:
            raise ValueError("duration is negative")
        if nanos >= _NANOS_PER_SECOND:
            raise ValueError("duration nanos must be at most 999999999")
    else:
        if isinstance(value, bool):
            kind = "a boolean"
        elif isinstance(value, (int, float)):
            kind = f"the number {value!r}"
        else:
            kind = type(value).__name__
        raise ValueError(
            f"expected a duration like '15s' or {{seconds: 15, nanos: 0}}, got {kind}"
        )
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"duration is out of range (at most {MAX_DURATION_SECONDS} seconds)")
    return seconds * _NANOS_PER_SECOND + nanos


def parse_duration(value: Any) -> float:
    """Parse a configuration duration into float seconds (``"1.5s"`` -> ``1.5``).

    Raises:
        ValueError: the value is not a duration Envoy accepts.
    """
    return parse_duration_nanos(value) / _NANOS_PER_SECOND


def format_duration(seconds: float) -> str:
    """Write float seconds back in the configuration's form (``1.5`` -> ``"1.5s"``)."""
    if seconds < 0:
        raise ValueError("duration is negative")
    nanos = round(seconds * _NANOS_PER_SECOND)
    whole, frac = divmod(nanos, _NANOS_PER_SECOND)
    if not frac:
        return f"{whole}s"
    return f"{whole}.{frac:09d}".rstrip("0") + "s"
