"""Per-class copies of shared hot methods, so that CPython's inline caches stay monomorphic.

CPython (3.11 and later) specializes each attribute load and method call in
place, in the bytecode of the code object, for the one type it sees there.
A method defined on a base class and run for instances of two subclasses
sees two types at every ``self.x``: the specialization keeps missing and
the load falls back to the generic lookup, several times slower.  The proxy
runs exactly that way: every request goes through a server connection and
a client connection, a server codec and a client codec, a response encoder
and a request encoder, which share their I/O, parsing and framing methods
with their base class.

:func:`own_copies` gives a class its own copy of each method it inherits
from the named bases: the same code (``code.replace()`` makes an equal but
distinct code object, with caches of its own), globals, defaults and
closure, so behaviour, ``super()`` and tracebacks are unchanged.  Methods
the class defines itself are left alone.  Classes opt in from
``__init_subclass__``, so subclasses made later (a TLS connection, a test's
subclass) get their copies too.

One thing changes: patching a base class's method after a subclass exists
no longer reaches that subclass; patch the subclass.
"""

from __future__ import annotations

import types
from typing import Iterable

__all__ = ["own_copies"]


# Set on each copy: a class below one with copies copies again (the getter, for a property).
_COPY_MARK = "_inline_cache_copy"


def _copy_function(func: types.FunctionType) -> types.FunctionType:
    copy = types.FunctionType(func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    copy.__module__ = func.__module__
    copy.__annotations__ = func.__annotations__
    copy.__dict__.update(func.__dict__)
    copy.__dict__[_COPY_MARK] = True
    return copy


def _is_copy(attr: object) -> bool:
    func = attr.fget if isinstance(attr, property) else attr
    return isinstance(func, types.FunctionType) and func.__dict__.get(_COPY_MARK, False)


def own_copies(cls: type, bases: Iterable[type]) -> None:
    """Give ``cls`` its own copy of every function and property getter it inherits from ``bases``.

    What ``cls`` would resolve to one of ``bases``, or to a copy a class in
    between made, is copied; what ``cls`` or a class in between overrides
    is not.  Dunder methods stay shared (they run through type slots, not
    the specializing interpreter's attribute caches).
    """
    bases = tuple(bases)
    for name in {name for base in bases for name in vars(base)}:
        if name.startswith("__") and name.endswith("__"):
            continue
        owner = next((klass for klass in cls.__mro__ if name in vars(klass)), None)
        if owner is None or owner is cls:
            continue
        attr = vars(owner)[name]
        if owner not in bases and not _is_copy(attr):
            continue  # overridden below the bases: that override is not ours to copy
        if isinstance(attr, types.FunctionType):
            setattr(cls, name, _copy_function(attr))
        elif isinstance(attr, property) and isinstance(attr.fget, types.FunctionType):
            fset = attr.fset if not isinstance(attr.fset, types.FunctionType) else _copy_function(attr.fset)
            setattr(cls, name, property(_copy_function(attr.fget), fset, attr.fdel, attr.__doc__))
