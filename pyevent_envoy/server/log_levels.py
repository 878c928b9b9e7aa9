"""Envoy's log level names on Python's :mod:`logging`, and pyevent-envoy's loggers by Envoy-style name.

Envoy names its levels ``trace``, ``debug``, ``info``, ``warning``,
``error``, ``critical`` and ``off``, and its loggers by subsystem
(``http``, ``upstream``, ...).  pyevent-envoy logs through one Python logger
per package, ``pyevent_envoy.<name>``; :func:`active_loggers` lists them by
``<name>`` (``config``, ``event``, ``http``, ``network``, ``server``,
``upstream``), which is what the command line's ``-l`` and the admin's
``/logging`` act on.  Python has no trace level: :data:`TRACE` sits below
``DEBUG`` and nothing logs at it, so ``trace`` shows what ``debug`` shows.
"""

from __future__ import annotations

import logging

__all__ = ["LEVELS", "OFF", "TRACE", "active_loggers", "level_name", "set_all_levels", "set_level"]

#: Python level for Envoy's ``trace``.
TRACE = 5
#: Python level for Envoy's ``off``: above every level anything logs at.
OFF = logging.CRITICAL + 10

#: Envoy's level names, in Envoy's order, with their Python levels.
LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "off": OFF,
}

#: The package whose child loggers are the ones listed and changed.
_ROOT = "pyevent_envoy"


def level_name(level: int) -> str:
    """Envoy's name for Python level ``level``: the highest named level at or below it."""
    name = "trace"
    for candidate, value in LEVELS.items():
        if value <= level:
            name = candidate
    return name


def _logger_names() -> list[str]:
    prefix = _ROOT + "."
    names = {name[len(prefix):] for name in logging.root.manager.loggerDict if name.startswith(prefix)}
    return sorted(name for name in names if "." not in name)


def active_loggers() -> list[tuple[str, str]]:
    """``(name, level name)`` of every ``pyevent_envoy.<name>`` logger created so far, by name.

    The level is the effective one (what the logger lets through), so a
    logger never set on its own shows the level of the root logger.
    """
    return [(name, level_name(logging.getLogger(f"{_ROOT}.{name}").getEffectiveLevel())) for name in _logger_names()]


def set_level(name: str, level: str) -> None:
    """Set logger ``name`` (one of :func:`active_loggers`' names) to ``level`` (one of :data:`LEVELS`).

    Raises:
        KeyError: ``name`` is not a logger's name, or ``level`` not a level name.
    """
    value = LEVELS[level]
    names = _logger_names()
    if name not in names:
        raise KeyError(name)
    logging.getLogger(f"{_ROOT}.{name}").setLevel(value)


def set_all_levels(level: str) -> None:
    """Set every logger of :func:`active_loggers` to ``level``.

    Raises:
        KeyError: ``level`` is not a level name.
    """
    value = LEVELS[level]
    for name in _logger_names():
        logging.getLogger(f"{_ROOT}.{name}").setLevel(value)
