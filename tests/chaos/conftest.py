"""Fixtures of the chaos suite, and the table of its results at the end of the session.

``chaos(name, **options)`` starts a scenario's private services (harness.Scenario) and stops them, and every process
the scenario started, when the test ends however it ends. ``report(row)`` prints a scenario's row at once and keeps
it for the table ``pytest_terminal_summary`` prints last (``make chaos``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import Row, Scenario, table

ROWS = pytest.StashKey[list[Row]]()
STARTED = pytest.StashKey[float]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ROWS] = []
    config.stash[STARTED] = time.time()


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Callable[..., Scenario]]:
    made: list[Scenario] = []

    def make(name: str, **options: Any) -> Scenario:
        scenario = Scenario(name, tmp_path, **options)
        made.append(scenario)
        return scenario

    try:
        yield make
    finally:
        for scenario in made:
            scenario.close()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[Row], None]:
    def add(row: Row) -> None:
        request.config.stash[ROWS].append(row)
        print(f"\nchaos: {table([row]).splitlines()[1]}", flush=True)

    return add


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    elapsed = time.time() - config.stash[STARTED]
    terminalreporter.section(f"chaos scenarios ({elapsed:.0f} s)")
    terminalreporter.write_line(table(rows))
    terminalreporter.write_line(LEGEND)


LEGEND = """\
expected   runs <entry>@<slot> due after the first dispatch and at least 2 s before the window closed
executed   finished runs of those
lost       expected runs that never finished; duplicated: runs that finished more than once
extra      finished runs no slot asked for (with REDBEAT_FIRST_RUN=now a new schedule fires every entry at start)
failover_s fault -> the standby holds the lock (polled every 20 ms); "-": no leader change"""
