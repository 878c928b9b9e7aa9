"""Reading a bootstrap (plain Python data from YAML or JSON) into the model, with validation.

The reader follows Envoy's proto3 JSON rules: field names in snake_case or
lowerCamelCase, ``null`` for an unset field, integers also as numeric strings,
enumerations by name (any case) or number, booleans also as the strings
``"true"``/``"false"``.  It records every problem with its YAML path and keeps
going, so one pass reports all of them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import enum
import ipaddress
import logging
import math
import re
import types
import uuid
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar

from pyevent_envoy.config import bootstrap as b
from pyevent_envoy.config._envoy_fields import ENVOY_FIELDS
from pyevent_envoy.config._format import parse_format
from pyevent_envoy.config._regex import compile_re2
from pyevent_envoy.config.durations import parse_duration_nanos
from pyevent_envoy.config.errors import ConfigError

__all__ = ["parse_bootstrap"]

_log = logging.getLogger("pyevent_envoy.config")

T = TypeVar("T")

_UINT32_MAX = 2**32 - 1
_MAX_DIRECT_RESPONSE_BODY = 4096
_MAX_HEADER_BYTES = 16384
_INTEGER_RE = re.compile(r"[-+]?[0-9]+")
_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_HEADER_FORBIDDEN = re.compile(r"[\x00\r\n]")
_CAMEL_RE = re.compile(r"[A-Z]")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")


_PLAIN_KEY_RE = re.compile(r"@?[A-Za-z_][A-Za-z0-9_]*")


def _join(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` for a map key that is not a plain name."""
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f'{path}["{key}"]'
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _to_camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class _Ctx:
    """What one parse collects: the errors, and the cluster names routes refer to."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.cluster_refs: list[tuple[str, str, str]] = []  # (path, cluster, "cluster"/"weighted cluster")
        # (path, filter name, config type) of each typed_per_filter_config entry, checked against http_filters.
        self.per_filter_refs: list[tuple[str, str, type]] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(ConfigError(path, reason))

    def mark(self) -> int:
        return len(self.errors)

    def clean_since(self, mark: int) -> bool:
        return len(self.errors) == mark


class _Msg:
    """A mapping read as one Envoy message: its keys checked, its fields read on demand."""

    def __init__(
        self,
        ctx: _Ctx,
        path: str,
        raw: Mapping[str, Any],
        message: str,
        supported: Iterable[str],
        *,
        any_payload: bool = False,
        notes: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.message_name = message
        self.values: dict[str, Any] = {}
        self.keys: dict[str, str] = {}
        self.unsupported: set[str] = set()  # fields named that pyevent-envoy does not support
        known = ENVOY_FIELDS[message]
        supported = frozenset(supported)
        assert supported <= known, (message, supported - known)
        by_camel = {_to_camel(f): f for f in known}
        for key in getattr(raw, "duplicates", ()):
            ctx.error(_join(path, str(key)), "duplicate key")
        for key, value in raw.items():
            if not isinstance(key, str):
                ctx.error(_join(path, str(key)), f"field names must be strings, got {_kind(key)}")
                continue
            if key == "@type" and any_payload:
                continue
            name = key if key in known else by_camel.get(key)
            kpath = _join(path, key)
            if name is None:
                hint = difflib.get_close_matches(key, sorted(supported), n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
                where = f" of {message}" if message else ""
                ctx.error(kpath, f"unknown field{where}{suffix}")
                continue
            if name in self.keys:
                ctx.error(kpath, f"field set twice (as {self.keys[name]!r} and {key!r})")
                continue
            self.keys[name] = key
            if value is None:
                continue  # null leaves a field unset, as in Envoy
            if name not in supported:
                self.unsupported.add(name)
                note = (notes or {}).get(name)
                ctx.error(kpath, note or f"{message}.{name} is not supported by pyevent-envoy")
                continue
            self.values[name] = value

    # -- helpers ---------------------------------------------------------------------------
    def at(self, name: str) -> str:
        return _join(self.path, self.keys.get(name, name))

    def has(self, name: str) -> bool:
        return name in self.values

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def error(self, name: Optional[str], reason: str) -> None:
        self.ctx.error(self.at(name) if name else self.path, reason)

    def oneof(self, group: str, names: Sequence[str], *, required: bool = False) -> Optional[str]:
        """Which member of a oneof is set; an error if several are, or none and one is required."""
        # A null member is unset, as in Envoy; an unsupported member counts as set (it is
        # reported already) so that a missing required member is not reported on top.
        set_names = [n for n in names if n in self.values]
        named = [n for n in names if n in self.values or n in self.unsupported]
        if len(named) > 1:
            self.error(
                named[1],
                f"only one of {', '.join(names)} may be set ({group}); "
                f"{self.keys[named[0]]!r} is already set",
            )
            return None
        if required and not named:
            self.ctx.error(self.path, f"one of {', '.join(names)} is required ({group})")
            return None
        return set_names[0] if set_names else None

    # -- scalars ---------------------------------------------------------------------------
    def string(
        self,
        name: str,
        default: str = "",
        *,
        min_len: int = 0,
        header_name: bool = False,
        header_value: bool = False,
        required_reason: Optional[str] = None,
    ) -> str:
        value = self.values.get(name)
        if value is None:
            if min_len:
                self.error(name, required_reason or "is required and must not be empty")
            return default
        if not isinstance(value, str):
            self.error(name, f"expected a string, got {_kind(value)}")
            return default
        if len(value) < min_len:
            self.error(name, required_reason or "must not be empty")
            return default
        if (header_name or header_value) and _HEADER_FORBIDDEN.search(value):
            self.error(name, "must not contain NUL, CR or LF characters")
            return default
        if (header_name or header_value) and len(value.encode()) > _MAX_HEADER_BYTES:
            self.error(name, f"must be at most {_MAX_HEADER_BYTES} bytes long")
            return default
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        self.error(name, f"expected true or false, got {_kind(value)}")
        return default

    def uint32(
        self,
        name: str,
        default: int = 0,
        *,
        minimum: int = 0,
        maximum: int = _UINT32_MAX,
        range_reason: Optional[str] = None,
    ) -> int:
        value = self.values.get(name)
        if value is None:
            return default
        number = _integer(value)
        if number is None:
            self.error(name, f"expected an integer, got {_kind(value)}")
            return default
        if not 0 <= number <= _UINT32_MAX:
            self.error(name, f"{number} is out of range for an unsigned 32-bit integer")
            return default
        if not minimum <= number <= maximum:
            self.error(name, range_reason or f"must be in [{minimum}, {maximum}], got {number}")
            return default
        return number

    def duration(
        self,
        name: str,
        default: float,
        *,
        greater_than: Optional[float] = None,
    ) -> float:
        value = self.values.get(name)
        if value is None:
            return default
        try:
            nanos = parse_duration_nanos(value)
        except ValueError as exc:
            self.error(name, str(exc))
            return default
        seconds = nanos / 1e9
        if greater_than is not None and not seconds > greater_than:
            limit = "0s" if greater_than == 0 else f"{greater_than:g}s"
            self.error(name, f"must be greater than {limit}")
            return default
        return seconds

    def enum(
        self,
        name: str,
        cls: type[enum.IntEnum],
        default: Any,
        *,
        supported: Optional[Iterable[Any]] = None,
    ) -> Any:
        value = self.values.get(name)
        if value is None:
            return default
        member = None
        if isinstance(value, str):
            member = cls.__members__.get(value.upper())
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                member = cls(value)
            except ValueError:
                member = None
        if member is None:
            self.error(
                name,
                f"unknown {cls.__name__.lstrip('_')} value {value!r} (expected one of {', '.join(cls.__members__)})",
            )
            return default
        if supported is not None and member not in tuple(supported):
            names = ", ".join(m.name for m in supported)
            self.error(name, f"{cls.__name__.lstrip('_')} {member.name} is not supported by pyevent-envoy (supported: {names})")
            return default
        return member

    # -- composites ------------------------------------------------------------------------
    def message(self, name: str, build: Callable[[_Ctx, str, Any], Optional[T]]) -> Optional[T]:
        if name not in self.values:
            return None
        return build(self.ctx, self.at(name), self.values[name])

    def repeated(self, name: str, build: Callable[[_Ctx, str, Any], Optional[T]]) -> tuple[T, ...]:
        value = self.values.get(name)
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            self.error(name, f"expected a list, got {_kind(value)}")
            return ()
        out = []
        base = self.at(name)
        for i, item in enumerate(value):
            path = f"{base}[{i}]"
            if item is None:
                self.ctx.error(path, "list entries must not be null")
                continue
            result = build(self.ctx, path, item)
            if result is not None:
                out.append(result)
        return tuple(out)

    def repeated_strings(self, name: str, *, min_len: int = 0, header_name: bool = False) -> tuple[str, ...]:
        def one(ctx: _Ctx, path: str, item: Any) -> Optional[str]:
            if not isinstance(item, str):
                ctx.error(path, f"expected a string, got {_kind(item)}")
                return None
            if len(item) < min_len:
                ctx.error(path, "must not be empty")
                return None
            if header_name and _HEADER_FORBIDDEN.search(item):
                ctx.error(path, "must not contain NUL, CR or LF characters")
                return None
            return item

        return self.repeated(name, one)


def _integer(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        if _INTEGER_RE.fullmatch(value):
            return int(value)
        if _NUMBER_RE.fullmatch(value):
            f = float(value)
            return int(f) if f.is_integer() else None
    return None


def _msg(
    ctx: _Ctx,
    path: str,
    raw: Any,
    message: str,
    supported: Iterable[str],
    **kwargs: Any,
) -> Optional[_Msg]:
    if not isinstance(raw, Mapping):
        ctx.error(path, f"expected a mapping ({message}), got {_kind(raw)}")
        return None
    return _Msg(ctx, path, raw, message, supported, **kwargs)


def _typed_config(
    ctx: _Ctx,
    path: str,
    raw: Any,
    builders: Mapping[str, Callable[[_Ctx, str, Mapping[str, Any]], Optional[T]]],
    what: str,
) -> Optional[T]:
    """Read an ``Any``: check ``@type`` against the exact type URLs accepted here."""
    if not isinstance(raw, Mapping):
        ctx.error(path, f"expected a mapping with an '@type', got {_kind(raw)}")
        return None
    type_url = raw.get("@type")
    if type_url is None:
        ctx.error(_join(path, "@type"), "is required")
        return None
    if not isinstance(type_url, str):
        ctx.error(_join(path, "@type"), f"expected a string, got {_kind(type_url)}")
        return None
    build = builders.get(type_url)
    if build is None:
        expected = " or ".join(repr(u) for u in builders)
        suffix = type_url.rpartition("/")[2]
        exact = [u for u in builders if u.rpartition("/")[2] == suffix]
        if exact:
            reason = f"type URL must be exactly {exact[0]!r}"
        else:
            reason = f"{what} of type {type_url!r} is not supported by pyevent-envoy (expected {expected})"
        ctx.error(_join(path, "@type"), reason)
        return None
    return build(ctx, path, raw)


# ------------------------------------------------------------------------------------------
# Addresses.


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _socket_address(
    ctx: _Ctx, path: str, raw: Any, *, ip_only: bool, hint: str = ""
) -> Optional[b.SocketAddress]:
    """Read an ``Address`` holding a ``socket_address``."""
    mark = ctx.mark()
    addr = _msg(ctx, path, raw, "Address", {"socket_address"})
    if addr is None:
        return None
    if addr.oneof("address", ("socket_address", "pipe", "envoy_internal_address"), required=True) is None:
        return None
    sock = addr.message("socket_address", _read_socket_address)
    if sock is None or not ctx.clean_since(mark):
        return None
    if ip_only and not _is_ip(sock.address):
        ctx.error(_join(addr.at("socket_address"), "address"), f"malformed IP address: {sock.address}{hint}")
        return None
    return sock


def _read_socket_address(ctx: _Ctx, path: str, raw: Any) -> Optional[b.SocketAddress]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "SocketAddress", {"address", "port_value", "protocol"})
    if m is None:
        return None
    address = m.string("address", min_len=1)
    m.oneof("port_specifier", ("port_value", "named_port"), required=True)
    port = m.uint32("port_value", 0, maximum=65535, range_reason="port must be in [0, 65535]")
    m.enum("protocol", _Protocol, _Protocol.TCP, supported=(_Protocol.TCP,))
    if not ctx.clean_since(mark):
        return None
    return b.SocketAddress(address=address, port_value=port)


class _Protocol(enum.IntEnum):
    TCP = 0
    UDP = 1


def _address_key(addr: b.SocketAddress) -> str:
    try:
        ip = ipaddress.ip_address(addr.address)
    except ValueError:
        return f"{addr.address}:{addr.port_value}"
    return f"[{ip}]:{addr.port_value}" if ip.version == 6 else f"{ip}:{addr.port_value}"


# ------------------------------------------------------------------------------------------
# Access logs and format strings.


def _check_format(ctx: _Ctx, path: str, text: str) -> bool:
    try:
        parse_format(text)
    except ValueError as exc:
        ctx.error(path, str(exc))
        return False
    return True


def _json_format(ctx: _Ctx, path: str, raw: Any) -> Any:
    if isinstance(raw, Mapping):
        out = {}
        for k, v in raw.items():
            if not isinstance(k, str):
                ctx.error(_join(path, str(k)), f"keys must be strings, got {_kind(k)}")
                continue
            out[k] = _json_format(ctx, _join(path, k), v)
        return types.MappingProxyType(out)
    if isinstance(raw, (list, tuple)):
        return tuple(_json_format(ctx, f"{path}[{i}]", v) for i, v in enumerate(raw))
    if isinstance(raw, str):
        _check_format(ctx, path, raw)
        return raw
    if raw is None or isinstance(raw, (bool, int, float)):
        return raw
    ctx.error(path, f"unsupported value {_kind(raw)}")
    return None


def _data_source_text(ctx: _Ctx, path: str, raw: Any) -> Optional[bytes]:
    """A ``DataSource`` given inline (``inline_string`` or base64 ``inline_bytes``)."""
    m = _msg(ctx, path, raw, "DataSource", {"inline_string", "inline_bytes"})
    if m is None:
        return None
    which = m.oneof("specifier", ("filename", "inline_bytes", "inline_string", "environment_variable"), required=True)
    if which == "inline_string":
        return m.string("inline_string").encode()
    if which == "inline_bytes":
        value = m.raw("inline_bytes")
        if not isinstance(value, str):
            m.error("inline_bytes", f"expected a base64 string, got {_kind(value)}")
            return None
        try:
            text = value.replace("-", "+").replace("_", "/")
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            m.error("inline_bytes", "is not valid base64")
            return None
    return None


def _substitution_format(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[Optional[str], Any, bool]]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "SubstitutionFormatString",
        {"text_format", "json_format", "text_format_source", "omit_empty_values"},
    )
    if m is None:
        return None
    which = m.oneof("format", ("text_format", "json_format", "text_format_source"), required=True)
    text: Optional[str] = None
    json_fmt: Any = None
    if which == "text_format":
        text = m.string("text_format")
        _check_format(ctx, m.at("text_format"), text)
    elif which == "text_format_source":
        data = m.message("text_format_source", _data_source_text)
        if data is not None:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                m.error("text_format_source", "must be UTF-8 text")
            else:
                _check_format(ctx, _join(m.at("text_format_source"), "inline_string"), text)
    elif which == "json_format":
        raw_json = m.raw("json_format")
        if not isinstance(raw_json, Mapping):
            m.error("json_format", f"expected a mapping, got {_kind(raw_json)}")
        else:
            json_fmt = _json_format(ctx, m.at("json_format"), raw_json)
    omit = m.boolean("omit_empty_values")
    if not ctx.clean_since(mark):
        return None
    return text, json_fmt, omit


def _access_log(ctx: _Ctx, path: str, raw: Any) -> Optional[b.AccessLog]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "AccessLog", {"name", "typed_config"})
    if m is None:
        return None
    name = m.string("name")
    if not m.has("typed_config"):
        m.error("typed_config", "is required")
        return None

    def file_log(ctx: _Ctx, tpath: str, traw: Mapping[str, Any]) -> Optional[b.AccessLog]:
        f = _Msg(
            ctx,
            tpath,
            traw,
            "FileAccessLog",
            {"path", "format", "log_format"},
            any_payload=True,
            notes={
                "json_format": "FileAccessLog.json_format is not supported by pyevent-envoy "
                "(deprecated: use log_format.json_format)",
                "typed_json_format": "FileAccessLog.typed_json_format is not supported by pyevent-envoy "
                "(deprecated: use log_format.json_format)",
            },
        )
        log_path = f.string("path", min_len=1)
        which = f.oneof("access_log_format", ("format", "json_format", "typed_json_format", "log_format"))
        return _finish_log(ctx, f, log_path, which)

    def stream_log(target: str) -> Callable[[_Ctx, str, Mapping[str, Any]], Optional[b.AccessLog]]:
        message = "StdoutAccessLog" if target == "/dev/stdout" else "StderrAccessLog"

        def build(ctx: _Ctx, tpath: str, traw: Mapping[str, Any]) -> Optional[b.AccessLog]:
            f = _Msg(ctx, tpath, traw, message, {"log_format"}, any_payload=True)
            return _finish_log(ctx, f, target, f.oneof("access_log_format", ("log_format",)))

        return build

    def _finish_log(ctx: _Ctx, f: _Msg, log_path: str, which: Optional[str]) -> Optional[b.AccessLog]:
        text = None
        json_fmt = None
        omit = False
        if which == "format":
            text = f.string("format")
            _check_format(ctx, f.at("format"), text)
        elif which == "log_format":
            fmt = f.message("log_format", _substitution_format)
            if fmt is not None:
                text, json_fmt, omit = fmt
        if not ctx.clean_since(mark):
            return None
        return b.AccessLog(name=name, path=log_path, text_format=text, json_format=json_fmt, omit_empty_values=omit)

    return m.message(
        "typed_config",
        lambda c, p, r: _typed_config(
            c,
            p,
            r,
            {
                b.ACCESS_LOG_FILE_TYPE_URL: file_log,
                b.ACCESS_LOG_STDOUT_TYPE_URL: stream_log("/dev/stdout"),
                b.ACCESS_LOG_STDERR_TYPE_URL: stream_log("/dev/stderr"),
            },
            "access logger",
        ),
    )


# ------------------------------------------------------------------------------------------
# Headers.


def _check_modifiable(ctx: _Ctx, path: str, key: str, verb: str) -> bool:
    if key.startswith(":") or key.lower() == "host":
        ctx.error(path, f"':'-prefixed or host headers may not be {verb}")
        return False
    return True


def _header_value_option(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HeaderValueOption]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "HeaderValueOption", {"header", "append", "append_action", "keep_empty_value"})
    if m is None:
        return None
    if "header" not in m.values:
        m.error("header", "is required")
        header = None
    else:
        header = m.message("header", _header_value)
    if m.has("append") and m.has("append_action"):
        m.error("append_action", "append and append_action may not both be set")
    action = m.enum("append_action", b.HeaderAppendAction, b.HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD)
    if m.has("append"):
        action = (
            b.HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
            if m.boolean("append", True)
            else b.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
        )
    keep = m.boolean("keep_empty_value")
    if header is None or not ctx.clean_since(mark):
        return None
    key, value = header
    return b.HeaderValueOption(key=key, value=value, append_action=action, keep_empty_value=keep)


def _header_value(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[str, str]]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "HeaderValue", {"key", "value"})
    if m is None:
        return None
    key = m.string("key", min_len=1, header_name=True)
    value = m.string("value", header_value=True)
    if not ctx.clean_since(mark):
        return None
    if not _check_modifiable(ctx, m.at("key"), key, "modified"):
        return None
    if not _check_format(ctx, m.at("value"), value):
        return None
    return key, value


def _headers_to_remove(ctx: _Ctx, m: _Msg, name: str, *, min_len: int) -> tuple[str, ...]:
    def one(ctx: _Ctx, path: str, item: Any) -> Optional[str]:
        if not isinstance(item, str):
            ctx.error(path, f"expected a string, got {_kind(item)}")
            return None
        if len(item) < min_len:
            ctx.error(path, "must not be empty")
            return None
        if _HEADER_FORBIDDEN.search(item):
            ctx.error(path, "must not contain NUL, CR or LF characters")
            return None
        return item if _check_modifiable(ctx, path, item, "removed") else None

    return m.repeated(name, one)


_HEADER_FIELDS = (
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
)


def _header_mutations(ctx: _Ctx, m: _Msg, *, remove_min_len: int) -> dict[str, tuple]:
    return {
        "request_headers_to_add": m.repeated("request_headers_to_add", _header_value_option),
        "request_headers_to_remove": _headers_to_remove(ctx, m, "request_headers_to_remove", min_len=remove_min_len),
        "response_headers_to_add": m.repeated("response_headers_to_add", _header_value_option),
        "response_headers_to_remove": _headers_to_remove(ctx, m, "response_headers_to_remove", min_len=remove_min_len),
    }


# ------------------------------------------------------------------------------------------
# Matchers.


def _regex_matcher(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RegexMatcher]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "RegexMatcher", {"regex", "google_re2"})
    if m is None:
        return None
    if m.has("google_re2"):
        _msg(ctx, m.at("google_re2"), m.raw("google_re2"), "GoogleRE2", ())
    regex = m.string("regex", min_len=1)
    if not ctx.clean_since(mark):
        return None
    try:
        pattern = compile_re2(regex)
    except ValueError as exc:
        m.error("regex", str(exc))
        return None
    return b.RegexMatcher(regex=regex, pattern=pattern)


def _string_matcher(ctx: _Ctx, path: str, raw: Any) -> Optional[b.StringMatcher]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "StringMatcher", {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"})
    if m is None:
        return None
    which = m.oneof("match_pattern", ("exact", "prefix", "suffix", "safe_regex", "contains", "custom"), required=True)
    kwargs: dict[str, Any] = {}
    if which == "safe_regex":
        kwargs["safe_regex"] = m.message("safe_regex", _regex_matcher)
    elif which == "exact":
        kwargs["exact"] = m.string("exact")
    elif which in ("prefix", "suffix", "contains"):
        kwargs[which] = m.string(which, min_len=1)
    ignore_case = m.boolean("ignore_case")
    if ignore_case and which == "safe_regex":
        m.error("ignore_case", "ignore_case has no effect for safe_regex")
    if not ctx.clean_since(mark):
        return None
    return b.StringMatcher(ignore_case=ignore_case, **kwargs)


_DEPRECATED_HEADER_MATCHES = ("exact_match", "prefix_match", "suffix_match", "contains_match")


def _header_matcher(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HeaderMatcher]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "HeaderMatcher",
        {
            "name",
            "exact_match",
            "safe_regex_match",
            "present_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "string_match",
            "invert_match",
            "treat_missing_header_as_empty",
        },
    )
    if m is None:
        return None
    name = m.string("name", min_len=1, header_name=True)
    which = m.oneof(
        "header_match_specifier",
        (
            "exact_match",
            "safe_regex_match",
            "range_match",
            "present_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "string_match",
        ),
    )
    string_match = None
    present = None
    if which == "string_match":
        string_match = m.message("string_match", _string_matcher)
    elif which == "safe_regex_match":
        regex = m.message("safe_regex_match", _regex_matcher)
        string_match = b.StringMatcher(safe_regex=regex) if regex is not None else None
    elif which in _DEPRECATED_HEADER_MATCHES:
        value = m.string(which, min_len=0 if which == "exact_match" else 1)
        field = which[: -len("_match")]
        string_match = b.StringMatcher(**{field: value})
    elif which == "present_match":
        present = m.boolean("present_match")
    else:
        present = True  # no match field: the header must be present
    invert = m.boolean("invert_match")
    treat_missing = m.boolean("treat_missing_header_as_empty")
    if not ctx.clean_since(mark):
        return None
    return b.HeaderMatcher(
        name=name,
        string_match=string_match,
        present_match=present,
        invert_match=invert,
        treat_missing_header_as_empty=treat_missing,
    )


def _route_match(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RouteMatch]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "RouteMatch", {"prefix", "path", "safe_regex", "case_sensitive", "headers"})
    if m is None:
        return None
    which = m.oneof(
        "path_specifier",
        ("prefix", "path", "safe_regex", "connect_matcher", "path_separated_prefix", "path_match_policy"),
        required=True,
    )
    kwargs: dict[str, Any] = {}
    if which in ("prefix", "path"):
        kwargs[which] = m.string(which, header_value=True)
    elif which == "safe_regex":
        kwargs["safe_regex"] = m.message("safe_regex", _regex_matcher)
    case_sensitive = m.boolean("case_sensitive", True)
    headers = m.repeated("headers", _header_matcher)
    if not ctx.clean_since(mark):
        return None
    return b.RouteMatch(case_sensitive=case_sensitive, headers=headers, **kwargs)


# ------------------------------------------------------------------------------------------
# Route actions.


def _cluster_weight(ctx: _Ctx, path: str, raw: Any) -> Optional[b.ClusterWeight]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "ClusterWeight", {"name", "weight"})
    if m is None:
        return None
    if not m.has("name") and "cluster_header" not in m.unsupported:
        m.error(None, "name is required (at least one of name or cluster_header must be set)")
    name = m.string("name", min_len=1) if m.has("name") else ""
    if not m.has("weight"):
        m.error("weight", "is required")
    weight = m.uint32("weight")
    if not ctx.clean_since(mark):
        return None
    ctx.cluster_refs.append((m.at("name"), name, "weighted cluster"))
    return b.ClusterWeight(name=name, weight=weight)


def _weighted_clusters(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[b.ClusterWeight, ...]]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "WeightedCluster",
        {"clusters"},
        notes={
            "total_weight": "WeightedCluster.total_weight is not supported by pyevent-envoy "
            "(deprecated; Envoy ignores it: remove it)"
        },
    )
    if m is None:
        return None
    clusters = m.repeated("clusters", _cluster_weight)
    if not ctx.clean_since(mark):
        return None
    if not clusters:
        m.error("clusters", "must contain at least one cluster")
        return None
    total = sum(c.weight for c in clusters)
    if total == 0:
        m.error("clusters", "the sum of the weights must be greater than 0")
        return None
    if total > _UINT32_MAX:
        m.error("clusters", f"the sum of the weights exceeds {_UINT32_MAX}")
        return None
    return clusters


def _route_action(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RouteAction]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "RouteAction",
        {
            "cluster",
            "weighted_clusters",
            "prefix_rewrite",
            "host_rewrite_literal",
            "auto_host_rewrite",
            "timeout",
            "upgrade_configs",
            "retry_policy",
        },
    )
    if m is None:
        return None
    which = m.oneof(
        "cluster_specifier",
        ("cluster", "cluster_header", "weighted_clusters", "cluster_specifier_plugin", "inline_cluster_specifier_plugin"),
        required=True,
    )
    cluster = None
    weighted = None
    if which == "cluster":
        cluster = m.string("cluster", min_len=1)
        if ctx.clean_since(mark):
            ctx.cluster_refs.append((m.at("cluster"), cluster, "cluster"))
    elif which == "weighted_clusters":
        weighted = m.message("weighted_clusters", _weighted_clusters)
    prefix_rewrite = m.string("prefix_rewrite", header_value=True) if m.has("prefix_rewrite") else None
    host_which = m.oneof(
        "host_rewrite_specifier",
        ("host_rewrite_literal", "auto_host_rewrite", "host_rewrite_header", "host_rewrite_path_regex", "host_rewrite"),
    )
    host_literal = m.string("host_rewrite_literal", header_value=True) if host_which == "host_rewrite_literal" else None
    auto_host = m.boolean("auto_host_rewrite") if host_which == "auto_host_rewrite" else False
    timeout = m.duration("timeout", 15.0)
    upgrades = _upgrade_configs(ctx, m, "RouteAction.UpgradeConfig")
    retry_policy = m.message("retry_policy", _retry_policy)
    if not ctx.clean_since(mark):
        return None
    return b.RouteAction(
        cluster=cluster,
        weighted_clusters=weighted,
        prefix_rewrite=prefix_rewrite,
        host_rewrite_literal=host_literal,
        auto_host_rewrite=auto_host,
        timeout=timeout,
        upgrade_configs=upgrades,
        retry_policy=retry_policy,
    )


def _retry_policy(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RetryPolicy]:
    """A route's or a virtual host's ``retry_policy``, validated as Envoy 1.40 validates it."""
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "RetryPolicy",
        {
            "retry_on",
            "num_retries",
            "per_try_timeout",
            "retry_back_off",
            "retriable_status_codes",
            "retriable_headers",
            "retriable_request_headers",
            "host_selection_retry_max_attempts",
        },
    )
    if m is None:
        return None
    retry_on = m.string("retry_on")
    for value in (v.strip() for v in retry_on.split(",")):
        if value and value not in b.RETRY_ON_VALUES:
            # Envoy ignores it without a word; a typo ("5XX") would then
            # silently disable retries, so say so (the configuration loads).
            _log.warning(
                "%s: unknown retry_on value %r is ignored, as Envoy ignores it (known: %s)",
                m.at("retry_on"),
                value,
                ", ".join(b.RETRY_ON_VALUES),
            )
    num_retries = m.uint32("num_retries", 1)
    per_try_timeout = m.duration("per_try_timeout", 0.0)
    back_off = m.message("retry_back_off", _retry_back_off)

    def status_code(ctx: _Ctx, item_path: str, item: Any) -> Optional[int]:
        number = _integer(item)
        if number is None or not 0 <= number <= _UINT32_MAX:
            ctx.error(item_path, f"expected an unsigned 32-bit integer, got {_kind(item) if number is None else number}")
            return None
        return number

    codes = m.repeated("retriable_status_codes", status_code)
    retriable_headers = m.repeated("retriable_headers", _header_matcher)
    retriable_request_headers = m.repeated("retriable_request_headers", _header_matcher)
    host_attempts = 1
    if m.has("host_selection_retry_max_attempts"):
        value = m.raw("host_selection_retry_max_attempts")
        number = _integer(value)
        if number is None or not -(2**63) <= number < 2**63:
            m.error("host_selection_retry_max_attempts", f"expected a 64-bit integer, got {_kind(value)}")
        else:
            host_attempts = number
    if not ctx.clean_since(mark):
        return None
    return b.RetryPolicy(
        retry_on=retry_on,
        num_retries=num_retries,
        per_try_timeout=per_try_timeout,
        retry_back_off=back_off,
        retriable_status_codes=codes,
        retriable_headers=retriable_headers,
        retriable_request_headers=retriable_request_headers,
        host_selection_retry_max_attempts=host_attempts,
    )


def _whole_ms(seconds: float) -> float:
    """``seconds`` cut to whole milliseconds, at least one (Envoy reads back-off intervals so)."""
    return max(1, math.floor(seconds * 1000 + 1e-6)) / 1000


def _retry_back_off(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RetryBackOff]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "RetryPolicy.RetryBackOff", {"base_interval", "max_interval"})
    if m is None:
        return None
    if not m.has("base_interval"):
        m.error("base_interval", "is required")
    base = m.duration("base_interval", 0.0, greater_than=0.0)
    maximum = m.duration("max_interval", 0.0, greater_than=0.0) if m.has("max_interval") else None
    if not ctx.clean_since(mark):
        return None
    base = _whole_ms(base)
    if maximum is not None:
        maximum = _whole_ms(maximum)
        if maximum < base:
            m.error("max_interval", "must be greater than or equal to the base_interval")
            return None
    return b.RetryBackOff(base_interval=base, max_interval=maximum)


def _upgrade_configs(ctx: _Ctx, m: _Msg, message: str) -> tuple[b.UpgradeConfig, ...]:
    """``m``'s ``upgrade_configs``: the HCM's or a route's (``message`` says which).

    As Envoy 1.40 validates them: a route's ``upgrade_type`` must be a
    non-empty header value, the HCM's may be anything; the same type twice
    (compared case-insensitively) is an error in both.  CONNECT is refused:
    CONNECT tunnels are not in the supported subset.
    """
    on_route = message == "RouteAction.UpgradeConfig"

    def one(ctx: _Ctx, path: str, raw: Any) -> Optional[b.UpgradeConfig]:
        mark = ctx.mark()
        u = _msg(ctx, path, raw, message, {"upgrade_type", "enabled"})
        if u is None:
            return None
        if on_route:
            upgrade_type = u.string("upgrade_type", min_len=1, header_value=True)
        else:
            upgrade_type = u.string("upgrade_type")
        if upgrade_type.lower() == "connect":
            u.error("upgrade_type", "CONNECT tunnels are not supported by pyevent-envoy")
        enabled = u.boolean("enabled", True)  # a BoolValue: unset means true in both messages
        if not ctx.clean_since(mark):
            return None
        return b.UpgradeConfig(upgrade_type=upgrade_type, enabled=enabled)

    mark = ctx.mark()
    configs = m.repeated("upgrade_configs", one)
    if ctx.clean_since(mark):
        seen: set[str] = set()
        for i, config in enumerate(configs):
            key = config.upgrade_type.lower()
            if key in seen:
                reason = (
                    f"duplicate upgrade {config.upgrade_type!r}"
                    if on_route
                    else f"multiple upgrade configs with the same name: {config.upgrade_type!r}"
                )
                ctx.error(f"{m.at('upgrade_configs')}[{i}].upgrade_type", reason)
            seen.add(key)
    return configs


def _redirect_action(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RedirectAction]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "RedirectAction",
        {
            "https_redirect",
            "scheme_redirect",
            "host_redirect",
            "port_redirect",
            "path_redirect",
            "prefix_rewrite",
            "response_code",
            "strip_query",
        },
    )
    if m is None:
        return None
    scheme_which = m.oneof("scheme_rewrite_specifier", ("https_redirect", "scheme_redirect"))
    https = m.boolean("https_redirect") if scheme_which == "https_redirect" else False
    scheme = m.string("scheme_redirect", header_value=True) if scheme_which == "scheme_redirect" else None
    host = m.string("host_redirect", header_value=True)
    port = m.uint32("port_redirect", 0, maximum=65535, range_reason="port must be in [0, 65535]")
    path_which = m.oneof("path_rewrite_specifier", ("path_redirect", "prefix_rewrite", "regex_rewrite"))
    path_redirect = m.string("path_redirect", header_value=True) if path_which == "path_redirect" else None
    prefix_rewrite = m.string("prefix_rewrite", header_value=True) if path_which == "prefix_rewrite" else None
    code = m.enum("response_code", b.RedirectResponseCode, b.RedirectResponseCode.MOVED_PERMANENTLY)
    strip = m.boolean("strip_query")
    if not ctx.clean_since(mark):
        return None
    return b.RedirectAction(
        https_redirect=https,
        scheme_redirect=scheme,
        host_redirect=host,
        port_redirect=port,
        path_redirect=path_redirect,
        prefix_rewrite=prefix_rewrite,
        response_code=code,
        strip_query=strip,
    )


def _direct_response(ctx: _Ctx, path: str, raw: Any) -> Optional[b.DirectResponseAction]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "DirectResponseAction", {"status", "body"})
    if m is None:
        return None
    if not m.has("status"):
        m.error("status", "is required (an HTTP status in [200, 600))")
    status = m.uint32("status", 0, minimum=200, maximum=599, range_reason="must be in [200, 600)")
    body = m.message("body", _data_source_text)
    if body is not None and len(body) > _MAX_DIRECT_RESPONSE_BODY:
        m.error("body", f"response body size is {len(body)} bytes; maximum is {_MAX_DIRECT_RESPONSE_BODY}")
    if not ctx.clean_since(mark):
        return None
    return b.DirectResponseAction(status=status, body=body)


def _route(ctx: _Ctx, path: str, raw: Any) -> Optional[b.Route]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "Route",
        {"name", "match", "route", "redirect", "direct_response", "typed_per_filter_config", *_HEADER_FIELDS},
    )
    if m is None:
        return None
    name = m.string("name")
    if not m.has("match"):
        m.error("match", "is required")
        match = None
    else:
        match = m.message("match", _route_match)
    which = m.oneof(
        "action",
        ("route", "redirect", "direct_response", "filter_action", "non_forwarding_action"),
        required=True,
    )
    action: Any = None
    builders = {"route": _route_action, "redirect": _redirect_action, "direct_response": _direct_response}
    if which in builders:
        action = m.message(which, builders[which])
    mutations = _header_mutations(ctx, m, remove_min_len=1)
    per_filter = _typed_per_filter_config(ctx, m)
    if not ctx.clean_since(mark) or match is None or action is None:
        return None
    return b.Route(match=match, action=action, name=name, typed_per_filter_config=per_filter, **mutations)


# ------------------------------------------------------------------------------------------
# Route configuration.


def _virtual_host(
    ctx: _Ctx, path: str, raw: Any
) -> Optional[tuple[Optional[b.VirtualHost], tuple[tuple[int, str], ...], str]]:
    """The virtual host (``None`` if it has errors), and its domains for the route-table checks."""
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "VirtualHost",
        {"name", "domains", "routes", "retry_policy", "typed_per_filter_config", *_HEADER_FIELDS},
    )
    if m is None:
        return None
    name = m.string("name", min_len=1)
    raw_domains = m.raw("domains")
    if raw_domains is None or (isinstance(raw_domains, (list, tuple)) and not raw_domains):
        m.error("domains", "must contain at least one domain")
    domains = m.repeated_strings("domains", header_name=True)
    routes = m.repeated("routes", _route)
    mutations = _header_mutations(ctx, m, remove_min_len=1)
    retry_policy = m.message("retry_policy", _retry_policy)
    per_filter = _typed_per_filter_config(ctx, m)
    indexed = tuple(
        (i, d) for i, d in enumerate(raw_domains if isinstance(raw_domains, (list, tuple)) else ()) if d in domains
    )
    if not ctx.clean_since(mark):
        return None, indexed, m.at("domains")
    vhost = b.VirtualHost(
        name=name,
        domains=domains,
        routes=routes,
        retry_policy=retry_policy,
        typed_per_filter_config=per_filter,
        **mutations,
    )
    return vhost, indexed, m.at("domains")


def _route_configuration(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RouteConfiguration]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "RouteConfiguration", {"name", "virtual_hosts", *_HEADER_FIELDS})
    if m is None:
        return None
    name = m.string("name")
    hosts = m.repeated("virtual_hosts", _virtual_host)
    mutations = _header_mutations(ctx, m, remove_min_len=0)
    _check_domains(ctx, [(domains, dpath) for _, domains, dpath in hosts])
    if not ctx.clean_since(mark):
        return None
    return b.RouteConfiguration(name=name, virtual_hosts=tuple(h for h, _, _ in hosts), **mutations)


def _check_domains(ctx: _Ctx, hosts: Sequence[tuple[tuple[tuple[int, str], ...], str]]) -> None:
    """Envoy's domain rules: one ``*`` per route table, no duplicate domain (any case)."""
    seen: dict[tuple[str, str], str] = {}
    default_at: Optional[str] = None
    for domains, dpath in hosts:
        for i, domain in domains:
            here = f"{dpath}[{i}]"
            lower = domain.lower()
            if lower == "*":
                if default_at is not None:
                    ctx.error(here, f"only one virtual host may have the wildcard domain '*' (also at {default_at})")
                else:
                    default_at = here
                continue
            stars = lower.count("*")
            if stars > 1 or (stars == 1 and not (lower.startswith("*") or lower.endswith("*"))):
                ctx.error(
                    here,
                    f"invalid domain {domain!r}: '*' may only be the whole domain or a leading or trailing "
                    "wildcard ('*.example.com', 'example.*')",
                )
                continue
            kind = "suffix" if lower.startswith("*") else "prefix" if lower.endswith("*") else "exact"
            key = (kind, lower)
            if key in seen:
                ctx.error(here, f"duplicate domain {domain!r} (also at {seen[key]}); domains are case-insensitive")
            else:
                seen[key] = here


# ------------------------------------------------------------------------------------------
# HTTP filters: each supported filter's typed_config, and the registry of them by type URL.


def _router(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.Router]:
    mark = ctx.mark()
    _Msg(ctx, path, raw, "Router", (), any_payload=True)
    return b.Router() if ctx.clean_since(mark) else None


def _percent(ctx: _Ctx, path: str, raw: Any) -> Optional[float]:
    """A ``type.v3.Percent``: ``{value: <double in [0, 100]>}``."""
    m = _msg(ctx, path, raw, "Percent", {"value"})
    if m is None:
        return None
    value = m.raw("value")
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        m.error("value", f"expected a number, got {_kind(value)}")
        return None
    try:
        number = float(value)
    except ValueError:
        m.error("value", f"expected a number, got {value!r}")
        return None
    if not 0.0 <= number <= 100.0:
        m.error("value", f"must be inside range [0, 100], got {number:g}")
        return None
    return number


def _health_check_filter(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.HealthCheckFilterConfig]:
    mark = ctx.mark()
    m = _Msg(
        ctx,
        path,
        raw,
        "health_check.v3.HealthCheck",
        {"pass_through_mode", "cache_time", "cluster_min_healthy_percentages", "headers"},
        any_payload=True,
    )
    if not m.has("pass_through_mode"):
        m.error("pass_through_mode", "is required")
    pass_through = m.boolean("pass_through_mode")
    cache_time = m.duration("cache_time", 0.0)
    if cache_time > 0 and not pass_through:
        m.error("cache_time", "must not be set when pass_through_mode is disabled")
    headers = m.repeated("headers", _header_matcher)
    percentages: dict[str, float] = {}
    raw_percentages = m.raw("cluster_min_healthy_percentages")
    if raw_percentages is not None:
        if not isinstance(raw_percentages, Mapping):
            m.error("cluster_min_healthy_percentages", f"expected a mapping of cluster names, got {_kind(raw_percentages)}")
        else:
            base = m.at("cluster_min_healthy_percentages")
            for cluster_name, value in raw_percentages.items():
                value_path = _join(base, str(cluster_name))
                if not isinstance(cluster_name, str):
                    ctx.error(value_path, f"cluster names must be strings, got {_kind(cluster_name)}")
                    continue
                percent = _percent(ctx, value_path, value)
                if percent is not None:
                    percentages[cluster_name] = percent
    if not ctx.clean_since(mark):
        return None
    return b.HealthCheckFilterConfig(
        pass_through_mode=pass_through,
        headers=headers,
        cache_time=cache_time,
        cluster_min_healthy_percentages=types.MappingProxyType(percentages),
    )


def _token_bucket(ctx: _Ctx, path: str, raw: Any) -> Optional[b.TokenBucket]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "TokenBucket", {"max_tokens", "tokens_per_fill", "fill_interval"})
    if m is None:
        return None
    max_tokens = m.uint32("max_tokens")
    tokens_per_fill = m.uint32("tokens_per_fill", 1, minimum=1, range_reason="must be greater than 0")
    if not m.has("fill_interval"):
        m.error("fill_interval", "is required")
    fill_interval = m.duration("fill_interval", 0.0, greater_than=0.0)
    if ctx.clean_since(mark) and max_tokens > 0 and fill_interval < 0.05:
        m.error("fill_interval", "local rate limit token bucket fill timer must be >= 50ms")
    if not ctx.clean_since(mark):
        return None
    return b.TokenBucket(max_tokens=max_tokens, fill_interval=fill_interval, tokens_per_fill=tokens_per_fill)


class _DenominatorType(enum.IntEnum):
    """``FractionalPercent.DenominatorType``."""

    HUNDRED = 0
    TEN_THOUSAND = 1
    MILLION = 2


_DENOMINATORS = {_DenominatorType.HUNDRED: 100, _DenominatorType.TEN_THOUSAND: 10_000, _DenominatorType.MILLION: 1_000_000}


def _fractional_percent(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[int, int]]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "FractionalPercent", {"numerator", "denominator"})
    if m is None:
        return None
    numerator = m.uint32("numerator")
    denominator = m.enum("denominator", _DenominatorType, _DenominatorType.HUNDRED)
    return (numerator, _DENOMINATORS[denominator]) if ctx.clean_since(mark) else None


def _runtime_fractional_percent(ctx: _Ctx, path: str, raw: Any) -> Optional[b.RuntimeFractionalPercent]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "RuntimeFractionalPercent", {"default_value", "runtime_key"})
    if m is None:
        return None
    if not m.has("default_value"):
        m.error("default_value", "is required")
    value = m.message("default_value", _fractional_percent)
    runtime_key = m.string("runtime_key")
    if not ctx.clean_since(mark) or value is None:
        return None
    if runtime_key:
        # There is no runtime: say that the key does nothing (the configuration loads).
        _log.info("%s: there is no runtime; the default_value applies", m.at("runtime_key"))
    return b.RuntimeFractionalPercent(numerator=value[0], denominator=value[1], runtime_key=runtime_key)


# Envoy's type.v3.StatusCode, the values an HttpStatus may name (read by name in any case, or by number).
_StatusCode = enum.IntEnum(
    "StatusCode",
    {
        name.upper(): number
        for name, number in (
            ("Continue", 100), ("OK", 200), ("Created", 201), ("Accepted", 202),
            ("NonAuthoritativeInformation", 203), ("NoContent", 204), ("ResetContent", 205),
            ("PartialContent", 206), ("MultiStatus", 207), ("AlreadyReported", 208), ("IMUsed", 226),
            ("MultipleChoices", 300), ("MovedPermanently", 301), ("Found", 302), ("SeeOther", 303),
            ("NotModified", 304), ("UseProxy", 305), ("TemporaryRedirect", 307), ("PermanentRedirect", 308),
            ("BadRequest", 400), ("Unauthorized", 401), ("PaymentRequired", 402), ("Forbidden", 403),
            ("NotFound", 404), ("MethodNotAllowed", 405), ("NotAcceptable", 406),
            ("ProxyAuthenticationRequired", 407), ("RequestTimeout", 408), ("Conflict", 409), ("Gone", 410),
            ("LengthRequired", 411), ("PreconditionFailed", 412), ("PayloadTooLarge", 413), ("URITooLong", 414),
            ("UnsupportedMediaType", 415), ("RangeNotSatisfiable", 416), ("ExpectationFailed", 417),
            ("MisdirectedRequest", 421), ("UnprocessableEntity", 422), ("Locked", 423),
            ("FailedDependency", 424), ("UpgradeRequired", 426), ("PreconditionRequired", 428),
            ("TooManyRequests", 429), ("RequestHeaderFieldsTooLarge", 431), ("InternalServerError", 500),
            ("NotImplemented", 501), ("BadGateway", 502), ("ServiceUnavailable", 503), ("GatewayTimeout", 504),
            ("HTTPVersionNotSupported", 505), ("VariantAlsoNegotiates", 506), ("InsufficientStorage", 507),
            ("LoopDetected", 508), ("NotExtended", 510), ("NetworkAuthenticationRequired", 511),
        )
    },
)


def _http_status(ctx: _Ctx, path: str, raw: Any) -> Optional[int]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "HttpStatus", {"code"})
    if m is None:
        return None
    if not m.has("code"):
        m.error("code", "is required (an HTTP status code; Empty is not allowed)")
        return None
    code = m.enum("code", _StatusCode, None)
    return int(code) if ctx.clean_since(mark) and code is not None else None


class _XRateLimitHeadersRFCVersion(enum.IntEnum):
    """``common.ratelimit.v3.XRateLimitHeadersRFCVersion``."""

    OFF = 0
    DRAFT_VERSION_03 = 1


_MAX_HEADERS_TO_ADD = 10


def _local_ratelimit(
    ctx: _Ctx, path: str, raw: Mapping[str, Any], *, per_route: bool = False
) -> Optional[b.LocalRateLimit]:
    """A ``LocalRateLimit``, in ``http_filters`` or (``per_route``) in a ``typed_per_filter_config``."""
    mark = ctx.mark()
    descriptors_note = (
        "local_ratelimit.v3.LocalRateLimit.{} is not supported by pyevent-envoy "
        "(only the default token bucket is: rate limit descriptors are not)"
    )
    m = _Msg(
        ctx,
        path,
        raw,
        "local_ratelimit.v3.LocalRateLimit",
        {
            "stat_prefix",
            "status",
            "token_bucket",
            "filter_enabled",
            "filter_enforced",
            "request_headers_to_add_when_not_enforced",
            "response_headers_to_add",
            "local_rate_limit_per_downstream_connection",
            "enable_x_ratelimit_headers",
            "always_consume_default_token_bucket",
        },
        any_payload=True,
        notes={
            name: descriptors_note.format(name)
            for name in ("descriptors", "stage", "vh_rate_limits", "rate_limits", "max_dynamic_descriptors")
        }
        | {
            "local_cluster_rate_limit": "local_ratelimit.v3.LocalRateLimit.local_cluster_rate_limit is not "
            "supported by pyevent-envoy (it shares the limit across the local cluster's instances)",
            "rate_limited_as_resource_exhausted": "local_ratelimit.v3.LocalRateLimit."
            "rate_limited_as_resource_exhausted is not supported by pyevent-envoy (gRPC is not supported)",
        },
    )
    stat_prefix = m.string("stat_prefix", min_len=1)
    status = m.message("status", _http_status) or 429
    token_bucket = m.message("token_bucket", _token_bucket)
    if per_route and not m.has("token_bucket") and ctx.clean_since(mark):
        m.error("token_bucket", "local rate limit token bucket must be set for per filter configs")
    enabled = m.message("filter_enabled", _runtime_fractional_percent)
    enforced = m.message("filter_enforced", _runtime_fractional_percent)
    headers: dict[str, tuple[b.HeaderValueOption, ...]] = {}
    for name in ("request_headers_to_add_when_not_enforced", "response_headers_to_add"):
        headers[name] = m.repeated(name, _header_value_option)
        raw_list = m.raw(name)
        if isinstance(raw_list, (list, tuple)) and len(raw_list) > _MAX_HEADERS_TO_ADD:
            m.error(name, f"must contain no more than {_MAX_HEADERS_TO_ADD} items")
    per_connection = m.boolean("local_rate_limit_per_downstream_connection")
    x_headers = m.enum("enable_x_ratelimit_headers", _XRateLimitHeadersRFCVersion, _XRateLimitHeadersRFCVersion.OFF)
    always_consume = m.boolean("always_consume_default_token_bucket", True)
    if not ctx.clean_since(mark):
        return None
    return b.LocalRateLimit(
        stat_prefix=stat_prefix,
        token_bucket=token_bucket,
        # Envoy answers 429 for a configured status below 400.
        status=status if status >= 400 else 429,
        filter_enabled=enabled,
        filter_enforced=enforced,
        local_rate_limit_per_downstream_connection=per_connection,
        enable_x_ratelimit_headers=x_headers is _XRateLimitHeadersRFCVersion.DRAFT_VERSION_03,
        always_consume_default_token_bucket=always_consume,
        **headers,
    )


# ------------------------------------------------------------------------------------------
# The compressor (gzip), buffer and fault filters.


class _CompressionLevel(enum.IntEnum):
    DEFAULT_COMPRESSION = 0
    BEST_SPEED = 1
    COMPRESSION_LEVEL_1 = 1
    COMPRESSION_LEVEL_2 = 2
    COMPRESSION_LEVEL_3 = 3
    COMPRESSION_LEVEL_4 = 4
    COMPRESSION_LEVEL_5 = 5
    COMPRESSION_LEVEL_6 = 6
    COMPRESSION_LEVEL_7 = 7
    COMPRESSION_LEVEL_8 = 8
    COMPRESSION_LEVEL_9 = 9
    BEST_COMPRESSION = 9


class _CompressionStrategy(enum.IntEnum):
    # The numbers are zlib's, which Envoy's gzip compressor passes on.
    DEFAULT_STRATEGY = 0
    FILTERED = 1
    HUFFMAN_ONLY = 2
    RLE = 3
    FIXED = 4


def _gzip(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.Gzip]:
    mark = ctx.mark()
    m = _Msg(
        ctx,
        path,
        raw,
        "Gzip",
        {"memory_level", "compression_level", "compression_strategy", "window_bits", "chunk_size"},
        any_payload=True,
    )
    memory_level = m.uint32("memory_level", 5, minimum=1, maximum=9)
    level = m.enum("compression_level", _CompressionLevel, _CompressionLevel.DEFAULT_COMPRESSION)
    strategy = m.enum("compression_strategy", _CompressionStrategy, _CompressionStrategy.DEFAULT_STRATEGY)
    window_bits = m.uint32("window_bits", 12, minimum=9, maximum=15)
    chunk_size = m.uint32("chunk_size", 4096, minimum=4096, maximum=65536)
    if not ctx.clean_since(mark):
        return None
    return b.Gzip(
        memory_level=memory_level,
        compression_level=-1 if level == _CompressionLevel.DEFAULT_COMPRESSION else int(level),  # zlib's default
        compression_strategy=int(strategy),
        window_bits=window_bits,
        chunk_size=chunk_size,
    )


def _compressor_library(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[str, b.Gzip]]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "TypedExtensionConfig", {"name", "typed_config"})
    if m is None:
        return None
    name = m.string("name", min_len=1)
    if not m.has("typed_config"):
        m.error("typed_config", "is required")
    gzip = m.message(
        "typed_config",
        lambda c, p, r: _typed_config(c, p, r, {b.GZIP_COMPRESSOR_TYPE_URL: _gzip}, "compressor library"),
    )
    return (name, gzip) if ctx.clean_since(mark) and gzip is not None else None


def _runtime_feature_flag(ctx: _Ctx, path: str, raw: Any) -> Optional[bool]:
    """A ``RuntimeFeatureFlag``: its ``default_value`` (pyevent-envoy has no runtime to override it)."""
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "RuntimeFeatureFlag", {"default_value", "runtime_key"})
    if m is None:
        return None
    if not m.has("default_value"):
        m.error("default_value", "is required")
    value = m.boolean("default_value", True)
    m.string("runtime_key")
    return value if ctx.clean_since(mark) else None


def _common_direction_config(ctx: _Ctx, path: str, raw: Any) -> Optional[dict[str, Any]]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "Compressor.CommonDirectionConfig",
        {"enabled", "min_content_length", "content_type"},
        notes={"content_type_matcher": "content_type_matcher is not supported by pyevent-envoy (use content_type)"},
    )
    if m is None:
        return None
    enabled = m.message("enabled", _runtime_feature_flag)
    min_length = m.uint32("min_content_length", 0)
    types = m.repeated_strings("content_type")
    if not ctx.clean_since(mark):
        return None
    # Envoy reads a min_content_length of 0 (or none) as its default, 30.
    return {"enabled": True if enabled is None else enabled, "min_content_length": min_length or 30, "content_types": types}


def _response_direction_config(ctx: _Ctx, path: str, raw: Any) -> Optional[dict[str, Any]]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "Compressor.ResponseDirectionConfig",
        {"common_config", "disable_on_etag_header", "remove_accept_encoding_header"},
    )
    if m is None:
        return None
    common = m.message("common_config", _common_direction_config) or {}
    disable_on_etag = m.boolean("disable_on_etag_header")
    remove_accept_encoding = m.boolean("remove_accept_encoding_header")
    if not ctx.clean_since(mark):
        return None
    return dict(common, disable_on_etag_header=disable_on_etag, remove_accept_encoding_header=remove_accept_encoding)


_COMPRESSOR_DEPRECATED = "is deprecated in Envoy and not supported by pyevent-envoy (use response_direction_config)"


def _compressor(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.Compressor]:
    mark = ctx.mark()
    m = _Msg(
        ctx,
        path,
        raw,
        "Compressor",
        {"compressor_library", "response_direction_config", "choose_first"},
        any_payload=True,
        notes={
            **{
                name: f"Compressor.{name} {_COMPRESSOR_DEPRECATED}"
                for name in ("content_length", "content_type", "disable_on_etag_header", "remove_accept_encoding_header", "runtime_enabled")
            },
            "request_direction_config": "Compressor.request_direction_config is not supported by pyevent-envoy "
            "(request bodies are not compressed)",
        },
    )
    if not m.has("compressor_library"):
        m.error("compressor_library", "is required")
    library = m.message("compressor_library", _compressor_library)
    response = m.message("response_direction_config", _response_direction_config)
    choose_first = m.boolean("choose_first")
    if not ctx.clean_since(mark) or library is None:
        return None
    return b.Compressor(
        library_name=library[0],
        gzip=library[1],
        choose_first=choose_first,
        has_response_direction_config=m.has("response_direction_config"),
        **(response or {}),
    )


def _buffer(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.Buffer]:
    mark = ctx.mark()
    m = _Msg(ctx, path, raw, "Buffer", {"max_request_bytes"}, any_payload=True)
    if not m.has("max_request_bytes"):
        m.error("max_request_bytes", "is required")
    limit = m.uint32("max_request_bytes", 0, minimum=1, range_reason="must be greater than 0")
    return b.Buffer(max_request_bytes=limit) if ctx.clean_since(mark) else None


def _empty_message(message: str) -> Callable[[_Ctx, str, Any], Optional[bool]]:
    def read(ctx: _Ctx, path: str, raw: Any) -> Optional[bool]:
        return True if _msg(ctx, path, raw, message, ()) is not None else None

    return read


def _fault_abort(ctx: _Ctx, path: str, raw: Any) -> Optional[b.FaultAbort]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "FaultAbort",
        {"http_status", "header_abort", "percentage"},
        notes={
            "grpc_status": "FaultAbort.grpc_status is not supported by pyevent-envoy (gRPC is not proxied)",
            "response_body": "FaultAbort.response_body is not supported by pyevent-envoy",
        },
    )
    if m is None:
        return None
    which = m.oneof("error_type", ("http_status", "grpc_status", "header_abort"), required=True)
    status = None
    if which == "http_status":
        status = m.uint32("http_status", minimum=200, maximum=599, range_reason="must be in [200, 600)")
    header_abort = which == "header_abort" and m.message("header_abort", _empty_message("FaultAbort.HeaderAbort")) is True
    percentage = m.message("percentage", _fractional_percent) or (0, 100)
    if not ctx.clean_since(mark):
        return None
    return b.FaultAbort(http_status=status, header_abort=header_abort, percentage=percentage)


def _fault_delay(ctx: _Ctx, path: str, raw: Any) -> Optional[b.FaultDelay]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "FaultDelay", {"fixed_delay", "header_delay", "percentage"})
    if m is None:
        return None
    which = m.oneof("fault_delay_secifier", ("fixed_delay", "header_delay"), required=True)
    fixed_ms = None
    if which == "fixed_delay":
        # Envoy reads the delay in whole milliseconds (PROTOBUF_GET_MS_REQUIRED).
        fixed_ms = int(m.duration("fixed_delay", 0.0, greater_than=0) * 1000 + 1e-9)
    header_delay = which == "header_delay" and m.message("header_delay", _empty_message("FaultDelay.HeaderDelay")) is True
    percentage = m.message("percentage", _fractional_percent) or (0, 100)
    if not ctx.clean_since(mark):
        return None
    return b.FaultDelay(fixed_delay_ms=fixed_ms, header_delay=header_delay, percentage=percentage)


def _http_fault(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.HttpFault]:
    mark = ctx.mark()
    runtime_note = "runtime overrides are not supported by pyevent-envoy (it has no runtime)"
    m = _Msg(
        ctx,
        path,
        raw,
        "HTTPFault",
        {
            "delay",
            "abort",
            "upstream_cluster",
            "headers",
            "downstream_nodes",
            "max_active_faults",
            "disable_downstream_cluster_stats",
        },
        any_payload=True,
        notes={
            **{
                name: f"HTTPFault.{name}: {runtime_note}"
                for name in (
                    "delay_percent_runtime",
                    "abort_percent_runtime",
                    "delay_duration_runtime",
                    "abort_http_status_runtime",
                    "max_active_faults_runtime",
                    "response_rate_limit_percent_runtime",
                    "abort_grpc_status_runtime",
                )
            },
            "response_rate_limit": "HTTPFault.response_rate_limit is not supported by pyevent-envoy",
            "filter_metadata": "HTTPFault.filter_metadata is not supported by pyevent-envoy",
        },
    )
    abort = m.message("abort", _fault_abort)
    delay = m.message("delay", _fault_delay)
    upstream_cluster = m.string("upstream_cluster")
    headers = m.repeated("headers", _header_matcher)
    nodes = m.repeated_strings("downstream_nodes")
    max_active = m.uint32("max_active_faults") if m.has("max_active_faults") else None
    disable_cluster_stats = m.boolean("disable_downstream_cluster_stats")
    if not ctx.clean_since(mark):
        return None
    return b.HttpFault(
        abort=abort,
        delay=delay,
        upstream_cluster=upstream_cluster,
        headers=headers,
        downstream_nodes=nodes,
        max_active_faults=max_active,
        disable_downstream_cluster_stats=disable_cluster_stats,
    )


#: The HTTP filters pyevent-envoy runs, by ``typed_config`` type URL: each entry reads that
#: filter's config into its model.  The router is terminal (last in ``http_filters``).
_HTTP_FILTER_CONFIGS: dict[str, Callable[[_Ctx, str, Mapping[str, Any]], Any]] = {
    b.ROUTER_TYPE_URL: _router,
    b.HEALTH_CHECK_FILTER_TYPE_URL: _health_check_filter,
    b.LOCAL_RATELIMIT_TYPE_URL: _local_ratelimit,
    b.COMPRESSOR_TYPE_URL: _compressor,
    b.BUFFER_TYPE_URL: _buffer,
    b.FAULT_TYPE_URL: _http_fault,
}

#: The filters that take a per-route (``typed_per_filter_config``) config, by type URL.
_PER_ROUTE_FILTER_CONFIGS: dict[str, Callable[[_Ctx, str, Mapping[str, Any]], Any]] = {
    b.LOCAL_RATELIMIT_TYPE_URL: lambda c, p, r: _local_ratelimit(c, p, r, per_route=True),
}

#: The model class of each per-route config, and the filter config it overrides.
_PER_ROUTE_OVERRIDES = {b.LocalRateLimit: b.LocalRateLimit}


def _http_filter(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HttpFilter]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "HttpFilter", {"name", "typed_config"})
    if m is None:
        return None
    name = m.string("name", min_len=1)
    if not m.has("typed_config") and "config_discovery" not in m.unsupported:
        m.error("typed_config", "is required")
    config = m.message("typed_config", lambda c, p, r: _typed_config(c, p, r, _HTTP_FILTER_CONFIGS, "HTTP filter"))
    if not ctx.clean_since(mark) or config is None:
        return None
    return b.HttpFilter(name=name, typed_config=config)


def _check_filter_chain(ctx: _Ctx, m: _Msg, filters: Sequence[b.HttpFilter]) -> None:
    """Envoy's rule: the terminal router is last, and only there."""
    if not filters or not isinstance(filters[-1].typed_config, b.Router):
        where = f"{m.at('http_filters')}[{len(filters) - 1}]" if filters else m.at("http_filters")
        what = f"the last filter, {filters[-1].name!r}, is not terminal: " if filters else ""
        m.ctx.error(where, f"{what}http_filters must end with the router filter (typed_config @type {b.ROUTER_TYPE_URL!r})")
    for index, flt in enumerate(filters[:-1]):
        if isinstance(flt.typed_config, b.Router):
            m.ctx.error(
                f"{m.at('http_filters')}[{index}]",
                f"the router filter {flt.name!r} is terminal and must be the last filter in the HTTP filter chain",
            )


def _typed_per_filter_config(ctx: _Ctx, m: _Msg) -> Mapping[str, Any]:
    """A route's or virtual host's ``typed_per_filter_config``: per-filter overrides by filter name.

    Only filters with a per-route config take one (the local rate limit);
    every name is checked against the connection manager's ``http_filters``
    once those are read (:func:`_check_per_filter_refs`).
    """
    raw = m.raw("typed_per_filter_config")
    if raw is None:
        return types.MappingProxyType({})
    if not isinstance(raw, Mapping):
        m.error("typed_per_filter_config", f"expected a mapping of HTTP filter names, got {_kind(raw)}")
        return types.MappingProxyType({})
    base = m.at("typed_per_filter_config")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        path = _join(base, str(name))
        if not isinstance(name, str) or not name:
            ctx.error(path, "filter names must be non-empty strings")
            continue
        type_url = value.get("@type") if isinstance(value, Mapping) else None
        if type_url in _HTTP_FILTER_CONFIGS and type_url not in _PER_ROUTE_FILTER_CONFIGS:
            ctx.error(_join(path, "@type"), f"the filter {name} doesn't support virtual host or route specific configurations")
            continue
        config = _typed_config(ctx, path, value, _PER_ROUTE_FILTER_CONFIGS, "per-route filter config")
        if config is not None:
            out[name] = config
            ctx.per_filter_refs.append((path, name, type(config)))
    return types.MappingProxyType(out)


def _check_per_filter_refs(ctx: _Ctx, refs: Sequence[tuple[str, str, type]], filters: Sequence[b.HttpFilter]) -> None:
    """Each ``typed_per_filter_config`` name must be one of ``filters`` that takes that config.

    Stricter than Envoy, which ignores an entry no filter uses: here a
    misspelt name would silently leave the route without its override.
    """
    kinds = {f.name: type(f.typed_config) for f in filters}
    for path, name, config_type in refs:
        kind = kinds.get(name)
        overrides = _PER_ROUTE_OVERRIDES[config_type]
        if kind is None:
            known = ", ".join(repr(n) for n, k in kinds.items() if k is overrides) or "none"
            ctx.error(path, f"no HTTP filter named {name!r} in http_filters takes this per-route config (those that do: {known})")
        elif kind is not overrides:
            ctx.error(path, f"the filter {name} doesn't support virtual host or route specific configurations")


# ------------------------------------------------------------------------------------------
# The HTTP connection manager.


def _hcm(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.HttpConnectionManager]:
    mark = ctx.mark()
    m = _Msg(
        ctx,
        path,
        raw,
        "HttpConnectionManager",
        {
            "stat_prefix",
            "codec_type",
            "route_config",
            "http_filters",
            "use_remote_address",
            "xff_num_trusted_hops",
            "server_name",
            "generate_request_id",
            "request_timeout",
            "stream_idle_timeout",
            "common_http_protocol_options",
            "delayed_close_timeout",
            "max_request_headers_kb",
            "drain_timeout",
            "access_log",
            "http_protocol_options",
            "upgrade_configs",
            "internal_address_config",
        },
        any_payload=True,
    )
    stat_prefix = m.string("stat_prefix", min_len=1)
    codec = m.enum(
        "codec_type", b.CodecType, b.CodecType.AUTO, supported=(b.CodecType.AUTO, b.CodecType.HTTP1)
    )
    which = m.oneof("route_specifier", ("rds", "route_config", "scoped_routes"), required=True)
    route_config = None
    refs_start = len(ctx.per_filter_refs)
    if which == "route_config":
        route_config = m.message("route_config", _route_configuration)
    filters_start = ctx.mark()
    filters = m.repeated("http_filters", _http_filter)
    if ctx.clean_since(filters_start):
        _check_filter_chain(ctx, m, filters)
        _check_per_filter_refs(ctx, ctx.per_filter_refs[refs_start:], filters)
    access_log = m.repeated("access_log", _access_log)
    use_remote = m.boolean("use_remote_address")
    xff = m.uint32("xff_num_trusted_hops")
    server_name = m.string("server_name", header_value=True) or "envoy"  # proto3: "" is unset
    generate_id = m.boolean("generate_request_id", True)
    request_timeout = m.duration("request_timeout", 0.0)
    stream_idle = m.duration("stream_idle_timeout", 300.0)
    drain = m.duration("drain_timeout", 5.0)
    delayed_close = m.duration("delayed_close_timeout", 1.0)
    max_kb = m.uint32(
        "max_request_headers_kb", 60, minimum=1, maximum=8192, range_reason="must be in (0, 8192]"
    )
    common = m.message("common_http_protocol_options", _http_protocol_options) or b.HttpProtocolOptions()
    http1 = m.message("http_protocol_options", _http1_protocol_options) or b.Http1ProtocolOptions()
    upgrades = _upgrade_configs(ctx, m, "HttpConnectionManager.UpgradeConfig")
    internal = m.message("internal_address_config", _internal_address_config)
    if not ctx.clean_since(mark) or route_config is None:
        return None
    return b.HttpConnectionManager(
        stat_prefix=stat_prefix,
        route_config=route_config,
        http_filters=filters,
        codec_type=codec,
        access_log=access_log,
        use_remote_address=use_remote,
        xff_num_trusted_hops=xff,
        server_name=server_name,
        generate_request_id=generate_id,
        request_timeout=request_timeout,
        stream_idle_timeout=stream_idle,
        drain_timeout=drain,
        delayed_close_timeout=delayed_close,
        max_request_headers_kb=max_kb,
        common_http_protocol_options=common,
        http_protocol_options=http1,
        upgrade_configs=upgrades,
        internal_address_config=internal,
    )


def _internal_address_config(ctx: _Ctx, path: str, raw: Any) -> Optional[b.InternalAddressConfig]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "HttpConnectionManager.InternalAddressConfig",
        {"cidr_ranges"},
        notes={
            "unix_sockets": "HttpConnectionManager.InternalAddressConfig.unix_sockets is not supported by "
            "pyevent-envoy (listeners are TCP only)"
        },
    )
    if m is None:
        return None
    ranges = m.repeated("cidr_ranges", _cidr_range)
    return b.InternalAddressConfig(cidr_ranges=ranges) if ctx.clean_since(mark) else None


def _cidr_range(ctx: _Ctx, path: str, raw: Any) -> Optional[b.CidrRange]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "CidrRange", {"address_prefix", "prefix_len"})
    if m is None:
        return None
    prefix = m.string("address_prefix", min_len=1)
    length = m.uint32("prefix_len", 0, maximum=128, range_reason="must be at most 128")
    if not ctx.clean_since(mark):
        return None
    if not _is_ip(prefix):
        m.error("address_prefix", f"invalid ip/mask combo '{prefix}/{length}' (format is <ip>/<# mask bits>)")
        return None
    return b.CidrRange(address_prefix=prefix, prefix_len=length)


def _http_protocol_options(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HttpProtocolOptions]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "HttpProtocolOptions", {"idle_timeout"})
    if m is None:
        return None
    idle = m.duration("idle_timeout", 3600.0)
    return b.HttpProtocolOptions(idle_timeout=idle) if ctx.clean_since(mark) else None


def _http1_protocol_options(ctx: _Ctx, path: str, raw: Any) -> Optional[b.Http1ProtocolOptions]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "Http1ProtocolOptions", {"accept_http_10", "default_host_for_http_10"})
    if m is None:
        return None
    accept = m.boolean("accept_http_10")
    host = m.string("default_host_for_http_10")
    return b.Http1ProtocolOptions(accept_http_10=accept, default_host_for_http_10=host) if ctx.clean_since(mark) else None


# ------------------------------------------------------------------------------------------
# Listeners.


def _network_filter(ctx: _Ctx, path: str, raw: Any) -> Optional[b.NetworkFilter]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "Filter", {"name", "typed_config"})
    if m is None:
        return None
    name = m.string("name", min_len=1)
    if not m.has("typed_config") and "config_discovery" not in m.unsupported:
        m.error("typed_config", "is required")
    hcm = m.message(
        "typed_config", lambda c, p, r: _typed_config(c, p, r, {b.HCM_TYPE_URL: _hcm}, "network filter")
    )
    if not ctx.clean_since(mark) or hcm is None:
        return None
    return b.NetworkFilter(name=name, typed_config=hcm)


def _filter_chain(ctx: _Ctx, path: str, raw: Any) -> Optional[b.FilterChain]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "FilterChain", {"filters", "name", "transport_socket"})
    if m is None:
        return None
    name = m.string("name")
    filters = m.repeated("filters", _network_filter)
    tls = _transport_socket(m, downstream=True)
    if ctx.clean_since(mark):
        if not filters:
            m.error(
                "filters",
                "must hold the envoy.filters.network.http_connection_manager filter "
                "(a filter chain without filters only closes connections)",
            )
        elif len(filters) > 1:
            ctx.error(
                f"{m.at('filters')}[0]",
                "the HTTP connection manager is a terminal filter and must be the last network filter",
            )
    if not ctx.clean_since(mark):
        return None
    return b.FilterChain(filters=filters, name=name, transport_socket=tls)


def _listener(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[b.Listener, _Msg]]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "Listener", {"name", "address", "filter_chains", "per_connection_buffer_limit_bytes"})
    if m is None:
        return None
    name = m.string("name") or str(uuid.uuid4())
    address = None
    if not m.has("address"):
        m.error("address", "is required")
    else:
        address = m.message("address", lambda c, p, r: _socket_address(c, p, r, ip_only=True))
    chains = m.repeated("filter_chains", _filter_chain)
    raw_chains = m.raw("filter_chains")
    if raw_chains is None or (isinstance(raw_chains, (list, tuple)) and not raw_chains):
        m.error("filter_chains", "no filter chains specified")
    elif isinstance(raw_chains, (list, tuple)) and len(raw_chains) > 1:
        ctx.error(
            f"{m.at('filter_chains')}[1]",
            "only one filter chain per listener is supported: filter_chain_match is not, and "
            "Envoy rejects several chains with the same (empty) match",
        )
    buffer_limit = m.uint32("per_connection_buffer_limit_bytes", b.DEFAULT_BUFFER_LIMIT_BYTES)
    if not ctx.clean_since(mark) or address is None:
        return None
    return b.Listener(name=name, address=address, filter_chains=chains, per_connection_buffer_limit_bytes=buffer_limit), m


def _transport_socket(m: _Msg, *, downstream: bool) -> Optional[b.TlsContext]:
    """A filter chain's (``downstream``) or cluster's ``transport_socket``: see :mod:`._tls`."""
    from pyevent_envoy.config._tls import transport_socket  # it imports this module's helpers

    return m.message("transport_socket", lambda c, p, r: transport_socket(c, p, r, downstream=downstream))


# ------------------------------------------------------------------------------------------
# Clusters.


def _lb_endpoint(ctx: _Ctx, path: str, raw: Any) -> Optional[b.LbEndpoint]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "LbEndpoint", {"endpoint", "load_balancing_weight"})
    if m is None:
        return None
    which = m.oneof("host_identifier", ("endpoint", "endpoint_name"))
    address = None
    if which == "endpoint":
        endpoint = _msg(ctx, m.at("endpoint"), m.raw("endpoint"), "Endpoint", {"address"})
        if endpoint is not None:
            if not endpoint.has("address"):
                endpoint.error("address", "is required")
            else:
                address = endpoint.message("address", lambda c, p, r: _socket_address(c, p, r, ip_only=False))
    elif "endpoint_name" not in m.unsupported:
        m.error("endpoint", "is required (the endpoint's address)")
    weight = m.uint32("load_balancing_weight", 1, minimum=1, range_reason="must be at least 1")
    if not ctx.clean_since(mark) or address is None:
        return None
    return b.LbEndpoint(address=address, load_balancing_weight=weight)


def _locality_lb_endpoints(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[b.LocalityLbEndpoints, list[str]]]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "LocalityLbEndpoints", {"lb_endpoints"})
    if m is None:
        return None
    endpoints = m.repeated("lb_endpoints", _lb_endpoint)
    if not ctx.clean_since(mark):
        return None
    paths = [f"{m.at('lb_endpoints')}[{i}].endpoint.address.socket_address.address" for i in range(len(endpoints))]
    return b.LocalityLbEndpoints(lb_endpoints=endpoints), paths


def _load_assignment(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[b.ClusterLoadAssignment, list[str]]]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "ClusterLoadAssignment", {"cluster_name", "endpoints"})
    if m is None:
        return None
    name = m.string("cluster_name", min_len=1)
    localities = m.repeated("endpoints", _locality_lb_endpoints)
    if not ctx.clean_since(mark):
        return None
    paths = [p for _, ps in localities for p in ps]
    return b.ClusterLoadAssignment(cluster_name=name, endpoints=tuple(loc for loc, _ in localities)), paths


def _thresholds(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[b.Thresholds, str]]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "Thresholds",
        {"priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "track_remaining"},
    )
    if m is None:
        return None
    t = b.Thresholds(
        priority=m.enum("priority", b.RoutingPriority, b.RoutingPriority.DEFAULT),
        max_connections=m.uint32("max_connections", 1024),
        max_pending_requests=m.uint32("max_pending_requests", 1024),
        max_requests=m.uint32("max_requests", 1024),
        max_retries=m.uint32("max_retries", 3),
        track_remaining=m.boolean("track_remaining"),
    )
    return (t, m.at("priority")) if ctx.clean_since(mark) else None


def _circuit_breakers(ctx: _Ctx, path: str, raw: Any) -> Optional[b.CircuitBreakers]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "CircuitBreakers", {"thresholds"})
    if m is None:
        return None
    items = m.repeated("thresholds", _thresholds)
    seen: dict[b.RoutingPriority, int] = {}
    for i, (t, _ppath) in enumerate(items):
        if t.priority in seen:
            ctx.error(
                f"{m.at('thresholds')}[{i}].priority",
                f"duplicate thresholds for priority {t.priority.name} (also thresholds[{seen[t.priority]}])",
            )
        else:
            seen[t.priority] = i
    if not ctx.clean_since(mark):
        return None
    return b.CircuitBreakers(thresholds=tuple(t for t, _ in items))


def _upstream_protocol_options(ctx: _Ctx, path: str, raw: Any) -> Optional[b.Http1ProtocolOptions]:
    """``typed_extension_protocol_options``: only an explicit HTTP/1 upstream, with no options."""
    mark = ctx.mark()
    if not isinstance(raw, Mapping):
        ctx.error(path, f"expected a mapping, got {_kind(raw)}")
        return None
    result = None
    for key in getattr(raw, "duplicates", ()):
        ctx.error(_join(path, str(key)), "duplicate key")
    for key, value in raw.items():
        kpath = _join(path, str(key))
        if key != b.UPSTREAM_HTTP_PROTOCOL_OPTIONS_NAME:
            ctx.error(
                kpath,
                f"protocol options {key!r} are not supported by pyevent-envoy "
                f"(only {b.UPSTREAM_HTTP_PROTOCOL_OPTIONS_NAME!r})",
            )
            continue
        result = _typed_config(
            ctx,
            kpath,
            value,
            {b.UPSTREAM_HTTP_PROTOCOL_OPTIONS_TYPE_URL: _upstream_http_options},
            "protocol options",
        )
    return result if ctx.clean_since(mark) else None


def _upstream_http_options(ctx: _Ctx, path: str, raw: Mapping[str, Any]) -> Optional[b.Http1ProtocolOptions]:
    mark = ctx.mark()
    m = _Msg(ctx, path, raw, "UpstreamHttpProtocolOptions", {"explicit_http_config"}, any_payload=True)
    which = m.oneof(
        "upstream_protocol_options",
        ("explicit_http_config", "use_downstream_protocol_config", "auto_config"),
        required=True,
    )
    if which == "explicit_http_config":
        cpath = m.at("explicit_http_config")
        e = _msg(ctx, cpath, m.raw("explicit_http_config"), "ExplicitHttpConfig", {"http_protocol_options"})
        if e is not None:
            e.oneof(
                "protocol_config",
                ("http_protocol_options", "http2_protocol_options", "http3_protocol_options"),
                required=True,
            )
            if e.has("http_protocol_options"):
                _msg(
                    ctx,
                    e.at("http_protocol_options"),
                    e.raw("http_protocol_options"),
                    "Http1ProtocolOptions",
                    (),
                )
    return b.Http1ProtocolOptions() if ctx.clean_since(mark) else None


_HEALTH_CHECK_NOTES = {
    "name": "HealthCheck.name is not supported by pyevent-envoy (one health check per cluster)",
    "grpc_health_check": "HealthCheck.grpc_health_check is not supported by pyevent-envoy "
    "(upstreams are HTTP/1.1; use http_health_check or tcp_health_check)",
    "custom_health_check": "HealthCheck.custom_health_check is not supported by pyevent-envoy "
    "(use http_health_check or tcp_health_check)",
    "event_log_path": "HealthCheck.event_log_path is not supported by pyevent-envoy (no health check event log)",
    "event_logger": "HealthCheck.event_logger is not supported by pyevent-envoy (no health check event log)",
    "tls_options": "HealthCheck.tls_options is not supported by pyevent-envoy (upstream TLS is not supported)",
    "transport_socket_match_criteria": "HealthCheck.transport_socket_match_criteria is not supported by "
    "pyevent-envoy (upstream transport sockets are not supported)",
}


def _health_check(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HealthCheck]:
    """One ``HealthCheck``, validated as Envoy 1.40 validates it."""
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "HealthCheck",
        {
            "timeout",
            "interval",
            "initial_jitter",
            "interval_jitter",
            "interval_jitter_percent",
            "unhealthy_threshold",
            "healthy_threshold",
            "reuse_connection",
            "http_health_check",
            "tcp_health_check",
            "no_traffic_interval",
            "no_traffic_healthy_interval",
            "unhealthy_interval",
            "unhealthy_edge_interval",
            "healthy_edge_interval",
            # Both only choose what goes to the event log; without one they do nothing, in Envoy too.
            "always_log_health_check_failures",
            "always_log_health_check_success",
        },
        notes=_HEALTH_CHECK_NOTES,
    )
    if m is None:
        return None
    for required in ("timeout", "interval", "unhealthy_threshold", "healthy_threshold"):
        if not m.has(required):
            m.error(required, "is required")
    timeout = m.duration("timeout", 0.0, greater_than=0.0)
    interval = m.duration("interval", 0.0, greater_than=0.0)

    def optional_interval(name: str) -> Optional[float]:
        return m.duration(name, 0.0, greater_than=0.0) if m.has(name) else None

    fields: dict[str, Any] = {
        name: optional_interval(name)
        for name in ("no_traffic_healthy_interval", "unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval")
    }
    which = m.oneof(
        "health_checker",
        ("http_health_check", "tcp_health_check", "grpc_health_check", "custom_health_check"),
        required=True,
    )
    check = b.HealthCheck(
        timeout=timeout,
        interval=interval,
        unhealthy_threshold=m.uint32("unhealthy_threshold"),
        healthy_threshold=m.uint32("healthy_threshold"),
        interval_jitter=m.duration("interval_jitter", 0.0),
        interval_jitter_percent=m.uint32("interval_jitter_percent"),
        initial_jitter=m.duration("initial_jitter", 0.0),
        no_traffic_interval=m.duration("no_traffic_interval", 60.0, greater_than=0.0),
        reuse_connection=m.boolean("reuse_connection", True),
        http_health_check=m.message("http_health_check", _http_health_check) if which == "http_health_check" else None,
        tcp_health_check=m.message("tcp_health_check", _tcp_health_check) if which == "tcp_health_check" else None,
        **fields,
    )
    m.boolean("always_log_health_check_failures")
    m.boolean("always_log_health_check_success")
    return check if ctx.clean_since(mark) else None


def _http_health_check(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HttpHealthCheck]:
    mark = ctx.mark()
    unsupported = "HealthCheck.HttpHealthCheck.{} is not supported by pyevent-envoy"
    m = _msg(
        ctx,
        path,
        raw,
        "HealthCheck.HttpHealthCheck",
        {
            "host",
            "path",
            "request_headers_to_add",
            "request_headers_to_remove",
            "expected_statuses",
            "retriable_statuses",
            "codec_client_type",
        },
        notes={
            "send": unsupported.format("send") + " (not implemented in Envoy either)",
            "receive": unsupported.format("receive") + " (only the response status is checked)",
            "response_buffer_size": unsupported.format("response_buffer_size") + " (the body is not checked)",
            "method": unsupported.format("method") + " (health checks use GET)",
            "service_name_matcher": unsupported.format("service_name_matcher"),
        },
    )
    if m is None:
        return None
    check_path = m.string("path", min_len=1, header_value=True)
    host = m.string("host", header_value=True)
    headers_to_add = m.repeated("request_headers_to_add", _health_check_header)
    headers_to_remove = _headers_to_remove(ctx, m, "request_headers_to_remove", min_len=0)
    expected = m.repeated("expected_statuses", _status_range("expected"))
    retriable = m.repeated("retriable_statuses", _status_range("retriable"))
    m.enum("codec_client_type", b.CodecClientType, b.CodecClientType.HTTP1, supported=(b.CodecClientType.HTTP1,))
    if not ctx.clean_since(mark):
        return None
    return b.HttpHealthCheck(
        path=check_path,
        host=host,
        request_headers_to_add=headers_to_add,
        request_headers_to_remove=headers_to_remove,
        expected_statuses=expected,
        retriable_statuses=retriable,
    )


def _health_check_header(ctx: _Ctx, path: str, raw: Any) -> Optional[b.HeaderValueOption]:
    """A ``request_headers_to_add`` entry of a health check: literal values only."""
    option = _header_value_option(ctx, path, raw)
    if option is None:
        return None
    parts = parse_format(option.value)  # already checked by _header_value_option
    if any(not isinstance(part, str) for part in parts):
        ctx.error(
            _join(_join(path, "header"), "value"),
            "command operators are not supported in health check request headers by pyevent-envoy "
            "(write '%%' for a literal '%')",
        )
        return None
    return option


def _status_range(kind: str) -> Callable[[_Ctx, str, Any], Optional[tuple[int, int]]]:
    """An ``Int64Range`` of HTTP statuses, checked with Envoy's messages."""

    def build(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[int, int]]:
        mark = ctx.mark()
        m = _msg(ctx, path, raw, "Int64Range", {"start", "end"})
        if m is None:
            return None
        bounds = []
        for name in ("start", "end"):
            value = m.raw(name)
            number = 0 if value is None else _integer(value)
            if number is None or not -(2**63) <= number < 2**63:
                m.error(name, f"expected a 64-bit integer, got {_kind(value)}")
            bounds.append(number or 0)
        if not ctx.clean_since(mark):
            return None
        start, end = bounds
        if start >= end:
            reason = f"expecting start < end, but found start={start} and end={end}"
        elif start < 100:
            reason = f"expecting start >= 100, but found start={start}"
        elif end > 600:
            reason = f"expecting end <= 600, but found end={end}"
        else:
            return start, end
        ctx.error(path, f"Invalid http {kind} status range: {reason}")
        return None

    return build


def _tcp_health_check(ctx: _Ctx, path: str, raw: Any) -> Optional[b.TcpHealthCheck]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "HealthCheck.TcpHealthCheck",
        {"send", "receive"},
        notes={
            "proxy_protocol_config": "HealthCheck.TcpHealthCheck.proxy_protocol_config is not supported "
            "by pyevent-envoy",
        },
    )
    if m is None:
        return None
    send = m.message("send", _payload)
    receive = m.repeated("receive", _payload)
    if not ctx.clean_since(mark):
        return None
    return b.TcpHealthCheck(send=send or b"", receive=receive)


def _payload(ctx: _Ctx, path: str, raw: Any) -> Optional[bytes]:
    """A ``HealthCheck.Payload``: hex ``text``."""
    m = _msg(
        ctx,
        path,
        raw,
        "HealthCheck.Payload",
        {"text"},
        notes={"binary": "HealthCheck.Payload.binary is not supported by pyevent-envoy (use text, in hex)"},
    )
    if m is None:
        return None
    if m.oneof("payload", ("text", "binary"), required=True) != "text":
        return None
    text = m.string("text", min_len=1)
    if not text:
        return None
    if not _HEX_RE.fullmatch(text):
        m.error("text", f"invalid hex string {text!r}")
        return None
    return bytes.fromhex(text)


_OUTLIER_REFUSED = {
    name: f"OutlierDetection.{name} is not supported by pyevent-envoy ({why})"
    for names, why in (
        (
            ("split_external_local_origin_errors", "consecutive_local_origin_failure",
             "enforcing_consecutive_local_origin_failure", "enforcing_local_origin_success_rate",
             "enforcing_failure_percentage_local_origin"),
            "local-origin errors are counted as 503 and 504 responses, as Envoy does without the split",
        ),
        (
            ("max_ejection_time_jitter", "successful_active_health_check_uneject_host", "monitors",
             "always_eject_one_host", "detect_degraded_hosts"),
            "only the consecutive-error, success-rate and failure-percentage ejections are supported",
        ),
    )
    for name in names
}


def _outlier_detection(ctx: _Ctx, path: str, raw: Any) -> Optional[b.OutlierDetection]:
    """A cluster's ``outlier_detection``, validated as Envoy 1.40 validates it."""
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "OutlierDetection",
        {
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "interval",
            "base_ejection_time",
            "max_ejection_time",
            "max_ejection_percent",
            "enforcing_consecutive_5xx",
            "enforcing_consecutive_gateway_failure",
            "enforcing_success_rate",
            "success_rate_minimum_hosts",
            "success_rate_request_volume",
            "success_rate_stdev_factor",
            "failure_percentage_threshold",
            "enforcing_failure_percentage",
            "failure_percentage_minimum_hosts",
            "failure_percentage_request_volume",
        },
        notes=_OUTLIER_REFUSED,
    )
    if m is None:
        return None
    percent = {"maximum": 100, "range_reason": "must be at most 100 (a percentage)"}
    defaults = b.OutlierDetection()
    config = b.OutlierDetection(
        consecutive_5xx=m.uint32("consecutive_5xx", defaults.consecutive_5xx),
        consecutive_gateway_failure=m.uint32("consecutive_gateway_failure", defaults.consecutive_gateway_failure),
        interval=m.duration("interval", defaults.interval, greater_than=0.0),
        base_ejection_time=m.duration("base_ejection_time", defaults.base_ejection_time, greater_than=0.0),
        max_ejection_time=m.duration("max_ejection_time", defaults.max_ejection_time, greater_than=0.0),
        max_ejection_percent=m.uint32("max_ejection_percent", defaults.max_ejection_percent, **percent),
        enforcing_consecutive_5xx=m.uint32("enforcing_consecutive_5xx", defaults.enforcing_consecutive_5xx, **percent),
        enforcing_consecutive_gateway_failure=m.uint32(
            "enforcing_consecutive_gateway_failure", defaults.enforcing_consecutive_gateway_failure, **percent
        ),
        enforcing_success_rate=m.uint32("enforcing_success_rate", defaults.enforcing_success_rate, **percent),
        success_rate_minimum_hosts=m.uint32("success_rate_minimum_hosts", defaults.success_rate_minimum_hosts),
        success_rate_request_volume=m.uint32("success_rate_request_volume", defaults.success_rate_request_volume),
        success_rate_stdev_factor=m.uint32("success_rate_stdev_factor", defaults.success_rate_stdev_factor),
        failure_percentage_threshold=m.uint32(
            "failure_percentage_threshold", defaults.failure_percentage_threshold, **percent
        ),
        enforcing_failure_percentage=m.uint32(
            "enforcing_failure_percentage", defaults.enforcing_failure_percentage, **percent
        ),
        failure_percentage_minimum_hosts=m.uint32(
            "failure_percentage_minimum_hosts", defaults.failure_percentage_minimum_hosts
        ),
        failure_percentage_request_volume=m.uint32(
            "failure_percentage_request_volume", defaults.failure_percentage_request_volume
        ),
    )
    if not ctx.clean_since(mark):
        return None
    if config.max_ejection_time < config.base_ejection_time:
        if m.has("max_ejection_time"):
            m.error("max_ejection_time", "outlier detector's max_ejection_time cannot be smaller than base_ejection_time")
            return None
        # Unset, Envoy's 300 s default gives way to a longer base_ejection_time.
        config = dataclasses.replace(config, max_ejection_time=config.base_ejection_time)
    return config


def _health_checks(ctx: _Ctx, m: _Msg) -> tuple[b.HealthCheck, ...]:
    checks = m.repeated("health_checks", _health_check)
    raw = m.raw("health_checks")
    if isinstance(raw, (list, tuple)) and len(raw) > 1:
        ctx.error(
            f"{m.at('health_checks')}[1]",
            "pyevent-envoy supports one health check per cluster",
        )
        return ()
    return checks


_SUPPORTED_TYPES = (b.DiscoveryType.STATIC, b.DiscoveryType.STRICT_DNS, b.DiscoveryType.LOGICAL_DNS)
_SUPPORTED_LB = (b.LbPolicy.ROUND_ROBIN, b.LbPolicy.LEAST_REQUEST, b.LbPolicy.RANDOM)


def _cluster(ctx: _Ctx, path: str, raw: Any) -> Optional[tuple[b.Cluster, _Msg]]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "Cluster",
        {
            "name",
            "type",
            "connect_timeout",
            "lb_policy",
            "load_assignment",
            "circuit_breakers",
            "dns_refresh_rate",
            "dns_lookup_family",
            "per_connection_buffer_limit_bytes",
            "typed_extension_protocol_options",
            "health_checks",
            "outlier_detection",
            "transport_socket",
        },
    )
    if m is None:
        return None
    name = m.string("name", min_len=1)
    ctype = m.enum("type", b.DiscoveryType, b.DiscoveryType.STATIC, supported=_SUPPORTED_TYPES)
    connect_timeout = m.duration("connect_timeout", 5.0, greater_than=0.0)
    lb_policy = m.enum("lb_policy", b.LbPolicy, b.LbPolicy.ROUND_ROBIN, supported=_SUPPORTED_LB)
    la_mark = ctx.mark()
    la = m.message("load_assignment", _load_assignment)
    load_assignment, endpoint_paths = la if la is not None else (None, [])
    if load_assignment is not None and ctx.clean_since(la_mark):
        if ctype == b.DiscoveryType.STATIC:
            for ep, epath in zip(
                (e for loc in load_assignment.endpoints for e in loc.lb_endpoints), endpoint_paths
            ):
                if not _is_ip(ep.address.address):
                    ctx.error(
                        epath,
                        f"malformed IP address: {ep.address.address} (a STATIC cluster needs IP addresses; "
                        "use type STRICT_DNS or LOGICAL_DNS for host names)",
                    )
    if ctype == b.DiscoveryType.LOGICAL_DNS and ctx.clean_since(la_mark):
        localities = load_assignment.endpoints if load_assignment is not None else ()
        if len(localities) != 1 or len(localities[0].lb_endpoints) != 1:
            m.error(
                "load_assignment" if m.has("load_assignment") else None,
                "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
            )
    breakers = m.message("circuit_breakers", _circuit_breakers) or b.CircuitBreakers()
    dns_refresh = m.duration("dns_refresh_rate", 5.0, greater_than=0.001)
    family = m.enum("dns_lookup_family", b.DnsLookupFamily, b.DnsLookupFamily.AUTO)
    buffer_limit = m.uint32("per_connection_buffer_limit_bytes", b.DEFAULT_BUFFER_LIMIT_BYTES)
    http1 = m.message("typed_extension_protocol_options", _upstream_protocol_options)
    health_checks = _health_checks(ctx, m)
    outlier_detection = m.message("outlier_detection", _outlier_detection)
    tls = _transport_socket(m, downstream=False)
    if not ctx.clean_since(mark):
        return None
    cluster = b.Cluster(
        name=name,
        type=ctype,
        connect_timeout=connect_timeout,
        lb_policy=lb_policy,
        load_assignment=load_assignment,
        circuit_breakers=breakers,
        dns_refresh_rate=dns_refresh,
        dns_lookup_family=family,
        per_connection_buffer_limit_bytes=buffer_limit,
        http_protocol_options=http1,
        health_checks=health_checks,
        outlier_detection=outlier_detection,
        transport_socket=tls,
    )
    return cluster, m


# ------------------------------------------------------------------------------------------
# The bootstrap.


def _node(ctx: _Ctx, path: str, raw: Any) -> Optional[b.Node]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "Node", {"id", "cluster"})
    if m is None:
        return None
    node = b.Node(id=m.string("id"), cluster=m.string("cluster"))
    return node if ctx.clean_since(mark) else None


def _admin(ctx: _Ctx, path: str, raw: Any) -> Optional[b.Admin]:
    mark = ctx.mark()
    m = _msg(
        ctx,
        path,
        raw,
        "Admin",
        {"address", "access_log"},
        notes={
            "access_log_path": "Admin.access_log_path is not supported by pyevent-envoy "
            "(deprecated: use access_log with an envoy.access_loggers.file logger)"
        },
    )
    if m is None:
        return None
    address = m.message("address", lambda c, p, r: _socket_address(c, p, r, ip_only=True))
    logs = m.repeated("access_log", _access_log)
    return b.Admin(address=address, access_log=logs) if ctx.clean_since(mark) else None


def parse_bootstrap(raw: Any) -> tuple[Optional[b.Bootstrap], list[ConfigError]]:
    """Read and validate a whole bootstrap; return it (``None`` on error) and every error found."""
    ctx = _Ctx()
    if raw is None:
        raw = {}
    m = _msg(ctx, "", raw, "Bootstrap", {"node", "static_resources", "admin", "stats_flush_interval"})
    if m is None:
        return None, ctx.errors
    node = m.message("node", _node) or b.Node()
    admin = m.message("admin", _admin)
    stats_flush_interval = m.duration("stats_flush_interval", b.DEFAULT_STATS_FLUSH_INTERVAL)
    if not 0.001 <= stats_flush_interval < 300:  # Envoy's validation rule: [1ms, 300s)
        m.error("stats_flush_interval", f"must be at least 0.001s and less than 300s, got {stats_flush_interval:g}s")
    listeners: tuple = ()
    clusters: tuple = ()
    sr = m.message("static_resources", lambda c, p, r: _msg(c, p, r, "StaticResources", {"listeners", "clusters"}))
    if sr is not None:
        listeners = sr.repeated("listeners", _listener)
        clusters = sr.repeated("clusters", _cluster)
        _check_listeners(ctx, sr, listeners)
        _check_clusters(ctx, sr, clusters)
    if ctx.errors:
        return None, ctx.errors
    return (
        b.Bootstrap(
            node=node,
            static_resources=b.StaticResources(
                listeners=tuple(lst for lst, _ in listeners), clusters=tuple(c for c, _ in clusters)
            ),
            admin=admin,
            source=raw,
            stats_flush_interval=stats_flush_interval,
        ),
        [],
    )


def _check_listeners(ctx: _Ctx, sr: _Msg, listeners: Sequence[tuple[b.Listener, _Msg]]) -> None:
    names: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for listener, m in listeners:
        if "name" in m.values:
            if listener.name in names:
                m.error("name", f"duplicate listener name {listener.name!r} (also {names[listener.name]})")
            else:
                names[listener.name] = m.path
        key = _address_key(listener.address)
        if listener.address.port_value != 0:
            if key in addresses:
                m.error("address", f"listener has duplicate address {key} as {addresses[key]}")
            else:
                addresses[key] = m.path


def _check_clusters(ctx: _Ctx, sr: _Msg, clusters: Sequence[tuple[b.Cluster, _Msg]]) -> None:
    names: dict[str, str] = {}
    for cluster, m in clusters:
        if cluster.name in names:
            m.error("name", f"duplicate cluster {cluster.name!r} (also {names[cluster.name]})")
        else:
            names[cluster.name] = m.path
    # Routes can only be checked against clusters that were read without error.
    broken = _broken_cluster_names(sr)
    for path, name, kind in ctx.cluster_refs:
        if name not in names and name not in broken:
            ctx.error(path, f"unknown {kind} {name!r}: no cluster has this name")


def _broken_cluster_names(sr: _Msg) -> set[str]:
    raw = sr.raw("clusters")
    out: set[str] = set()
    if isinstance(raw, (list, tuple)):
        for item in raw:
            if isinstance(item, Mapping):
                name = item.get("name")
                if isinstance(name, str):
                    out.add(name)
    return out
