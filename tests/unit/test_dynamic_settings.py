"""Settings from the database (the original's hack_settings): which value wins, how long it is kept, and what a
bad row or an unreadable table does. The table is stood in for by a reader over a dict, the clock by a counter."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from alarm_backends.core.dynamic_settings import CACHE_SECONDS, MISSING, DynamicValues, NoTableError


class Table:
    def __init__(self, rows: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.rows = rows or {}
        self.error = error
        self.reads: list[str] = []

    def __call__(self, name: str) -> Any:
        self.reads.append(name)
        if self.error is not None:
            raise self.error
        return self.rows.get(name, MISSING)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_row_wins_over_the_static_setting_and_is_kept_180_seconds() -> None:
    assert CACHE_SECONDS == 180  # the original's cache
    table, clock = Table({"CELERY_WORKERS": 3}), Clock()
    values = DynamicValues(table, clock=clock)
    assert values.get("CELERY_WORKERS", 0) == 3
    table.rows["CELERY_WORKERS"] = 5
    clock.now += 179.9
    assert values.get("CELERY_WORKERS", 0) == 3  # still the cached row
    clock.now += 0.1
    assert values.get("CELERY_WORKERS", 0) == 5
    assert table.reads == ["CELERY_WORKERS", "CELERY_WORKERS"]


def test_without_a_row_the_static_setting_is_used_and_the_absence_is_cached_too() -> None:
    table, clock = Table(), Clock()
    values = DynamicValues(table, clock=clock)
    assert values.get("EXCLUDE_WORKER_TASKS", ["a.b"]) == ["a.b"]
    assert values.get("EXCLUDE_WORKER_TASKS", ["a.b"]) == ["a.b"]
    assert table.reads == ["EXCLUDE_WORKER_TASKS"]
    # An empty list stored is a value, not an absence.
    table.rows["EXCLUDE_WORKER_TASKS"] = []
    clock.now += CACHE_SECONDS
    assert values.get("EXCLUDE_WORKER_TASKS", ["a.b"]) == []


@pytest.mark.parametrize(
    ("name", "bad", "expected"),
    [
        ("CELERY_WORKERS", "4", "a whole number of processes"),
        ("CELERY_WORKERS", -1, "a whole number of processes"),
        ("EXCLUDE_WORKER_TASKS", "a.b.c", "a JSON list of dotted paths"),
        ("ALARM_BACKEND_CLUSTER_ROUTING_RULES", [{"target_type": "biz"}], "matcher_type must be one of"),
    ],
)
def test_a_bad_row_is_refused_by_name_once_and_the_static_setting_used(
    name: str, bad: Any, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    table, clock = Table({name: bad}), Clock()
    values = DynamicValues(table, clock=clock)
    static = object()
    with caplog.at_level(logging.INFO, logger="alarm_backends.dynamic_settings"):
        assert values.get(name, static) is static
        clock.now += CACHE_SECONDS
        assert values.get(name, static) is static
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and len(table.reads) == 2
    assert f"global_setting row {name} = {bad!r}: expected" in errors[0].getMessage()
    assert expected in errors[0].getMessage()


def test_an_unreadable_table_leaves_the_static_settings_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    table, clock = Table(error=ConnectionRefusedError("db down")), Clock()
    values = DynamicValues(table, clock=clock)
    with caplog.at_level(logging.INFO, logger="alarm_backends.dynamic_settings"):
        for _ in range(3):
            assert values.get("CELERY_WORKERS", 2) == 2
            clock.now += CACHE_SECONDS
    assert [(r.levelno, "ConnectionRefusedError: db down" in r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, True)
    ]
    # Back: the row is read at the next expiry.
    table.error, table.rows["CELERY_WORKERS"] = None, 6
    assert values.get("CELERY_WORKERS", 2) == 6


def test_no_table_is_the_usual_state_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Commands print INFO lines: an operator's `beat_schedule` must not open with one about a table nobody made.
    values = DynamicValues(Table(error=NoTableError("run `manage.py migrate` to store settings there")), clock=Clock())
    with caplog.at_level(logging.DEBUG, logger="alarm_backends.dynamic_settings"):
        assert values.get("CELERY_WORKERS", 0) == 0
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "manage.py migrate" in caplog.records[0].getMessage()
