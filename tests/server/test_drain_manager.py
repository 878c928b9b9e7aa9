"""DrainManager: Envoy's gradual drain decision, on a simulated clock and seeded random numbers."""

from __future__ import annotations

import random

from pyevent_envoy.server.drain_manager import DrainManager


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def closes(manager: DrainManager, tries: int = 2000) -> float:
    return sum(manager.drain_close() for _ in range(tries)) / tries


def test_drain_manager_is_inactive_until_a_drain_or_a_failed_health_check():
    manager = DrainManager(10, Clock())
    assert (manager.active, manager.draining, manager.drain_close()) == (False, False, False)
    manager.health_check_failed = True
    assert (manager.active, closes(manager)) == (True, 1.0)
    manager.health_check_failed = False
    assert (manager.active, manager.drain_close()) == (False, False)


def test_drain_manager_closes_with_the_elapsed_share_of_the_drain_time():
    clock = Clock()
    manager = DrainManager(10, clock, random.Random(7))
    assert manager.start_drain_sequence()
    assert not manager.start_drain_sequence()  # a second start changes nothing
    assert manager.active and manager.draining
    # Whole seconds, truncated as Envoy's: elapsed is 1 s a moment after the start.
    clock.now += 0.01
    assert 0.05 < closes(manager) < 0.15
    clock.now += 4.5  # 4.51 s in: 5 s remain by truncation, elapsed 5
    assert 0.42 < closes(manager) < 0.58
    clock.now += 5.49  # exactly at the deadline
    assert closes(manager) == 1.0
    clock.now += 100
    assert closes(manager) == 1.0
    manager.health_check_failed = False  # a drain stays active whatever the health state
    assert manager.active


def test_drain_manager_with_no_drain_time_closes_at_once():
    manager = DrainManager(0, Clock())
    manager.start_drain_sequence()
    assert closes(manager, 10) == 1.0
