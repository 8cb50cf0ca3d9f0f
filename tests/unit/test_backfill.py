"""``beat_schedule backfill``'s slots and bounds (pure): the slots of a range against croniter and zoneinfo, and what a
backfill refuses."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from celery import Celery
from celery.schedules import schedule
from croniter import croniter

from alarm_backends.management.schedule.backfill import (
    MAX_SLOTS,
    BackfillError,
    on_app,
    parse_time,
    plan,
    slots_between,
    without_runs,
)
from alarm_backends.service.scheduler.crontab import make_crontab as make

UTC = dt.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
UTC_APP = Celery("utc", set_as_current=False)
UTC_APP.conf.timezone = "UTC"  # the backend app's (this process's current app is Django's zone, Asia/Shanghai)


def make_crontab(cron: str, zone: str | None = None) -> object:
    return on_app(make(cron, zone), UTC_APP)


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("cron", "standard"),
    [
        ("*/15 * * * *", "*/15 * * * *"),
        ("0 */7 * * *", "0 */7 * * *"),
        ("5 4 1 * *", "5 4 * * 1"),  # Celery's order: minute hour day-of-week day-of-month month (Mondays)
        ("0 0 * 1 *", "0 0 1 * *"),
    ],
)
def test_the_slots_of_a_range_are_croniters(cron: str, standard: str) -> None:
    start, end = epoch(2026, 11, 1), epoch(2026, 12, 1)
    expected = []
    times = croniter(standard, dt.datetime.fromtimestamp(start - 1, UTC))
    while (at := times.get_next(float)) <= end:
        expected.append(at)
    assert slots_between(make_crontab(cron), start, end, 10_000) == expected


def test_both_ends_of_the_range_are_in_it() -> None:
    start, end = epoch(2026, 12, 1, 3), epoch(2026, 12, 1, 4)
    assert slots_between(make_crontab("0 * * * *"), start, end, 10) == [start, end]


def test_a_zoned_entry_keeps_its_daylight_saving_resolution() -> None:
    # 02:30 New York time; on 8 March 2026 it does not exist and fires at the gap's end, 03:00 EDT.
    slots = slots_between(make_crontab("30 2 * * *", "America/New_York"), epoch(2026, 3, 7), epoch(2026, 3, 10), 10)
    expected = [epoch(2026, 3, 7, 2, 30, tz=NEW_YORK), epoch(2026, 3, 8, 3, 0, tz=NEW_YORK),
                epoch(2026, 3, 9, 2, 30, tz=NEW_YORK)]  # fmt: skip
    assert slots == expected
    assert dt.datetime.fromtimestamp(slots[1], NEW_YORK).utcoffset() == dt.timedelta(hours=-4)


def test_one_slot_past_the_limit_says_the_range_holds_more() -> None:
    assert len(slots_between(make_crontab("* * * * *"), epoch(2026, 12, 1), epoch(2026, 12, 2), 5)) == 6


def test_plan_publishes_the_scheduler_s_slot_ids() -> None:
    name = "alarm_backends.service.scheduler.tasks.cron.a_job"
    now = epoch(2026, 12, 7)
    planned = plan(name, name, make_crontab("0 * * * *"), epoch(2026, 12, 6, 22), epoch(2026, 12, 6, 23, 30), now,
                   "sequential", 100)  # fmt: skip
    assert planned.ids == [f"{name}@{int(epoch(2026, 12, 6, 22))}", f"{name}@{int(epoch(2026, 12, 6, 23))}"]


@pytest.mark.parametrize(
    ("start", "end", "rule", "limit", "message"),
    [
        (epoch(2026, 12, 6), epoch(2026, 12, 8), "sequential", 100, "--to is in the future"),
        (epoch(2026, 12, 6, 2), epoch(2026, 12, 6, 1), "sequential", 100, "--from is after --to"),
        (epoch(2026, 12, 1), epoch(2026, 12, 6), "sequential", 100, "more than 100 slots of e"),
        (
            epoch(2026, 12, 6),
            epoch(2026, 12, 6, 1),
            "all",
            100,
            "overlap 'all': expected one of sequential, allow, skip",
        ),
        (epoch(2026, 12, 6), epoch(2026, 12, 6, 1), "allow", MAX_SLOTS + 1, f"--limit {MAX_SLOTS + 1}: expected 1 to"),
    ],
)
def test_plan_refuses_naming_why(start: float, end: float, rule: str, limit: int, message: str) -> None:
    with pytest.raises(BackfillError, match=message):
        plan("e", "t", make_crontab("0 * * * *"), start, end, epoch(2026, 12, 7), rule, limit)


def test_an_interval_is_refused_and_the_run_log_leaves_out_what_ran() -> None:
    with pytest.raises(BackfillError, match="is not a crontab"):
        plan("e", "t", schedule(run_every=60), epoch(2026, 12, 6), epoch(2026, 12, 6, 1), epoch(2026, 12, 7), "allow",
             100)  # fmt: skip
    planned = plan("e", "t", make_crontab("0 * * * *"), epoch(2026, 12, 6, 1), epoch(2026, 12, 6, 3),
                   epoch(2026, 12, 7), "allow", 100)  # fmt: skip
    ran, skipped = planned.ids[0], planned.ids[1]
    logged = [("1-0", {"slot": ran, "status": "failed"}), ("2-0", {"slot": skipped, "status": "skipped"}),
              ("3-0", {"slot": "other@1", "status": "success"})]  # fmt: skip
    kept, left_out = without_runs(planned, logged)
    assert (kept.ids, left_out) == (planned.ids[1:], 1)  # a failed run ran; a skipped slot did not


def test_times_without_an_offset_are_in_the_given_zone() -> None:
    assert parse_time("2026-12-01T03:00", NEW_YORK) == epoch(2026, 12, 1, 3, tz=NEW_YORK)
    assert parse_time("2026-12-01 03:00+08:00", NEW_YORK) == epoch(2026, 11, 30, 19)
    with pytest.raises(BackfillError, match="'yesterday' is not an ISO 8601 time"):
        parse_time("yesterday", UTC)
