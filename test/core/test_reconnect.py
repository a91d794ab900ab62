"""The I/O-free rules of ``_core.reconnect``: the backoff of a stream's reconnects, when a
connection counts as healthy, and when the stream gives up. No sockets, no sleeps: clock values
and random numbers are made up."""

from __future__ import annotations

from typing import List, Optional

import pytest

from pieces_os_client._core.reconnect import HEALTHY_AFTER, ReconnectPolicy, backoff_delay


def policy(max_attempts: Optional[int] = None) -> ReconnectPolicy:
    return ReconnectPolicy(initial_backoff=0.25, max_backoff=10.0, jitter=0.0, max_attempts=max_attempts)

def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    assert [backoff_delay(n, 0.25, 10.0, 0.0, 0.9) for n in range(1, 9)] == [0.25, 0.5, 1, 2, 4, 8, 10, 10]
    assert backoff_delay(1, 1.0, 10.0, 0.5, 0.0) == 1.0
    assert backoff_delay(1, 1.0, 10.0, 0.5, 0.999) == pytest.approx(0.5005)
    assert backoff_delay(10_000, 1.0, 10.0, 0.0, 0.0) == 10.0  # no overflow


def test_connections_that_drop_before_their_snapshot_keep_the_delay_growing() -> None:
    rules, now, delays = policy(), 0.0, []
    rules.connected(now)
    for _ in range(6):  # accepted, dropped at once, again and again
        now += 0.01
        rules.dropped(now)
        delay = rules.next_delay(0.0)
        assert delay is not None
        delays.append(delay)
        now += delay
        rules.connected(now)
    assert delays == [0.25, 0.5, 1, 2, 4, 8]
    assert rules.unhealthy_drops == 5  # the first connection was not an attempt


def test_a_healthy_connection_starts_the_backoff_over() -> None:
    rules = policy(max_attempts=2)
    rules.connected(0.0)
    rules.dropped(0.1)
    assert rules.next_delay(0.0) == 0.25
    rules.connected(1.0)
    rules.dropped(1.1)
    assert rules.next_delay(0.0) == 0.5
    rules.connected(2.0)
    rules.healthy()  # the snapshot arrived
    rules.dropped(60.0)
    assert rules.attempts == 0 and rules.next_delay(0.0) == 0.25


def test_a_connection_that_stays_up_long_enough_counts_as_healthy() -> None:
    rules = policy()
    for _ in range(3):
        rules.next_delay(0.0)
    rules.connected(100.0)
    rules.dropped(100.0 + HEALTHY_AFTER)  # never sent a message, but lived HEALTHY_AFTER seconds
    assert rules.is_healthy and rules.attempts == 0
    assert rules.next_delay(0.0) == 0.25


def test_giving_up_says_why() -> None:
    flapping = policy(max_attempts=3)
    flapping.connected(0.0)
    flapping.dropped(0.0)
    results: List[Optional[float]] = []
    for step in range(4):
        results.append(flapping.next_delay(0.0))
        if results[-1] is not None:
            flapping.connected(float(step))
            flapping.dropped(float(step))
    assert results[-1] is None and flapping.attempts == 3
    assert flapping.give_up_reason() == (
        "the server accepted the WebSocket but dropped it before the first snapshot each time")

    mixed = policy(max_attempts=2)
    mixed.next_delay(0.0)
    mixed.failed()
    mixed.next_delay(0.0)
    mixed.connected(5.0)
    mixed.dropped(5.1)
    assert mixed.next_delay(0.0) is None
    assert mixed.give_up_reason() == (
        "1 of them opened the WebSocket, which was dropped before the first snapshot; 1 could not connect")
    assert mixed.connect_failures == 1 and mixed.unhealthy_drops == 1

    unreachable = policy(max_attempts=1)
    unreachable.next_delay(0.0)
    unreachable.failed()
    assert unreachable.next_delay(0.0) is None and unreachable.give_up_reason() == ""


def test_no_limit_never_gives_up_and_zero_gives_up_at_once() -> None:
    endless = policy()
    assert all(endless.next_delay(0.5) is not None for _ in range(1000))
    assert policy(max_attempts=0).next_delay(0.0) is None


def test_the_documented_defaults_reconnect_after_a_quarter_second_doubling_to_ten() -> None:
    # docs/streaming.md: 0.25 s, 0.5 s, 1 s, 2 s, ... up to max_backoff (10 s); a healthy
    # connection is one that stayed up 10 s (HEALTHY_AFTER) if no snapshot came
    assert HEALTHY_AFTER == 10.0
    assert [backoff_delay(n, 0.25, 10.0, 0.5, 0.0) for n in range(1, 8)] == [0.25, 0.5, 1, 2, 4, 8, 10]


def test_jitter_takes_its_fraction_off_the_delay() -> None:
    # backoff_jitter=0.5 (the stream's default): a delay of 2 s lands between 1 s and 2 s
    assert backoff_delay(4, 0.25, 10.0, 0.5, 0.5) == pytest.approx(1.5)
    assert backoff_delay(4, 0.25, 10.0, 0.5, 0.0) == 2.0
    jittered = ReconnectPolicy(initial_backoff=0.25, max_backoff=10.0, jitter=0.5, max_attempts=None)
    assert jittered.next_delay(0.5) == pytest.approx(0.1875)
    assert jittered.next_delay(0.0) == 0.5


def test_an_attempt_number_below_one_counts_as_the_first() -> None:
    assert backoff_delay(0, 0.25, 10.0, 0.0, 0.0) == 0.25
    assert backoff_delay(-3, 0.25, 10.0, 0.0, 0.0) == 0.25


def test_a_drop_with_no_open_connection_changes_nothing() -> None:
    rules = policy()
    rules.next_delay(0.0)
    rules.dropped(50.0)  # never connected: nothing to judge
    assert (rules.attempts, rules.unhealthy_drops, rules.is_healthy) == (1, 0, False)
    rules.connected(60.0)
    rules.dropped(61.0)
    rules.dropped(100.0)  # the same connection cannot end twice
    assert (rules.attempts, rules.unhealthy_drops, rules.is_healthy) == (1, 1, False)


def test_a_connection_dropped_just_before_healthy_after_is_a_failed_attempt() -> None:
    rules = ReconnectPolicy(initial_backoff=1.0, max_backoff=60.0, jitter=0.0, max_attempts=None, healthy_after=5.0)
    assert rules.next_delay(0.0) == 1.0
    rules.connected(10.0)
    rules.dropped(14.999)
    assert not rules.is_healthy and rules.unhealthy_drops == 1
    assert rules.next_delay(0.0) == 2.0
    rules.connected(20.0)
    rules.dropped(25.0)  # exactly healthy_after: healthy
    assert rules.is_healthy and rules.attempts == 0 and rules.unhealthy_drops == 0
    assert rules.next_delay(0.0) == 1.0


def test_a_new_connection_is_not_healthy_until_it_proves_itself() -> None:
    rules = policy()
    rules.connected(0.0)
    rules.healthy()
    assert rules.is_healthy
    rules.dropped(1.0)
    rules.next_delay(0.0)
    rules.connected(2.0)
    assert not rules.is_healthy


def test_health_clears_every_count_of_failures() -> None:
    rules = policy(max_attempts=3)
    rules.next_delay(0.0)
    rules.failed()
    rules.next_delay(0.0)
    rules.connected(1.0)
    rules.dropped(1.5)
    assert (rules.attempts, rules.connect_failures, rules.unhealthy_drops) == (2, 1, 1)
    rules.connected(3.0)
    rules.healthy()
    assert (rules.attempts, rules.connect_failures, rules.unhealthy_drops) == (0, 0, 0)
    assert rules.give_up_reason() == ""


def test_a_single_flapping_attempt_says_so_without_each_time() -> None:
    rules = policy(max_attempts=1)
    rules.connected(0.0)
    rules.dropped(0.0)
    assert rules.next_delay(0.0) == 0.25
    rules.connected(1.0)
    rules.dropped(1.0)
    assert rules.next_delay(0.0) is None
    assert rules.give_up_reason() == "the server accepted the WebSocket but dropped it before the first snapshot"
