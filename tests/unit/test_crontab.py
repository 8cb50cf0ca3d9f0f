"""Cron entries: Celery's field order and quirks, expires, naming and validation."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarm_backends.service.scheduler.crontab import (
    CronConfigError,
    CronEntry,
    expires_for,
    make_crontab,
    min_gap_minutes,
    parse_entries,
    select,
    task_name,
)
from patches.redbeat.zoned import ZonedCrontab

# The original's table (its tasks/cron.py expires rule), which deployments already run with.
EXPIRES_VECTORS = {
    "* * * * *": 300,
    "*/1 * * * *": 300,
    "*/5 * * * *": 300,
    "*/6 * * * *": 359,
    "*/10 * * * *": 599,
    "*/15 * * * *": 899,
    "*/30 * * * *": 1799,
    "0 * * * *": 3599,
    "40 */1 * * *": 3599,
    "0 */2 * * *": 3600,
    "0 */6 * * *": 3600,
    "0 22 * * *": 3600,
}


@pytest.mark.parametrize(("cron", "expires"), EXPIRES_VECTORS.items())
def test_expires_matches_the_original_table(cron: str, expires: int) -> None:
    assert expires_for(cron) == expires


def test_expires_for_irregular_steps_is_the_shortest_gap() -> None:
    # */25 fires at :00, :25, :50: gaps of 25, 25 and 10 minutes. The original's value depended on the minute
    # the process started (599 or 1499); the shortest gap makes it the same everywhere.
    assert expires_for("*/25 * * * *") == 599
    # */24 fires at :00, :24, :48: the 12-minute wrap is the shortest gap.
    assert expires_for("*/24 * * * *") == 719


def test_expires_counts_whole_days() -> None:
    # Weekly: the original's timedelta.seconds dropped the days; the clamp applies to the real gap.
    assert expires_for("0 3 1 * *") == 3600


@pytest.mark.parametrize(
    ("cron", "minutes", "hours"),
    [
        ("*/260 * * * *", {0}, set(range(24))),  # a step past the range keeps only the start: hourly
        ("*/24 * * * *", {0, 24, 48}, set(range(24))),
        ("*/60 * * * *", {0}, set(range(24))),
        ("* */1 * * *", set(range(60)), set(range(24))),  # every minute, not hourly
        ("0 22 * * *", {0}, {22}),
    ],
)
def test_celery_quirks(cron: str, minutes: set[int], hours: set[int]) -> None:
    schedule = make_crontab(cron)
    assert schedule.minute == minutes
    assert schedule.hour == hours


def test_field_order_is_celerys_minute_hour_dow_dom_moy() -> None:
    schedule = make_crontab("0 0 1 2 3")
    assert schedule.day_of_week == {1}
    assert schedule.day_of_month == {2}
    assert schedule.month_of_year == {3}


def test_schedule_is_evaluated_with_and_between_weekday_and_day_of_month() -> None:
    # Monday the 1st of a month: rare, so the shortest gap is far longer than a week.
    gap = min_gap_minutes(make_crontab("0 0 1 1 *"))
    assert gap is not None and gap > 7 * 1440


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("61 * * * *", "61"),
        ("x * * * *", "x"),
        ("0 0 * 30 2", "never"),
    ],
)
def test_malformed_cron_is_rejected(cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_crontab(cron)


def test_task_name() -> None:
    assert (
        task_name("alarm_backends.core.cache.strategy")
        == "alarm_backends.service.scheduler.tasks.cron.alarm_backends_core_cache_strategy"
    )


def _parse(entries: object, source: str = "DEFAULT_CRONTAB") -> list[CronEntry]:
    return parse_entries([("celery_cron", source, entries)])


def test_parse_entries_accepts_tuples_and_json_lists() -> None:
    entries = _parse([("a.job", "* * * * *", "global"), ["b.job", "*/5 * * * *", "cluster"]])
    assert [(e.path, e.run_type, e.queue) for e in entries] == [
        ("a.job", "global", "celery_cron"),
        ("b.job", "cluster", "celery_cron"),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("a.job", "* * *", "global"), r"DEFAULT_CRONTAB\[1\].*bad cron '\* \* \*'"),
        (("a.job", "* * * * *", "local"), r"DEFAULT_CRONTAB\[1\].*run_type 'local'"),
        (("not a path", "* * * * *", "global"), r"DEFAULT_CRONTAB\[1\].*not a dotted"),
        (("a.job", "* * * * *"), r"DEFAULT_CRONTAB\[1\].*expected \(dotted path, cron, run_type\[, options\]\)"),
        (("a.job", "* * * * *", "global", {"queue": "x"}), r"DEFAULT_CRONTAB\[1\].*a dict of missed_run, timezone"),
        (("a.job", "* * * * *", "global", {"timezone": "CST"}), r"DEFAULT_CRONTAB\[1\].*time zone 'CST' is not"),
        (("a.job", "* * * * *", "global", {"missed_run": {"policy": "never"}}), r"DEFAULT_CRONTAB\[1\].*policy in"),
        (
            ("a.job", "* * * * *", "global", {"overlap": "forbid"}),
            r"DEFAULT_CRONTAB\[1\].*overlap 'forbid': expected one of allow, skip, buffer_one, replace",
        ),
        ("a.job * * * * * global", r"DEFAULT_CRONTAB\[1\]"),
    ],
)
def test_a_bad_entry_gives_one_error_naming_it(entry: object, message: str) -> None:
    with pytest.raises(CronConfigError, match=message):
        _parse([("ok.job", "* * * * *", "global"), entry])


def test_an_entry_may_carry_its_missed_run_policy() -> None:
    (entry,) = _parse([("a.job", "* * * * *", "global", {"missed_run": {"policy": "skip", "grace": 30}})])
    assert entry.missed_run == {"policy": "skip", "grace": 30}


def test_an_entry_may_name_its_time_zone() -> None:
    (entry,) = _parse([("a.job", "30 2 * * *", "global", {"timezone": "America/New_York"})])
    assert entry.timezone == "America/New_York"
    zoned = make_crontab(entry.cron, entry.timezone)
    assert isinstance(zoned, ZonedCrontab) and zoned.zone_name == "America/New_York"
    assert not isinstance(make_crontab(entry.cron), ZonedCrontab)


@pytest.mark.parametrize("policy", ["allow", "skip", "buffer_one", "replace"])
def test_an_entry_may_carry_its_overlap_policy(policy: str) -> None:
    (entry,) = _parse([("a.job", "* * * * *", "global", {"overlap": policy})])
    assert entry.overlap == policy
    (plain,) = _parse([("a.job", "* * * * *", "global")])
    assert plain.overlap is None  # CRON_DEFAULT_OVERLAP then


def test_duplicate_paths_are_rejected_across_lists() -> None:
    with pytest.raises(CronConfigError, match=r"LONG_TASK_CRONTAB\[0\].*already scheduled by DEFAULT_CRONTAB\[0\]"):
        parse_entries(
            [
                ("celery_cron", "DEFAULT_CRONTAB", [("a.job", "* * * * *", "global")]),
                ("celery_long_task_cron", "LONG_TASK_CRONTAB", [("a.job", "0 * * * *", "global")]),
            ]
        )


def test_select_drops_excluded_and_global_outside_default_cluster() -> None:
    entries = _parse(
        [("a.job", "* * * * *", "global"), ("b.job", "* * * * *", "cluster"), ("c.job", "0 * * * *", "global")]
    )
    assert [e.path for e in select(entries, exclude=["c.job"], is_default_cluster=True)] == ["a.job", "b.job"]
    assert [e.path for e in select(entries, exclude=[], is_default_cluster=False)] == ["b.job"]


def _brute_force_gap(cron: str) -> int:
    """Shortest gap found by walking minute by minute over eight days (only for daily-repeating schedules)."""
    schedule = make_crontab(cron)
    start = dt.datetime(2024, 1, 1)
    fires = [
        i
        for i in range(8 * 1440)
        if (t := start + dt.timedelta(minutes=i)).minute in schedule.minute and t.hour in schedule.hour
    ]
    return min(b - a for a, b in itertools.pairwise(fires))


@settings(max_examples=60, deadline=None)
@given(
    minute=st.one_of(st.integers(0, 59).map(str), st.integers(1, 90).map(lambda s: f"*/{s}")),
    hour=st.one_of(st.just("*"), st.integers(0, 23).map(str), st.integers(1, 30).map(lambda s: f"*/{s}")),
)
def test_shortest_gap_agrees_with_a_minute_by_minute_walk(minute: str, hour: str) -> None:
    cron = f"{minute} {hour} * * *"
    gap = min_gap_minutes(make_crontab(cron))
    assert gap == _brute_force_gap(cron)
    assert 300 <= expires_for(cron) <= 3600
