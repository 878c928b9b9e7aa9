"""Base classes whose instances start with their attributes already set.

A proxied request makes about eight objects: its stream, the stream's info,
the router filter, the upstream request, the two encoders and more.  Each
``__init__`` used to store some twenty constants (``None``, ``False``, ``0``,
``""``) one attribute at a time: three bytecodes each, about a twentieth of
the interpreter's work per request.  :func:`defaults_base` makes a C base
type (``csrc/fields_module.c``) whose instances are created with those
attributes set, in one C loop, so the subclass's ``__init__`` sets only what
differs per instance::

    _RouterFields = defaults_base(
        "pyevent_envoy.http.router.router._RouterFields",
        _route=None,         # the matched route, from decode_headers
        _request_complete=False,
    )

    class RouterFilter(StreamDecoderFilter, _RouterFields):
        __slots__ = ("stream",)

        def __init__(self, stream):
            self.stream = stream

The attributes behave as ``__slots__`` fields do: read and written as fast
(CPython's inline caches specialize them the same way), deleted to
``AttributeError``, no ``__dict__``.  The defaults are shared by every
instance, so only immutable values are admitted: ``None``, ``bool``,
``int``, ``float``, ``str``, ``bytes``, enum members and tuples of these.
A mutable default (a list, a dict) must still be made in ``__init__``.
"""

from __future__ import annotations

import enum
from typing import Any

from pyevent_envoy._fields import make_type

__all__ = ["defaults_base"]

_IMMUTABLE = (type(None), bool, int, float, str, bytes, enum.Enum)


def _check_immutable(name: str, value: Any) -> None:
    if isinstance(value, tuple):
        for item in value:
            _check_immutable(name, item)
    elif not isinstance(value, _IMMUTABLE):
        raise TypeError(
            f"default of {name!r} must be immutable (None, bool, int, float, str, bytes, an enum member "
            f"or a tuple of these), got {type(value).__name__}: every instance shares it"
        )


def defaults_base(name: str, /, **defaults: Any) -> type:
    """A base class whose instances start with ``defaults`` as attributes.

    Args:
        name: the type's full name, ``"package.module.QualName"`` (its
            ``__module__`` and ``__qualname__``, for reprs and tracebacks).
        defaults: each attribute and the immutable value it starts with, in
            the order they are laid out.

    Returns:
        A type to subclass (with ``__slots__`` for the rest, or none).

    Raises:
        TypeError: a default is mutable, or there are none.
    """
    if not defaults:
        raise TypeError("defaults_base() needs at least one attribute")
    for field, value in defaults.items():
        _check_immutable(field, value)
    return make_type(name, tuple(defaults), tuple(defaults.values()))
