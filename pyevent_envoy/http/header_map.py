"""The HTTP header map (Envoy's ``envoy/http/header_map.h``, ``HeaderMapImpl``).

An ordered multimap of header fields.  Names are stored lowercase (``str``),
values as ``str`` holding the wire bytes decoded as latin-1, so every byte
round-trips.  Lookups are case-insensitive.

Envoy's pseudo-headers carry what HTTP/1.1 puts in the start line:
``:method``, ``:path`` and ``:authority`` (from ``Host``) on requests,
``:status`` on responses (``:scheme`` is not set by the HTTP/1.1 codec).  They
sort before the regular fields, as in Envoy, and are never serialized as
fields.

The map is small and used on every request, so it is two parallel lists
(names, values): lookups are ``list.index`` and ``in`` (C loops), and a typical
request's dozen headers need no hashing.  :meth:`add` and :meth:`set` validate
what they are given (a token name, a value without CR, LF or NUL) so that a
map can never inject a line into the wire format; the codec builds maps from
already-validated bytes through a private constructor that skips the checks.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Optional, Tuple

from pyevent_envoy._headers import HeaderFields

__all__ = ["HeaderMap", "PSEUDO_HEADERS"]

#: The pseudo-headers a map may hold (Envoy's, HTTP/2's names).
PSEUDO_HEADERS = frozenset({":method", ":path", ":authority", ":scheme", ":status", ":protocol"})

# RFC 9110 section 5.6.2: token = 1*tchar.
_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# Names already checked, by the spelling they came in (a few dozen in practice).
_CHECKED_NAMES: dict = {}
_CHECKED_NAMES_MAX = 4096


def _check_name(name: str) -> str:
    checked = _CHECKED_NAMES.get(name)
    if checked is not None:
        return checked
    result = _check_name_slow(name)
    if type(name) is str and len(_CHECKED_NAMES) < _CHECKED_NAMES_MAX:
        _CHECKED_NAMES[name] = result
    return result


def _check_name_slow(name: str) -> str:
    if type(name) is not str:
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("latin-1")
        else:
            raise TypeError(f"header name must be str, got {type(name).__name__}")
    lowered = name.lower()
    if lowered and lowered[0] == ":":
        if lowered not in PSEUDO_HEADERS:
            raise ValueError(f"unknown pseudo-header {name!r}")
        return lowered
    # str.strip removes leading and trailing tchars; anything left is not a token.
    if not lowered or lowered.strip(_TCHAR):
        raise ValueError(f"invalid header name {name!r}")
    return lowered


def _check_value(value: str) -> str:
    # Fast path: printable ASCII (no CR, LF, NUL, tab) without surrounding spaces.
    if type(value) is str and value.isascii() and value.isprintable() and (not value or (value[0] != " " and value[-1] != " ")):
        return value
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        else:
            raise TypeError(f"header value must be str, got {type(value).__name__}")
    # A CR, LF or NUL would end the field line early: response splitting.
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header value contains CR, LF or NUL: {value!r}")
    # Field values carry no leading or trailing whitespace (RFC 9110 section 5.5).
    if value and (value[0] in " \t" or value[-1] in " \t"):
        value = value.strip(" \t")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header value is not latin-1: {value!r}") from None
    return value


class HeaderMap(HeaderFields):
    """An ordered, case-insensitive multimap of HTTP header fields.

    Args:
        headers: optional initial fields, as ``(name, value)`` pairs or a
            mapping; each goes through :meth:`add`.

    .. versionadded:: 0.1.0
    """

    # The two lists (``_names``, lowercase, and ``_values``) live in the C
    # base, HeaderFields, with the lookups every request makes: ``get``,
    # ``_get``, ``in``, ``_set_trusted``, ``_insert_pseudo`` and ``_trusted``
    # (csrc/headers_module.c).  Everything else is here.
    __slots__ = ()

    def __init__(self, headers: Optional[Iterable[Tuple[str, str]]] = None) -> None:
        self._names: List[str] = []
        self._values: List[str] = []
        if headers is not None:
            items = headers.items() if hasattr(headers, "items") else headers
            for name, value in items:
                self.add(name, value)

    # Reading

    def get_all(self, name: str) -> List[str]:
        """Every value of ``name``, in order (an empty list if absent)."""
        name = name.lower()
        names = self._names
        if name not in names:
            return []
        values = self._values
        return [values[i] for i, n in enumerate(names) if n == name]

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        """The fields as ``(name, value)`` pairs, pseudo-headers first, in order."""
        return zip(self._names, self._values)

    def __len__(self) -> int:
        return len(self._names)

    def __bool__(self) -> bool:
        return bool(self._names)

    def names(self) -> List[str]:
        """The names, in order, with repeats (a copy)."""
        return list(self._names)

    def byte_size(self) -> int:
        """Bytes of names plus values, as Envoy's ``HeaderMap::byteSize`` counts them."""
        return sum(map(len, self._names)) + sum(map(len, self._values))

    # Writing

    def add(self, name: str, value: str) -> None:
        """Append a field (a repeat of ``name`` is kept as another field).

        Pseudo-headers go after the pseudo-headers already present, before the
        regular fields.

        Raises:
            ValueError: ``name`` is not a token (or a known pseudo-header), or
                ``value`` holds CR, LF, NUL or a character beyond latin-1.
            TypeError: ``name`` or ``value`` is not a ``str``.
        """
        name = _check_name(name)
        value = _check_value(value)
        if name[0] == ":":
            self._insert_pseudo(name, value)
        else:
            self._names.append(name)
            self._values.append(value)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one ``value``, kept at the first one's place.

        Raises:
            ValueError, TypeError: as :meth:`add`.
        """
        self._set_trusted(_check_name(name), _check_value(value))

    def remove(self, name: str) -> int:
        """Remove every field named ``name``; return how many were removed."""
        name = name.lower()
        if name not in self._names:
            return 0
        return self._remove_after(name, 0)

    def _remove_after(self, name: str, start: int) -> int:
        names = self._names
        values = self._values
        keep = [i for i in range(len(names)) if i < start or names[i] != name]
        removed = len(names) - len(keep)
        self._names = [names[i] for i in keep]
        self._values = [values[i] for i in keep]
        return removed

    def copy(self) -> "HeaderMap":
        """A shallow copy (strings are immutable, so it is independent)."""
        return HeaderMap._trusted(list(self._names), list(self._values))

    def __reduce__(self) -> tuple:
        # The lists live in the C base, which copy and pickle do not see by themselves.
        return (type(self), (list(zip(self._names, self._values)),))

    # Comparison and display

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeaderMap):
            return NotImplemented
        return self._names == other._names and self._values == other._values

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"HeaderMap({list(zip(self._names, self._values))!r})"
