"""The crontab lists' crons against two oracles the project did not write: Celery's own ``crontab`` and croniter.

Crons are written in Celery's field order (minute hour day_of_week day_of_month month_of_year) and evaluated the
Celery way: day of week AND day of month (croniter's ``day_or=False``). The fire times are the scheduler's own
(``patches.redbeat.policy.next_due`` chained on a schedule bound to the beat's clock), and "never fires" is the
loader's refusal (``make_crontab``): both must agree with the oracles, which look 28 years ahead — the period of
day of month x month x weekday, leap days included.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools

import pytest
from celery.schedules import crontab
from croniter import CroniterBadDateError, croniter
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from alarm_backends.service.scheduler.crontab import make_crontab
from alarm_backends.service.scheduler.runner import due_after
from patches.redbeat.policy import bind_clock, from_epoch, next_due

YEARS = 28
START = dt.datetime(2026, 12, 6, 1, 2, 3, tzinfo=dt.UTC)


pytestmark = pytest.mark.usefixtures("backend_app_current")


def standard(cron: str) -> str:
    """Celery's order (m h dow dom moy) → croniter's (m h dom moy dow)."""
    minute, hour, dow, dom, moy = cron.split()
    return f"{minute} {hour} {dom} {moy} {dow}"


# Both oracles agree on the calendar up to here; from 2100 (not a leap year) on, they part ways on Feb 29.
HORIZON = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def croniter_times(cron: str, start: dt.datetime, count: int) -> list[dt.datetime] | None:
    """Up to ``count`` fire times after ``start`` by croniter (those before HORIZON, each within 28 years of the
    one before), or None when it finds none in the 28 years after ``start``."""
    it = croniter(standard(cron), start, day_or=False, max_years_between_matches=YEARS)
    times: list[dt.datetime] = []
    try:
        while len(times) < count and (not times or times[-1] < HORIZON):
            times.append(it.get_next(dt.datetime))
    except CroniterBadDateError:
        if not times:
            return None
    return [at for at in times if at < HORIZON]


def scheduler_times(cron: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` fire times after ``start`` as the beat computes them: each from the last, on its clock."""
    schedule = make_crontab(cron)
    times: list[dt.datetime] = []
    now = start.timestamp()
    for _ in range(count):
        bind_clock(schedule, functools.partial(from_epoch, now))
        now = next_due(schedule, from_epoch(now), now)
        times.append(from_epoch(now))
    return times


def celery_first(cron: str, start: dt.datetime) -> dt.datetime | None:
    """Celery's own answer: the first fire time after ``start`` (None if it refuses the cron as impossible)."""
    try:
        schedule = crontab(*cron.split(), nowfun=lambda: start)
    except ValueError:
        return None
    return start + schedule.remaining_estimate(start)


# --- every date on every weekday ---------------------------------------------------------------------------------

DATES = [(month, day) for month in range(1, 13) for day in range(1, 32) if day <= (29 if month == 2 else 31)]
DATES = [(month, day) for month, day in DATES if day <= calendar.monthrange(2028, month)[1]]


def test_every_date_on_every_weekday_fires_as_both_oracles_say() -> None:
    """All 2,562 crons with one date and one weekday: 1,098 of them were refused as "never fires" (the check looked
    four years ahead), e.g. `0 0 1 2 1` (2034-01-02), `0 0 2 1 1` (2030-01-01), `0 0 1 29 2` (2044-02-29)."""
    assert len(DATES) * 7 == 2562
    wrong = []
    for month, day in DATES:
        for weekday in range(7):
            cron = f"0 0 {weekday} {day} {month}"
            oracle = croniter_times(cron, START, 1)
            try:
                ours = scheduler_times(cron, START, 1)
            except ValueError as exc:
                wrong.append(f"{cron}: refused ({exc}); croniter: {oracle}")
                continue
            if ours != oracle or ours[0] != celery_first(cron, START):
                wrong.append(f"{cron}: {ours} vs croniter {oracle}, celery {celery_first(cron, START)}")
    assert not wrong, f"{len(wrong)} of 2562 disagree, e.g. {wrong[:3]}"


@pytest.mark.parametrize(
    ("cron", "first"),
    [("0 0 1 2 1", "2034-01-02"), ("0 0 2 1 1", "2030-01-01"), ("0 0 1 29 2", "2044-02-29")],
)
def test_the_issues_vectors(cron: str, first: str) -> None:
    assert scheduler_times(cron, START, 1)[0] == dt.datetime.fromisoformat(f"{first}T00:00:00+00:00")


@pytest.mark.parametrize("cron", ["0 0 * 30 2", "0 0 * 31 4", "0 0 * 31 2,4,6,9,11", "0 0 1 30,31 2"])
def test_dates_that_never_occur_are_refused_like_both_oracles(cron: str) -> None:
    assert croniter_times(cron, START, 1) is None and celery_first(cron, START) is None
    with pytest.raises(ValueError):
        make_crontab(cron)


# --- any cron --------------------------------------------------------------------------------------------------


def field(low: int, high: int) -> st.SearchStrategy[str]:
    """One cron field: ``*``, a value, a range, a step over ``*`` or a range, or a list of those."""
    value = st.integers(low, high)
    span = high - low + 1
    # Ranges go upwards (a degenerate `0-0` is a single value to Celery and every minute to croniter: a quirk of
    # neither the lists nor the platform).
    ranges = st.tuples(value, value).filter(lambda ab: ab[0] != ab[1]).map(lambda ab: f"{min(ab)}-{max(ab)}")
    part = st.one_of(
        value.map(str),
        ranges,
        st.integers(1, span).map(lambda step: f"*/{step}"),
        st.tuples(ranges, st.integers(1, span)).map(lambda rs: f"{rs[0]}/{rs[1]}"),
    )
    return st.one_of(st.just("*"), part, st.lists(part, min_size=2, max_size=4).map(",".join))


CRONS = st.tuples(field(0, 59), field(0, 23), field(0, 6), field(1, 31), field(1, 12)).map(" ".join)
STARTS = st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2060, 12, 31), timezones=st.just(dt.UTC))


@settings(max_examples=300, deadline=None)
@given(cron=CRONS, start=STARTS)
@example(cron="0 0 1 29 2", start=START)
@example(cron="59 23 * 28-29 2", start=START)
@example(cron="*/7 */5 1-5 1,15 *", start=START)
def test_the_next_20_fire_times_are_celerys_and_croniters(cron: str, start: dt.datetime) -> None:
    start = start.replace(microsecond=0)
    oracle = croniter_times(cron, start, 20)
    if oracle is None:  # no fire in 28 years: an impossible date, refused by the loader as by Celery
        assert celery_first(cron, start) is None
        with pytest.raises(ValueError):
            make_crontab(cron)
        return
    assume(oracle)  # the first fire time is past HORIZON
    assert scheduler_times(cron, start, len(oracle)) == oracle
    assert celery_first(cron, start) == oracle[0]


@settings(max_examples=200, deadline=None)
@given(cron=CRONS, start=STARTS)
@example(cron="*/5 * * * *", start=START)
@example(cron="0 0 * * *", start=START.replace(hour=23, minute=59, second=59))
def test_a_runs_next_due_gauge_is_croniters_next_fire_time(cron: str, start: dt.datetime) -> None:
    """``bkmonitor_cron_task_next_due_timestamp_seconds``: the first fire time after the run's end, fractions of a
    second included (a run ending at xx:04:59.5 of a `*/5` job is due next at xx:05)."""
    oracle = croniter_times(cron, start, 1)
    assume(oracle)  # a cron that fires (the loader refuses the others) before HORIZON
    assert oracle is not None
    assert due_after(make_crontab(cron), start.timestamp()) == oracle[0].timestamp()
