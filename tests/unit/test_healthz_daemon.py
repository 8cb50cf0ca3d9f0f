"""The loop of ``healthz -d`` (the original's self-monitoring daemon): what it checks, logs, counts and when it ends."""

from __future__ import annotations

import logging
import threading

import pytest

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.management.health.daemon import DaemonLoop, cycles_per_day
from alarm_backends.management.health.status import FAIL, OK, CheckResult

BROKEN = [CheckResult("redis log", OK, "PONG"), CheckResult("broker", FAIL, "connection refused")]


def test_a_day_of_cycles_as_the_original() -> None:
    assert [cycles_per_day(i) for i in (600, 60, 86400, 100000)] == [144, 1440, 1, 1]


def test_only_the_leader_checks_and_each_problem_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    leading = iter([False, True, False, True])
    checked: list[int] = []

    def check() -> list[CheckResult]:
        checked.append(1)
        return BROKEN

    loop = DaemonLoop(0, check, lambda: next(leading), threading.Event(), cycles=2)
    with caplog.at_level(logging.INFO, logger="self_monitor"):
        assert loop.run() == 2  # the cycles count the leader's checks only
    assert len(checked) == 2
    messages = caplog.messages
    assert messages.count("healthz: this host does not lead: nothing checked") == 2
    assert messages.count("healthz: 1 problem(s): broker: connection refused") == 2
    assert all(r.levelname == "ERROR" for r in caplog.records if "problem(s): broker" in r.message)


def test_an_unreadable_consul_does_not_stop_the_checks(caplog: pytest.LogCaptureFixture) -> None:
    def leads() -> bool:
        raise ConsulUnavailableError("http://127.0.0.1:1", "connection refused")

    loop = DaemonLoop(0, lambda: [CheckResult("consul", FAIL, "unreachable")], leads, threading.Event(), cycles=1)
    with caplog.at_level(logging.INFO, logger="self_monitor"):
        assert loop.run() == 1
    assert "cannot tell which host leads" in caplog.text and "problem(s): consul: unreachable" in caplog.text


def test_a_stop_ends_it_between_two_checks() -> None:
    stop = threading.Event()

    def check() -> list[CheckResult]:
        stop.set()  # as SIGTERM would, during a check
        return []

    # A long interval: the stop interrupts the wait at once rather than after it.
    assert DaemonLoop(3600, check, lambda: True, stop, cycles=10).run() == 1
