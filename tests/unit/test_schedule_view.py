"""``beat_schedule``'s formatting: cron fields and descriptions (Celery's order and quirks), times, table, JSON."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from celery.schedules import crontab, schedule

from alarm_backends.management.schedule import view
from alarm_backends.management.schedule.reader import holder_text
from alarm_backends.service.scheduler.crontab import make_crontab

TZ = dt.timezone(dt.timedelta(hours=8), "CST")
NOW = dt.datetime(2025, 5, 6, 10, 0, 18, tzinfo=TZ).timestamp()  # a Tuesday


@pytest.mark.parametrize(
    ("cron", "standard", "description"),
    [
        ("* * * * *", "* * * * *", "Every minute"),
        ("*/5 * * * *", "*/5 * * * *", "Every 5 minutes"),
        ("0 * * * *", "0 * * * *", "Every hour"),
        # Celery's order is minute hour day-of-week day-of-month month: this is Mondays, not the 1st of the month.
        ("0 0 1 * *", "0 0 * * 1", "At 00:00, only on Monday"),
        ("30 9 * 1 *", "30 9 1 * *", "At 09:30, on day 1 of the month"),
        ("0 0 1 1 *", "0 0 1 * 1", "At 00:00, on day 1 of the month, only on Monday"),
        ("0 8 mon-fri * *", "0 8 * * 1-5", "At 08:00, Monday through Friday"),
        # The quirks deployments rely on, described as Celery runs them.
        ("*/260 * * * *", "0 * * * *", "Every hour"),
        # Not "every 24 minutes": :00, :24, :48, then 12 minutes to the next :00.
        ("*/24 * * * *", "*/24 * * * *", "At 0, 24, and 48 minutes past the hour"),
        ("0 */7 * * *", "0 */7 * * *", "At 00:00, 07:00, 14:00 and 21:00"),
        ("* */1 * * *", "* * * * *", "Every minute"),
        ("0,30 1,5 * * *", "0,30 1,5 * * *", "At 0 and 30 minutes past the hour, at 01:00 and 05:00"),
    ],
)
def test_crons_keep_the_lists_order_and_are_described_as_celery_runs_them(
    cron: str, standard: str, description: str
) -> None:
    sched = make_crontab(cron)
    assert view.cron_text(sched) == cron
    assert view.standard_cron(sched) == standard
    assert view.describe(sched) == description


@pytest.mark.parametrize(
    ("values", "low", "high", "field"),
    [
        (range(60), 0, 59, "*"),
        ({0}, 0, 59, "0"),
        ({0, 24, 48}, 0, 59, "*/24"),
        ({0, 20, 40}, 0, 59, "*/20"),
        ({0, 30}, 0, 59, "0,30"),
        ({5, 10, 15}, 0, 59, "5-15/5"),
        ({1, 2, 3, 4, 5}, 0, 6, "1-5"),
        ({1, 2, 3, 5}, 0, 59, "1-3,5"),
        ({1, 2, 7, 9}, 0, 59, "1,2,7,9"),
        (range(1, 32, 2), 1, 31, "*/2"),
    ],
)
def test_compact_fields(values: set[int], low: int, high: int, field: str) -> None:
    assert view.compact(values, low, high) == field


class Custom:
    def __str__(self) -> str:
        return "at custom times"


def test_schedules_that_are_not_crontabs() -> None:
    assert view.cron_text(schedule(dt.timedelta(hours=1))) == ""
    assert view.describe(schedule(dt.timedelta(hours=1))) == "Every 1h"
    assert view.describe(schedule(dt.timedelta(seconds=90))) == "Every 1m 30s"
    assert view.describe(Custom()) == "at custom times"
    assert view.cron_text(crontab(minute="*/15")) == "*/15 * * * *"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (59.6, "1m"), (190, "3m 10s"), (3600, "1h"), (7500, "2h 5m"), (86405, "1d"),
     (3 * 86400 + 4 * 3600 + 5, "3d 4h"), (-42, "42s")],
)  # fmt: skip
def test_durations_show_the_two_largest_units(seconds: float, text: str) -> None:
    assert view.duration(seconds) == text


def test_times_are_local_and_relative_to_the_server_clock() -> None:
    assert view.relative(NOW + 42, NOW) == "in 42s"
    assert view.relative(NOW - 125, NOW) == "2m 5s ago"
    assert view.relative(NOW + 0.2, NOW) == "now"
    # Every printed time carries its UTC offset.
    assert view.when(NOW + 42, NOW, TZ, short=True) == "10:01:00+08:00 (in 42s)"
    assert view.when(NOW + 42, NOW, TZ) == "2025-05-06 10:01:00+08:00 (in 42s)"
    assert view.when(NOW + 86400, NOW, TZ, short=True) == "2025-05-07 10:00:18+08:00 (in 1d)"
    assert view.stamp(NOW, dt.UTC) == "2025-05-06 02:00:18+00:00"
    assert view.zone_text(TZ, NOW) == "CST (UTC+08:00)"
    assert view.zone_text(zoneinfo.ZoneInfo("Asia/Shanghai"), NOW) == "Asia/Shanghai (CST, UTC+08:00)"
    assert view.zone_text(dt.UTC, NOW) == "UTC (UTC+00:00)"
    assert view.when(None, NOW, TZ) == "-"
    assert view.when(-1.0, NOW, TZ) == "never"
    assert view.iso(NOW, TZ) == "2025-05-06T10:00:18+08:00"
    assert view.iso(-1.0, TZ) is None


def row(**fields: object) -> view.Row:
    base: dict[str, object] = {
        "name": "heartbeat",
        "key": "redbeat:heartbeat",
        "task": "t.heartbeat",
        "queue": "celery_cron",
        "cron": "* * * * *",
        "description": "Every minute",
        "next_run": NOW + 42,
        "last_run": NOW - 18,
        "total_runs": 7,
        "expires": 300.0,
        "static": True,
        "missed_run": {"policy": "once", "grace": 0.0, "max_catchup": 10},
    }
    return view.Row(**{**base, **fields})  # type: ignore[arg-type]


def test_states() -> None:
    assert row().state == "active"
    assert row(paused_since=NOW).state == "paused"
    assert row(enabled=False).state == "disabled"
    assert row(next_run=-1.0).state == "unscheduled"
    assert row(problem="unreadable definition").state == "unreadable"
    assert row(paused_since=NOW, run_requested=NOW).state == "paused, run requested"
    # Given states win over what the store says.
    assert row(status=view.NOT_SYNCED).state == "not synced"
    assert row(status=view.ERROR, problem="DEFAULT_CRONTAB[0] = …: bad cron").state == "error"


def test_table_is_aligned_and_says_paused() -> None:
    lines = view.table([row(), row(name="log_trim", queue="celery_long_task_cron", paused_since=NOW)], NOW, TZ)
    assert lines == [
        "NAME       QUEUE                  CRON (UTC)  DESCRIPTION   NEXT RUN                 "
        "LAST RUN                  RUNS  EXPIRES  STATE",
        "heartbeat  celery_cron            * * * * *   Every minute  10:01:00+08:00 (in 42s)  "
        "10:00:00+08:00 (18s ago)  7     300s     active",
        "log_trim   celery_long_task_cron  * * * * *   Every minute  (paused)                 "
        "10:00:00+08:00 (18s ago)  7     300s     paused",
    ]
    never = view.table([row(last_run=None, expires=None, cron="", description="")], NOW, TZ)[1]
    assert never.split()[2:] == ["-", "-", "10:01:00+08:00", "(in", "42s)", "never", "7", "-", "active"]
    assert view.table([row()], NOW, TZ, cron_zone="Asia/Shanghai")[0].split()[2:4] == ["CRON", "(Asia/Shanghai)"]


def test_show_fields() -> None:
    pairs = dict(view.details(row(paused_since=NOW - 60, args=(1,)), NOW, TZ, "UTC"))
    assert pairs["cron"] == "* * * * *  (Celery's field order: minute hour day-of-week day-of-month month, in UTC)"
    assert pairs["description"] == "Every minute (UTC)"
    assert pairs["next run"] == "2025-05-06 10:01:00+08:00 (in 42s), skipped while paused"
    assert pairs["paused"] == "since 2025-05-06 09:59:18+08:00 (1m ago)"
    assert pairs["missed_run"] == "once (grace 0s, max_catchup 10)"
    assert pairs["expires"] == "300s after publish" and pairs["args"] == "(1,)"
    assert view.lines([("a", "1"), ("long label", "2")]) == ["a:          1", "long label: 2"]


def test_the_overlap_line_says_the_policy_what_runs_what_waits_and_the_totals() -> None:
    assert dict(view.details(row(), NOW, TZ, "UTC"))["overlap"] == "allow"
    found = {"running": "e@1746496800", "worker": "host-1:4242", "since": NOW - 90, "fence": 7,
             "waiting": "e@1746496860", "skipped": 2, "buffered": 1, "replaced": 0}  # fmt: skip
    assert view.overlap_text(row(overlap="buffer_one", overlaps=found), NOW, TZ) == (
        "buffer_one; running: e@1746496800 on host-1:4242 since 2025-05-06 09:58:48+08:00 (1m 30s ago) (fence 7); "
        "waiting: e@1746496860; so far 2 skipped, 1 buffered, 0 replaced"
    )
    unread = {"problem": "its state cannot be read (service DB unavailable: refused)"}
    assert view.overlap_text(row(overlap="skip", overlaps=unread), NOW, TZ) == (
        "skip; its state cannot be read (service DB unavailable: refused)"
    )


def test_json_has_iso_times_and_plain_values() -> None:
    data = view.as_json(row(run_requested=NOW), NOW, TZ)
    assert data == {
        "name": "heartbeat",
        "task": "t.heartbeat",
        "queue": "celery_cron",
        "cron": "* * * * *",
        "description": "Every minute",
        "next_run": "2025-05-06T10:01:00+08:00",
        "next_run_in": 42.0,
        "last_run": "2025-05-06T10:00:00+08:00",
        "total_runs": 7,
        "expires": 300.0,
        "enabled": True,
        "paused": False,
        "paused_since": None,
        "run_requested": "2025-05-06T10:00:18+08:00",
        "state": "active, run requested",
        "static": True,
        "problem": None,
    }
    detailed = view.as_json(row(), NOW, TZ, detailed=True)
    assert detailed["key"] == "redbeat:heartbeat" and detailed["missed_run"]["policy"] == "once"
    assert detailed["problem"] is None


@pytest.mark.parametrize(
    ("values", "low", "high", "field"),
    [
        ({0, 24, 48}, 0, 59, "0,24,48"),  # 24, 24, then 12 minutes: not "every 24 minutes"
        ({0, 20, 40}, 0, 59, "*/20"),
        ({0, 7, 14, 21}, 0, 23, "0,7,14,21"),
        (range(1, 32, 2), 1, 31, "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31"),  # 31 → 1 is one day, or two, or three
    ],
)
def test_compact_fields_for_a_description_write_uneven_steps_out(
    values: set[int], low: int, high: int, field: str
) -> None:
    assert view.compact(values, low, high, even=True) == field


@pytest.mark.parametrize(
    ("holder", "shown"),
    [
        ("web-1:4242:0123456789ab", "host web-1, pid 4242"),  # this scheduler's <host>:<pid>:<nonce>
        ("fd00::5:77:abcdef", "host fd00::5, pid 77"),  # a host name with colons keeps them
        ("6f1c2a9e8d7b4c3a9e8d7b4c3a9e8d7b", "lock token 6f1c2a9e8d7b4c3a9e8d7b4c3a9e8d7b"),  # stock's bare token
        ("a:b:c", "lock token a:b:c"),  # not a pid
        (None, "holder unknown"),
    ],
)
def test_the_lock_holder_is_named_from_the_locks_value(holder: str | None, shown: str) -> None:
    assert holder_text(holder) == shown
