"""What one HTTP stream records for access logs and stats (Envoy's ``StreamInfo``)."""

from __future__ import annotations

import enum
import time
from typing import Any, Optional

from pyevent_envoy._defaults import defaults_base

__all__ = ["ResponseFlag", "StreamInfo"]


class ResponseFlag(enum.Enum):
    """Envoy's response flags, by their access-log short names."""

    NO_ROUTE_FOUND = "NR"
    NO_CLUSTER_FOUND = "NC"
    NO_HEALTHY_UPSTREAM = "UH"
    UPSTREAM_CONNECTION_FAILURE = "UF"
    UPSTREAM_OVERFLOW = "UO"
    UPSTREAM_REQUEST_TIMEOUT = "UT"
    UPSTREAM_REMOTE_RESET = "UR"
    UPSTREAM_CONNECTION_TERMINATION = "UC"
    UPSTREAM_PROTOCOL_ERROR = "UPE"
    LOCAL_RESET = "LR"
    DOWNSTREAM_CONNECTION_TERMINATION = "DC"
    STREAM_IDLE_TIMEOUT = "SI"
    DOWNSTREAM_PROTOCOL_ERROR = "DPE"
    UPSTREAM_RETRY_LIMIT_EXCEEDED = "URX"
    DELAY_INJECTED = "DI"
    FAULT_INJECTED = "FI"
    FAILED_LOCAL_HEALTH_CHECK = "LH"
    RATE_LIMITED = "RL"


# What every stream's info starts with (set in C at creation: see pyevent_envoy._defaults).
_StreamInfoFields = defaults_base(
    "pyevent_envoy.http.stream_info._StreamInfoFields",
    end_monotonic=None,
    response_code=None,
    response_code_details="",
    bytes_received=0,
    bytes_sent=0,
    upstream_host=None,
    # Why the last upstream connection could not be made (Envoy's words), or "".
    upstream_transport_failure_reason="",
    route_name="",
    request_headers=None,
    response_headers=None,
    stream_id="",
    attempt_count=0,
    # A health check request (set by the health check filter): its response
    # codes are not counted in the connection manager's and the cluster's stats.
    health_check=False,
)


class StreamInfo(_StreamInfoFields):
    """Timings, byte counts, the upstream host and the response flags of one stream."""

    __slots__ = (
        "start_time",
        "start_monotonic",
        "protocol",
        "response_flags",
        "downstream_remote_address",
        "downstream_direct_remote_address",
        "downstream_local_address",
        "connection_id",
    )

    def __init__(self, now: float, protocol: str, remote: Any, local: Any = None, connection_id: int = 0) -> None:
        self.start_time = time.time()
        self.start_monotonic = now
        self.protocol = protocol
        # Insertion-ordered (a dict's keys): Envoy prints the flags in the order they were set.
        self.response_flags: dict[ResponseFlag, None] = {}
        self.downstream_remote_address = remote
        self.downstream_direct_remote_address = remote
        self.downstream_local_address: Any = local
        self.connection_id = connection_id

    @property
    def duration(self) -> Optional[float]:
        if self.end_monotonic is None:
            return None
        return self.end_monotonic - self.start_monotonic

    def set_response_flag(self, flag: ResponseFlag) -> None:
        """Record ``flag`` (Envoy's ``setResponseFlag``); setting it again changes nothing."""
        self.response_flags[flag] = None

    def flags_string(self) -> str:
        """Envoy's ``%RESPONSE_FLAGS%``: short names joined with commas in the order set, ``-`` for none."""
        if not self.response_flags:
            return "-"
        return ",".join(flag.value for flag in self.response_flags)
