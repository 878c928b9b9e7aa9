"""Access logs (Envoy's ``envoy.access_loggers.file`` / ``stdout`` / ``stderr``).

One line per finished stream, in Envoy's format-string language
(``%REQ(:METHOD)%``, ``%RESPONSE_CODE%``, ``%RESPONSE_FLAGS%``...), or a JSON
object per line with ``json_format``.  Without a format, Envoy's default::

    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
    %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
    "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%"
    "%UPSTREAM_HOST%"

(one line).  A value that is missing prints ``-`` in text formats and
``null`` in JSON (left out with ``omit_empty_values``).  Lines are appended
with one ``write`` each to a file opened ``O_APPEND``, so workers writing the
same file never interleave within a line.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import threading
from typing import Any, Callable, Optional, Union

from pyevent_envoy.config._format import Command, parse_format

__all__ = ["DEFAULT_FORMAT", "AccessLogFormatter", "FileAccessLog", "from_config"]

DEFAULT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

_Getter = Callable[[Any], Optional[str]]


def _header(headers: Any, names: tuple[str, ...]) -> Optional[str]:
    if headers is None:
        return None
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def _address(addr: Any) -> Optional[str]:
    return None if addr is None else str(addr)


def _address_ip(addr: Any) -> Optional[str]:
    return None if addr is None else addr.ip


def _start_time(fmt: Optional[str]) -> _Getter:
    def render(info: Any) -> str:
        when = datetime.datetime.fromtimestamp(info.start_time, datetime.timezone.utc)
        if not fmt:
            return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        out = fmt
        for digits in (9, 6, 3, 1):  # Envoy's %Nf: N digits of the fraction of a second
            token = f"%{digits}f"
            if token in out:
                out = out.replace(token, f"{when.microsecond * 1000:09d}"[:digits])
        return when.strftime(out)

    return render


def _duration_ms(info: Any) -> Optional[str]:
    duration = info.duration
    return None if duration is None else str(int(duration * 1000))


def _getter(cmd: Command) -> _Getter:
    getter = _untruncated_getter(cmd)
    if cmd.max_length is None:
        return getter
    limit = cmd.max_length
    return lambda info: (lambda v: None if v is None else v[:limit])(getter(info))


def _untruncated_getter(cmd: Command) -> _Getter:
    name = cmd.name
    if name in ("REQ", "RESP", "TRAILER"):
        names = tuple(part.strip().lower() for part in (cmd.argument or "").split("?"))
        names = tuple(":authority" if n == "host" else n for n in names)
        if name == "REQ":
            return lambda info: _header(info.request_headers, names)
        if name == "RESP":
            return lambda info: _header(info.response_headers, names)
        return lambda info: None  # trailers are not recorded
    if name == "START_TIME":
        return _start_time(cmd.argument)
    simple: dict[str, _Getter] = {
        "PROTOCOL": lambda info: info.protocol,
        "RESPONSE_CODE": lambda info: str(info.response_code) if info.response_code is not None else "0",
        "RESPONSE_CODE_DETAILS": lambda info: info.response_code_details or None,
        "RESPONSE_FLAGS": lambda info: info.flags_string(),
        "BYTES_RECEIVED": lambda info: str(info.bytes_received),
        "BYTES_SENT": lambda info: str(info.bytes_sent),
        "DURATION": _duration_ms,
        "REQUEST_DURATION": lambda info: None,
        "RESPONSE_DURATION": lambda info: None,
        "UPSTREAM_HOST": lambda info: _address(getattr(info.upstream_host, "address", None)),
        "UPSTREAM_REMOTE_ADDRESS": lambda info: _address(getattr(info.upstream_host, "address", None)),
        "UPSTREAM_CLUSTER": lambda info: getattr(info.upstream_host, "cluster_name", None) or None,
        "UPSTREAM_LOCAL_ADDRESS": lambda info: None,
        # Envoy prints it with its spaces as underscores.
        "UPSTREAM_TRANSPORT_FAILURE_REASON": lambda info: info.upstream_transport_failure_reason.replace(" ", "_") or None,
        "UPSTREAM_REQUEST_ATTEMPT_COUNT": lambda info: str(info.attempt_count),
        "DOWNSTREAM_REMOTE_ADDRESS": lambda info: _address(info.downstream_remote_address),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": lambda info: _address_ip(info.downstream_remote_address),
        "DOWNSTREAM_REMOTE_PORT": lambda info: str(info.downstream_remote_address.port)
        if info.downstream_remote_address is not None
        else None,
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": lambda info: _address(info.downstream_direct_remote_address),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": lambda info: _address_ip(info.downstream_direct_remote_address),
        "DOWNSTREAM_LOCAL_ADDRESS": lambda info: _address(info.downstream_local_address),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": lambda info: _address_ip(info.downstream_local_address),
        "DOWNSTREAM_LOCAL_PORT": lambda info: str(info.downstream_local_address.port)
        if info.downstream_local_address is not None
        else None,
        "HOSTNAME": lambda info, _host=socket.gethostname(): _host,
        "ROUTE_NAME": lambda info: info.route_name or None,
        "CONNECTION_ID": lambda info: str(info.connection_id),
        "STREAM_ID": lambda info: info.stream_id or None,
    }
    try:
        return simple[name]
    except KeyError:
        raise ValueError(f"format command %{name}% is not supported") from None


class AccessLogFormatter:
    """A compiled text format: ``format(stream_info) -> str``."""

    __slots__ = ("_parts",)

    def __init__(self, text: str) -> None:
        self._parts: tuple[Union[str, _Getter], ...] = tuple(
            part if isinstance(part, str) else _getter(part) for part in parse_format(text)
        )

    def format(self, info: Any) -> str:
        out = []
        for part in self._parts:
            if type(part) is str:
                out.append(part)
            else:
                value = part(info)
                out.append("-" if value is None or value == "" else value)
        return "".join(out)


class _JsonFormatter:
    __slots__ = ("_fields", "_omit_empty")

    def __init__(self, spec: Any, omit_empty: bool) -> None:
        self._fields = self._compile(spec)
        self._omit_empty = omit_empty

    @classmethod
    def _compile(cls, spec: Any) -> Any:
        if isinstance(spec, str):
            parts = parse_format(spec)
            if len(parts) == 1 and not isinstance(parts[0], str):
                return ("single", _getter(parts[0]))
            return ("text", AccessLogFormatter(spec))
        if hasattr(spec, "items"):
            return ("object", {key: cls._compile(value) for key, value in spec.items()})
        return ("literal", spec)

    def _render(self, compiled: Any, info: Any) -> Any:
        kind, value = compiled
        if kind == "single":
            return value(info)
        if kind == "text":
            return value.format(info)
        if kind == "object":
            out = {}
            for key, sub in value.items():
                rendered = self._render(sub, info)
                if rendered is None and self._omit_empty:
                    continue
                out[key] = rendered
            return out
        return value

    def format(self, info: Any) -> str:
        return json.dumps(self._render(self._fields, info), separators=(",", ":")) + "\n"


class FileAccessLog:
    """Appends one formatted line per stream to a file (``/dev/stdout`` and ``/dev/stderr`` work)."""

    _files: dict[str, int] = {}
    _files_lock = threading.Lock()

    def __init__(self, path: str, formatter: Any) -> None:
        self.path = path
        self._formatter = formatter
        with self._files_lock:
            fd = self._files.get(path)
            if fd is None:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self._files[path] = fd
        self._fd = fd

    def log(self, info: Any) -> None:
        try:
            os.write(self._fd, self._formatter.format(info).encode("utf-8", "replace"))
        except OSError:
            pass  # a full disk or a closed pipe must not fail the request


def from_config(config: Any) -> FileAccessLog:
    """A :class:`FileAccessLog` from a parsed ``config.bootstrap.AccessLog``.

    Raises:
        OSError: the file cannot be opened (reported at start-up).
    """
    if config.json_format is not None:
        formatter: Any = _JsonFormatter(config.json_format, config.omit_empty_values)
    else:
        formatter = AccessLogFormatter(config.text_format if config.text_format is not None else DEFAULT_FORMAT)
    return FileAccessLog(config.path, formatter)
