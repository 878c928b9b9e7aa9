"""Envoy's level names on Python's loggers (the command line's ``-l`` and the admin's ``/logging``)."""

from __future__ import annotations

import logging

import pytest

import pyevent_envoy.server.server  # noqa: F401  (creates the package's loggers)
from pyevent_envoy.server import log_levels


@pytest.fixture
def restore_levels():
    names = [name for name, _ in log_levels.active_loggers()]
    saved = {name: logging.getLogger(f"pyevent_envoy.{name}").level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(f"pyevent_envoy.{name}").setLevel(level)


def test_level_names_round_trip():
    assert [log_levels.level_name(value) for value in log_levels.LEVELS.values()] == list(log_levels.LEVELS)
    assert log_levels.level_name(logging.INFO + 5) == "info"
    assert log_levels.level_name(0) == "trace"


def test_loggers_are_the_packages_by_short_name(restore_levels):
    names = [name for name, _ in log_levels.active_loggers()]
    assert {"config", "event", "http", "network", "server", "upstream"} <= set(names)
    assert names == sorted(names)


def test_set_level_changes_one_logger_and_set_all_every_one(restore_levels):
    log_levels.set_level("http", "debug")
    assert logging.getLogger("pyevent_envoy.http").isEnabledFor(logging.DEBUG)
    assert dict(log_levels.active_loggers())["http"] == "debug"
    log_levels.set_all_levels("off")
    assert set(dict(log_levels.active_loggers()).values()) == {"off"}
    assert not logging.getLogger("pyevent_envoy.server").isEnabledFor(logging.CRITICAL)
    with pytest.raises(KeyError):
        log_levels.set_level("no_such_logger", "info")
    with pytest.raises(KeyError):
        log_levels.set_level("http", "warn")
    with pytest.raises(KeyError):
        log_levels.set_all_levels("loud")
