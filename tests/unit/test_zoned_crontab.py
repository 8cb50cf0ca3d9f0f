"""A crontab in its own time zone across daylight-saving changes, against an oracle written here: every minute of
the two days around each change, mapped to its wall time with ``zoneinfo`` and matched with croniter; a wall time
the change skipped fires once at the gap's end, one it repeats fires once (its first pass). America/New_York and
Europe/Berlin, spring forward and fall back, 2026 and 2027."""

from __future__ import annotations

import datetime as dt
import pickle
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from patches.redbeat.policy import bind_clock, from_epoch, next_due
from patches.redbeat.zoned import ZonedCrontab, zone_of

UTC = dt.UTC
# (zone, the local date of a change): spring forward, fall back.
CHANGES = [
    ("America/New_York", dt.date(2026, 3, 8)),
    ("America/New_York", dt.date(2026, 11, 1)),
    ("Europe/Berlin", dt.date(2026, 3, 29)),
    ("Europe/Berlin", dt.date(2026, 10, 25)),
    ("America/New_York", dt.date(2027, 3, 14)),
    ("Europe/Berlin", dt.date(2027, 10, 31)),
]
CRONS = ["30 2 * * *", "*/30 * * * *", "0 * * * *", "15 1-3 * * *", "*/7 2 * * *", "0 2 * * *", "59 1 * * *",
         "30 1 * * *", "0 3 * * *", "* 2 * * *", "45 2,3 * * *", "0 0 * * *"]  # fmt: skip


def window(zone: str, day: dt.date) -> tuple[int, int]:
    """From 18:00 the day before to noon on the day, local time, in epoch seconds: the change (at 01:00-03:00) and
    a midnight."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(18), tz).timestamp()
    end = dt.datetime.combine(day, dt.time(12), tz).timestamp()
    return int(start), int(end)


def oracle(cron: str, zone: str, start: int, end: int) -> list[float]:
    """Every minute in (start, end] whose wall time matches (its first pass only), and every gap's end when a wall
    time inside the gap matches. The crons here have `*` for the date fields: Celery's and croniter's field orders
    agree on them."""
    tz = ZoneInfo(zone)
    fires: list[float] = []
    t = start - start % 60
    previous_wall = dt.datetime.fromtimestamp(t, tz).replace(tzinfo=None)
    while t < end:
        t += 60
        local = dt.datetime.fromtimestamp(t, tz)
        wall = local.replace(tzinfo=None)
        second_pass = local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
        skipped = []
        step = previous_wall + dt.timedelta(minutes=1)
        while step < wall:  # wall minutes the change jumped over
            skipped.append(step)
            step += dt.timedelta(minutes=1)
        if (not second_pass and croniter.match(cron, wall)) or any(croniter.match(cron, s) for s in skipped):
            fires.append(float(t))
        previous_wall = wall
    return fires


def fired(cron: str, zone: str, start: int, end: int) -> list[float]:
    schedule = ZonedCrontab(*cron.split()[:2], zone=zone)
    fires: list[float] = []
    at: float | None = float(start)
    while (at := schedule.next_after(at)) is not None and at <= end:  # type: ignore[arg-type]
        fires.append(at)
    return fires


@pytest.mark.parametrize(("zone", "day"), CHANGES)
@pytest.mark.parametrize("cron", CRONS)
def test_fire_times_across_a_change_are_the_oracles(cron: str, zone: str, day: dt.date) -> None:
    start, end = window(zone, day)
    assert fired(cron, zone, start, end) == oracle(cron, zone, start, end)


@settings(max_examples=30, deadline=None)
@given(minute=st.sampled_from(["*/5", "*/13", "0", "30", "59", "0-10", "1,31"]),
       hour=st.sampled_from(["*", "1", "2", "3", "1-3", "*/2", "0,2,4"]),
       change=st.sampled_from(CHANGES))  # fmt: skip
def test_any_minute_hour_cron_across_any_change(minute: str, hour: str, change: tuple[str, dt.date]) -> None:
    zone, day = change
    cron = f"{minute} {hour} * * *"
    start, end = window(zone, day)
    assert fired(cron, zone, start, end) == oracle(cron, zone, start, end)


def test_the_documented_cases() -> None:
    """The README's table, by hand: New York, 2026."""
    ny = ZoneInfo("America/New_York")
    spring = fired("30 2", "America/New_York", *window("America/New_York", dt.date(2026, 3, 8)))
    assert [dt.datetime.fromtimestamp(t, ny).isoformat() for t in spring] == [
        "2026-03-08T03:00:00-04:00"
    ]  # the gap's end
    fall = fired("30 1", "America/New_York", *window("America/New_York", dt.date(2026, 11, 1)))
    # 01:30 happens twice: it fires at the first (EDT), not again at the second (EST).
    assert [dt.datetime.fromtimestamp(t, ny).isoformat() for t in fall] == ["2026-11-01T01:30:00-04:00"]


def test_celerys_own_crontab_fires_an_hour_late_in_the_gap() -> None:
    """Why this class exists: Celery's crontab in the same zone fires `30 2` at 03:30 on the spring-forward day."""
    from celery import Celery
    from celery.schedules import crontab

    app = Celery("ny", set_as_current=False)
    app.conf.timezone = "America/New_York"
    before = dt.datetime(2026, 3, 8, 1, tzinfo=ZoneInfo("America/New_York")).timestamp()
    celery_next = next_due(bind_clock(crontab("30", "2", app=app), lambda: from_epoch(before)), from_epoch(before),
                           before)  # fmt: skip
    zoned_next = next_due(bind_clock(ZonedCrontab("30", "2", zone="America/New_York"), lambda: from_epoch(before)),
                          from_epoch(before), before)  # fmt: skip
    assert celery_next - before == 1.5 * 3600  # 03:30 EDT (01:00 EST + 90 min, an hour of which never was)
    assert zoned_next - before == 3600  # 03:00 EDT, the gap's end


def test_it_pickles_compares_and_names_its_zone() -> None:
    schedule = ZonedCrontab("*/5", "1-3", zone="Europe/Berlin")
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert schedule != ZonedCrontab("*/5", "1-3", zone="America/New_York")
    assert repr(schedule).endswith("in Europe/Berlin>")


@pytest.mark.parametrize("name", ["", "CST", "Mars/Olympus", " Asia/Shanghai", 8])
def test_a_zone_that_is_not_an_iana_name_is_refused_by_name(name: object) -> None:
    with pytest.raises(ValueError, match=repr(name).replace("(", r"\(")):
        zone_of(name)  # type: ignore[arg-type]


def test_threads_sharing_one_schedule_get_each_their_own_answer() -> None:
    """The schedule object is shared (by a task and its beat entry, by a worker's threads): one thread's question
    must not change another's answer."""
    schedule = ZonedCrontab("*/7", "*", zone="Europe/Berlin")
    starts = [1_790_000_000 + 97 * n for n in range(400)]
    expected = [schedule.next_after(start) for start in starts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(schedule.next_after, starts)) == expected
