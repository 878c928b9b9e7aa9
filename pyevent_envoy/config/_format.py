"""Envoy format strings: the text of access-log formats and of added header values.

A format string is literal text with command operators
``%COMMAND%``, ``%COMMAND(arg)%`` or ``%COMMAND(arg):N%`` (``N`` truncates the
value to ``N`` characters); ``%%`` is a literal ``%``.  This module checks the
syntax the way Envoy's substitution format parser does and knows the
commands pyevent-envoy supports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

__all__ = ["Command", "FORMAT_COMMANDS", "parse_format"]

# Argument rules: "none" (no argument, no length), "header" (a header name with an optional
# "?alternative", length allowed), "optional" (optional argument, no length).
FORMAT_COMMANDS: dict[str, str] = {
    "REQ": "header",
    "RESP": "header",
    "TRAILER": "header",
    "START_TIME": "optional",
    **{
        name: "none"
        for name in (
            "PROTOCOL",
            "RESPONSE_CODE",
            "RESPONSE_CODE_DETAILS",
            "RESPONSE_FLAGS",
            "BYTES_RECEIVED",
            "BYTES_SENT",
            "DURATION",
            "REQUEST_DURATION",
            "RESPONSE_DURATION",
            "UPSTREAM_HOST",
            "UPSTREAM_CLUSTER",
            "UPSTREAM_LOCAL_ADDRESS",
            "UPSTREAM_REMOTE_ADDRESS",
            "UPSTREAM_TRANSPORT_FAILURE_REASON",
            "UPSTREAM_REQUEST_ATTEMPT_COUNT",
            "DOWNSTREAM_REMOTE_ADDRESS",
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
            "DOWNSTREAM_REMOTE_PORT",
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
            "DOWNSTREAM_LOCAL_ADDRESS",
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
            "DOWNSTREAM_LOCAL_PORT",
            "HOSTNAME",
            "ROUTE_NAME",
            "CONNECTION_ID",
            "STREAM_ID",
        )
    },
}

_COMMAND_RE = re.compile(r"%([A-Z0-9_]+)(?:\(([^)]*)\))?(?::([0-9]+))?%")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z:]+")  # an HTTP header name (":path" allowed)


@dataclass(frozen=True, slots=True)
class Command:
    """One command operator of a format string."""

    name: str
    argument: Optional[str] = None
    max_length: Optional[int] = None


def parse_format(text: str) -> tuple[Union[str, Command], ...]:
    """Split a format string into literal text and :class:`Command` parts.

    Raises:
        ValueError: the string is not a valid format string, or uses a
            command pyevent-envoy does not support; the message says why.
    """
    parts: list[Union[str, Command]] = []
    literal: list[str] = []
    pos = 0
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch != "%":
            literal.append(ch)
            pos += 1
            continue
        if text.startswith("%%", pos):
            literal.append("%")
            pos += 2
            continue
        m = _COMMAND_RE.match(text, pos)
        if m is None:
            raise ValueError(
                f"incorrect format string {text!r}: no valid command operator at position {pos} "
                "(write '%%' for a literal '%')"
            )
        name, arg, length = m.group(1), m.group(2), m.group(3)
        rule = FORMAT_COMMANDS.get(name)
        if rule is None:
            raise ValueError(f"command operator %{name}% is not supported by pyevent-envoy")
        if rule == "none" and (arg is not None or length is not None):
            raise ValueError(f"command operator {name} does not take any parameters or length")
        if rule == "optional" and length is not None:
            raise ValueError(f"command operator {name} does not allow a length")
        if rule == "header":
            if not arg:
                raise ValueError(f"command operator {name} requires a header name: %{name}(name)%")
            names = arg.split("?")
            if len(names) > 2:
                raise ValueError(f"more than one alternative header in %{name}({arg})%")
            for header in names:
                if not _TOKEN_RE.fullmatch(header):
                    raise ValueError(f"invalid header name {header!r} in %{name}({arg})%")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Command(name, arg, int(length) if length is not None else None))
        pos = m.end()
    if literal:
        parts.append("".join(literal))
    return tuple(parts)
