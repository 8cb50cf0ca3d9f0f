"""Crontab entries: validation, Celery's crontab semantics, task names and expires (pure: no I/O).

An entry is ``(dotted path, cron, run_type)``. The cron string is split into Celery's positional order
``crontab(minute, hour, day_of_week, day_of_month, month_of_year)``; Celery's parser gives the quirks the original
has and that deployments rely on: ``*/260`` → minute 0 (hourly), ``*/24`` → 0, 24, 48, ``* */1 * * *`` → every
minute.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab

from alarm_backends.service.scheduler.overlap import check_overlap
from patches.redbeat.policy import MissedRun
from patches.redbeat.zoned import ZonedCrontab, zone_of

RUN_TYPES = ("global", "cluster")
# What an entry's fourth element may hold (see patches.redbeat.policy, patches.redbeat.zoned and .overlap).
ENTRY_OPTIONS = ("missed_run", "timezone", "jitter", "overlap")
CRON_MODULE = "alarm_backends.service.scheduler.tasks.cron"
DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
MIN_EXPIRES, MAX_EXPIRES = 300, 3600
# Day of month x month x weekday (leap days included) repeats only every 28 years (between 1901 and 2099, where
# every fourth year is a leap year): 2001-2028 holds every date on every weekday, in leap and common years, and
# every pair of consecutive days. Four years (the old window) refused 1,098 of the 2,562 crons with one date and
# one weekday as "never fires" (`0 0 1 2 1` first fires 2034-01-02).
_EPOCH = dt.date(2001, 1, 1)
_SPAN_DAYS = (dt.date(2029, 1, 1) - _EPOCH).days


class CronConfigError(ValueError):
    """A crontab list holds an entry that cannot be scheduled; the message names the list and the entry.

    ``setting`` and ``index`` locate the entry (index -1: the list itself is unusable), ``path`` is its dotted path
    when it has a readable one (what the operators' commands name the error row after).
    """

    setting: str = ""
    index: int = -1
    path: str = ""

    def located(self, setting: str, index: int, raw: Any = None) -> CronConfigError:
        self.setting, self.index = setting, index
        first = raw[0] if isinstance(raw, list | tuple) and raw else None
        self.path = first if isinstance(first, str) else ""
        return self


@dataclass(frozen=True)
class CronEntry:
    path: str
    cron: str
    run_type: str
    queue: str
    source: str  # the setting the entry came from, for error messages
    index: int = 0  # its position in that setting's list
    missed_run: dict[str, Any] | None = None  # the entry's own missed-run policy (see patches.redbeat.policy)
    timezone: str | None = None  # the IANA zone its cron is evaluated in; None: CRON_DEFAULT_TIMEZONE
    jitter: float | None = None  # seconds a slot's publish may be delayed by; None: CRON_DEFAULT_JITTER
    overlap: str | None = None  # what a run does while the previous one runs (.overlap); None: CRON_DEFAULT_OVERLAP

    @property
    def task_name(self) -> str:
        return task_name(self.path)


def task_name(path: str) -> str:
    """``a.b.c`` → ``alarm_backends.service.scheduler.tasks.cron.a_b_c``."""
    return f"{CRON_MODULE}.{path.replace('.', '_')}"


def make_crontab(cron: str, zone: str | None = None) -> crontab:
    """Five fields in Celery's order (m h dow dom moy), evaluated in the app's zone or (``zone``) in that IANA
    zone's wall clock (:class:`ZonedCrontab`); raises ValueError on anything else."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day_of_week day_of_month month_of_year), got {len(fields)}")
    schedule = ZonedCrontab(*fields, zone=zone) if zone else crontab(*fields)
    if min_gap_minutes(schedule) is None:
        raise ValueError("it never fires")
    return schedule


def min_gap_minutes(schedule: crontab) -> int | None:
    """The shortest time between two consecutive fire times, in minutes; None if it never fires.

    Celery fires when minute, hour, weekday, day of month and month all match (weekday AND day of month, unlike
    cron's OR).
    """
    return _min_gap(
        frozenset(schedule.minute),
        frozenset(schedule.hour),
        frozenset(schedule.day_of_week),
        frozenset(schedule.day_of_month),
        frozenset(schedule.month_of_year),
    )


@functools.lru_cache(maxsize=1024)
def _min_gap(
    minute: frozenset[int], hour: frozenset[int], dow: frozenset[int], dom: frozenset[int], moy: frozenset[int]
) -> int | None:
    """:func:`min_gap_minutes` of the parsed fields (cached: a day-restricted cron walks 28 years of days)."""
    times = sorted(h * 60 + m for h in hour for m in minute)
    if not times:
        return None
    gaps = [b - a for a, b in itertools.pairwise(times)]
    wrap = times[0] - times[-1]  # from the last fire time of a day to the first of the next fire day
    if len(dow) == 7 and len(dom) == 31 and len(moy) == 12:
        # The common case (all shipped entries): every day fires, so the next day's first run closes the cycle.
        return min([*gaps, 1440 + wrap])
    previous: int | None = None
    for offset in range(_SPAN_DAYS):
        day = _EPOCH + dt.timedelta(days=offset)
        if day.isoweekday() % 7 in dow and day.day in dom and day.month in moy:
            if previous is not None:
                gaps.append((offset - previous) * 1440 + wrap)
            previous = offset
    if previous is None:
        return None
    # One fire day in 28 years (a leap day on one weekday): longer than any clamp cares about.
    return min(gaps) if gaps else _SPAN_DAYS * 1440


def check_jitter(jitter: Any, cron: str) -> None:
    """A jitter is seconds ≥ 0 and shorter than the cron's shortest gap: a slot's publish never passes the next
    slot (the scheduler finds a slot again from its delayed score, patches.redbeat.policy.slot_of)."""
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or jitter < 0:
        raise ValueError(f"jitter {jitter!r}: expected a number of seconds ≥ 0")
    gap = min_gap_minutes(make_crontab(cron))
    if gap is not None and jitter >= gap * 60:
        raise ValueError(f"jitter {jitter!r}: must be shorter than the cron's shortest gap ({gap * 60}s)")


def effective_jitter(entry_jitter: float | None, default: float, cron: str) -> float:
    """The entry's own jitter, or the default capped at half the cron's shortest gap."""
    if entry_jitter is not None:
        return entry_jitter
    gap = min_gap_minutes(make_crontab(cron)) or 1
    return min(float(default), gap * 60 / 2)


@functools.lru_cache(maxsize=4096)
def expires_for(cron: str) -> int:
    """Seconds a published run stays valid: the gap to the next run less one second, clamped to 300-3600.

    Matches the original's table (``* * * * *``→300, ``*/6``→359, ``*/10``→599, hourly→3599, daily→3600). Fixed:
    the original sampled the gap after the next fire time at import, so irregular steps such as ``*/25`` got a
    value that depended on the minute the process started, and it dropped whole days (``timedelta.seconds``);
    here it is the *shortest* gap over the whole schedule, the same on every host and at every start.
    """
    gap = min_gap_minutes(make_crontab(cron))
    assert gap is not None  # make_crontab rejects schedules that never fire
    return min(MAX_EXPIRES, max(gap * 60 - 1, MIN_EXPIRES))


def _entry(raw: Any, queue: str, source: str, index: int) -> CronEntry:
    where = f"{source}[{index}]"
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or len(raw) not in (3, 4):
        raise CronConfigError(f"{where} = {raw!r}: expected (dotted path, cron, run_type[, options])")
    path, cron, run_type = raw[:3]
    options = raw[3] if len(raw) == 4 else {}
    if not isinstance(options, Mapping) or set(options) - set(ENTRY_OPTIONS):
        raise CronConfigError(f"{where} = {raw!r}: options must be a dict of {', '.join(ENTRY_OPTIONS)}")
    missed_run, zone, jitter = options.get("missed_run"), options.get("timezone"), options.get("jitter")
    overlap = options.get("overlap")
    try:
        if overlap is not None:
            check_overlap(overlap)
        if missed_run is not None:
            MissedRun.parse(missed_run)
        if zone is not None:
            zone_of(zone)
        if jitter is not None and isinstance(cron, str):
            check_jitter(jitter, cron)
    except ValueError as exc:
        raise CronConfigError(f"{where} = {raw!r}: {exc}") from None
    if not isinstance(path, str) or not DOTTED_PATH.match(path):
        raise CronConfigError(f"{where} = {raw!r}: {path!r} is not a dotted module or function path")
    if run_type not in RUN_TYPES:
        raise CronConfigError(f"{where} = {raw!r}: run_type {run_type!r} must be one of {', '.join(RUN_TYPES)}")
    if not isinstance(cron, str):
        raise CronConfigError(f"{where} = {raw!r}: cron must be a string")
    try:
        make_crontab(cron)
    except ValueError as exc:
        raise CronConfigError(f"{where} = {raw!r}: bad cron {cron!r}: {exc}") from None
    return CronEntry(
        path=path,
        cron=cron,
        run_type=run_type,
        queue=queue,
        source=source,
        index=index,
        missed_run=missed_run and dict(missed_run),
        timezone=zone,
        jitter=None if jitter is None else float(jitter),
        overlap=overlap,
    )


def parse_entries(
    lists: Iterable[tuple[str, str, Any]], errors: list[CronConfigError] | None = None
) -> list[CronEntry]:
    """``(queue, setting name, entries)`` triples → validated entries.

    Without ``errors`` the first bad entry raises. With it, each bad entry (or list) is recorded there and skipped,
    so one typo does not keep every other job from running; ``manage.py check`` still refuses it before deployment.
    The same path twice would register one task name twice (the second silently replacing the first), so it is an
    error too.
    """
    entries: list[CronEntry] = []
    seen: dict[str, str] = {}

    def bad(error: CronConfigError) -> None:
        if errors is None:
            raise error
        errors.append(error)

    for queue, source, raw_entries in lists:
        if not isinstance(raw_entries, list | tuple):
            message = f"{source} must be a list of (dotted path, cron, run_type), got {raw_entries!r}"
            bad(CronConfigError(message).located(source, -1))
            continue
        for index, raw in enumerate(raw_entries):
            where = f"{source}[{index}]"
            try:
                entry = _entry(raw, queue, source, index)
                if entry.path in seen:
                    raise CronConfigError(f"{where}: {entry.path!r} is already scheduled by {seen[entry.path]}")
            except CronConfigError as error:
                bad(error.located(source, index, raw))
                continue
            seen[entry.path] = where
            entries.append(entry)
    return entries


def select(entries: Iterable[CronEntry], exclude: Iterable[str], is_default_cluster: bool) -> list[CronEntry]:
    """Drop excluded paths, and ``global`` entries outside the default cluster."""
    excluded = set(exclude)
    return [e for e in entries if e.path not in excluded and (e.run_type == "cluster" or is_default_cluster)]
