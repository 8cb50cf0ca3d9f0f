"""How ``manage.py beat_schedule`` shows the schedule: rows, the aligned table, ``show``'s fields and the JSON
(pure: no I/O; every "now" is the Redis server's clock, passed in).

Crons are printed as the crontab lists write them: five fields in **Celery's** order (minute, hour, day of week, day
of month, month of year). The description is of what Celery will actually do: it is made from the parsed field
values put back into standard cron order, so ``0 0 1 * *`` reads "only on Monday" and the ``*/260`` quirk reads
"every hour".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery.schedules import crontab, schedule
from cron_descriptor import ExpressionDescriptor, Options

CRON_ORDER = "Celery's field order: minute hour day-of-week day-of-month month"
# Explicit states of rows that are not read from the store.
NOT_SYNCED = "not synced"  # configured, but no beat has written it into the store yet
ERROR = "error"  # a crontab entry that is skipped (malformed) or fails each run (its job does not import)
# (low, high) of standard cron's fields, in standard order: minute hour day-of-month month day-of-week.
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


@dataclass(frozen=True)
class Row:
    """One schedule entry, decoded. Times are epoch seconds."""

    name: str
    key: str
    task: str = "?"
    queue: str = "?"
    cron: str = ""  # as the crontab lists write it; "" for a schedule that is not a crontab
    zone: str = ""  # the IANA zone the cron is evaluated in, when the entry names one ("": the app's)
    description: str = ""
    next_run: float | None = None  # the entry's score: its next slot (skipped while paused); None: not scheduled
    last_run: float | None = None
    total_runs: int = 0
    expires: float | None = None  # seconds a published run stays valid (the task's expires)
    enabled: bool = True
    paused_since: float | None = None
    run_requested: float | None = None  # a pending `beat_schedule run`
    static: bool = False
    schedule: str = ""  # repr of the schedule object
    args: Any = ()
    kwargs: Any = field(default_factory=dict)
    options: Any = field(default_factory=dict)
    missed_run: dict[str, Any] = field(default_factory=dict)
    jitter: float = 0.0  # seconds each slot's publish may be delayed by
    overlap: str = "allow"  # what a run does while the previous one runs (alarm_backends.service.scheduler.overlap)
    # The overlap's state now (overlap.lease.state: running, worker, since, waiting, and the totals); read for one
    # entry's page, not for the list.
    overlaps: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # why the entry cannot be read or published, if it cannot
    status: str = ""  # NOT_SYNCED or ERROR: a state the row was given rather than read from the store

    @property
    def state(self) -> str:
        if self.status:
            state = self.status
        elif self.problem:
            state = "unreadable"
        elif not self.enabled:
            state = "disabled"
        elif self.paused_since is not None:
            state = "paused"
        elif self.next_run is None or self.next_run < 0:
            state = "unscheduled"
        else:
            state = "active"
        return f"{state}, run requested" if self.run_requested is not None else state


# --- crons ---------------------------------------------------------------------------------------------------------


def schedule_zone(sched: Any) -> str:
    """The zone a crontab names for itself (``patches.redbeat.zoned.ZonedCrontab``), or ""."""
    return str(getattr(sched, "zone_name", "") or "")


def cron_text(sched: Any) -> str:
    """A crontab's five fields as the crontab lists write them (Celery's order); "" for other schedules."""
    if not isinstance(sched, crontab):
        return ""
    parts = (sched._orig_minute, sched._orig_hour, sched._orig_day_of_week, sched._orig_day_of_month,
             sched._orig_month_of_year)  # fmt: skip
    return " ".join(str(part) for part in parts)


def standard_cron(sched: crontab, even: bool = False) -> str:
    """What ``sched`` fires on, as a standard cron expression (minute hour day-of-month month day-of-week);
    ``even``: steps that do not divide their field are written as lists (see :func:`compact`)."""
    values = (sched.minute, sched.hour, sched.day_of_month, sched.month_of_year, sched.day_of_week)
    return " ".join(compact(v, low, high, even) for v, (low, high) in zip(values, _BOUNDS, strict=True))


def compact(values: Iterable[int], low: int, high: int, even: bool = False) -> str:
    """A set of field values as a cron field: ``*``, ``*/5``, ``1-5``, ``0-30/10`` or a list of values and ranges.
    ``even``: ``*/n`` only where the gaps stay n across the field's wrap (for descriptions)."""
    chosen = sorted(set(values))
    if chosen == list(range(low, high + 1)):
        return "*"
    if len(chosen) > 2:
        step = chosen[1] - chosen[0]
        if chosen == list(range(chosen[0], chosen[-1] + 1, step)):
            if step > 1 and chosen[0] == low and chosen[-1] + step > high:
                if not even or (high - low + 1) % step == 0:
                    return f"*/{step}"
                # `*/24` minutes fires at :00, :24 and :48, then 12 minutes to the next :00: "every 24 minutes"
                # would be wrong, so a description is made from the values themselves.
                return ",".join(map(str, chosen))
            return f"{chosen[0]}-{chosen[-1]}" + (f"/{step}" if step > 1 else "")
    runs: list[list[int]] = []
    for value in chosen:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs)


def describe(sched: Any) -> str:
    """A human description of when ``sched`` fires."""
    if isinstance(sched, crontab):
        options = Options()
        options.use_24hour_time_format = True
        try:
            return str(ExpressionDescriptor(standard_cron(sched, even=True), options).get_description())
        except Exception:  # cron-descriptor refuses some valid crons; the cron column still says it all
            return ""
    if isinstance(sched, schedule):
        return f"Every {duration(sched.run_every.total_seconds())}"
    return str(sched)


# --- times ---------------------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``42s``, ``3m 10s``, ``2h``, ``3d 4h``: at most the two largest units."""
    left = round(abs(seconds))
    if left < 60:
        return f"{left}s"
    parts: list[tuple[int, str]] = []
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count or parts:
            parts.append((count, suffix))
        if len(parts) == 2:
            break
    return " ".join(f"{count}{suffix}" for count, suffix in parts if count)


def relative(at: float, now: float) -> str:
    """``in 42s``, ``42s ago``, ``now``."""
    gap = at - now
    if abs(gap) < 0.5:
        return "now"
    return f"in {duration(gap)}" if gap > 0 else f"{duration(gap)} ago"


def local(at: float, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, tz=tz)


def stamp(at: float, tz: dt.tzinfo, short: bool = False) -> str:
    """``2025-05-06 10:01:00+08:00`` (``short``: ``10:01:00+08:00``). Every printed time carries its UTC offset: the
    commands print in Django's TIME_ZONE while crons run in UTC, and an abbreviation such as CST names several
    zones."""
    moment = local(at, tz)
    return moment.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S") + moment.isoformat()[-6:]


def when(at: float | None, now: float, tz: dt.tzinfo, short: bool = False) -> str:
    """A time in ``tz`` and relative to now; ``short`` leaves the date out when it is today's."""
    if at is None:
        return "-"
    if at < 0:
        return "never"
    same_day = local(at, tz).date() == local(now, tz).date()
    return f"{stamp(at, tz, short=short and same_day)} ({relative(at, now)})"


def zone_text(tz: dt.tzinfo, now: float) -> str:
    """``Asia/Shanghai (CST, UTC+08:00)``: the zone the times are printed in, by name when it has one."""
    moment = local(now, tz)
    key = getattr(tz, "key", None)
    offset = f"UTC{moment.isoformat()[-6:]}"
    name = moment.tzname() or ""
    return f"{key} ({name}, {offset})" if key else f"{name} ({offset})" if name and name != offset else offset


def iso(at: float | None, tz: dt.tzinfo) -> str | None:
    return None if at is None or at < 0 else local(at, tz).isoformat(timespec="seconds")


# --- output --------------------------------------------------------------------------------------------------------

COLUMNS = ("NAME", "QUEUE", "CRON", "DESCRIPTION", "NEXT RUN", "LAST RUN", "RUNS", "EXPIRES", "STATE")


def cells(row: Row, now: float, tz: dt.tzinfo) -> dict[str, str]:
    """One row's listed fields as text (``beat_schedule list``'s columns, the console's schedule page)."""
    return {
        "name": row.name,
        "queue": row.queue,
        "cron": (f"{row.cron} ({row.zone})" if row.zone else row.cron) or "-",
        "description": row.description or "-",
        "next_run": "(paused)" if row.paused_since is not None else when(row.next_run, now, tz, short=True),
        "last_run": when(row.last_run, now, tz, short=True) if row.last_run is not None else "never",
        "runs": str(row.total_runs),
        "expires": f"{row.expires:.0f}s" if row.expires is not None else "-",
        "state": row.state,
    }


def table(rows: Sequence[Row], now: float, tz: dt.tzinfo, cron_zone: str = "UTC") -> list[str]:
    """The aligned table of ``beat_schedule list``, header first; the CRON column says the zone crons run in."""
    header = tuple(f"CRON ({cron_zone})" if column == "CRON" else column for column in COLUMNS)
    lines = [header] + [tuple(cells(row, now, tz).values()) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]


def details(row: Row, now: float, tz: dt.tzinfo, timezone: str) -> list[tuple[str, str]]:
    """Every field of one entry (``beat_schedule show``), as (label, value) pairs."""
    policy = row.missed_run
    timezone = row.zone or timezone  # the entry's own zone, if it names one
    paused = f"since {when(row.paused_since, now, tz)}" if row.paused_since is not None else "no"
    return [
        ("name", row.name),
        ("key", row.key),
        ("state", row.state + (f" ({row.problem})" if row.problem else "")),
        ("task", row.task),
        ("queue", row.queue),
        ("cron", f"{row.cron}  ({CRON_ORDER}, in {timezone})" if row.cron else "-"),
        ("description", f"{row.description} ({timezone})" if row.cron else row.description or "-"),
        ("schedule", row.schedule or "-"),
        ("next run", when(row.next_run, now, tz) + (", skipped while paused" if row.paused_since is not None else "")),
        ("last run", when(row.last_run, now, tz) if row.last_run is not None else "never"),
        ("total runs", str(row.total_runs)),
        ("expires", f"{row.expires:.0f}s after publish" if row.expires is not None else "never"),
        ("enabled", "yes" if row.enabled else "no"),
        ("paused", paused),
        ("run requested", f"{when(row.run_requested, now, tz)}, pending" if row.run_requested is not None else "no"),
        ("static", "yes (from beat_schedule)" if row.static else "no (added to Redis directly)"),
        ("args", repr(row.args)),
        ("kwargs", repr(row.kwargs)),
        ("options", repr(row.options)),
        ("missed_run", missed_run_text(policy)),
        ("jitter", f"up to {row.jitter:g}s after each slot (a fixed offset per slot; its id unchanged)"
                   if row.jitter else "none"),
        ("overlap", overlap_text(row, now, tz)),
    ]  # fmt: skip


def overlap_text(row: Row, now: float, tz: dt.tzinfo) -> str:
    """``skip; running: <slot> on <worker> since <when>; waiting: <slot>; so far 2 skipped, …``."""
    parts = [row.overlap]
    found = row.overlaps
    if found.get("running"):
        parts.append(f"running: {found['running']} on {found.get('worker') or '?'} since "
                     f"{when(float(found.get('since') or 0), now, tz)} (fence {found.get('fence')})")  # fmt: skip
    if found.get("waiting"):
        parts.append(f"waiting: {found['waiting']}")
    if row.overlap != "allow" and "skipped" in found:
        parts.append(f"so far {found['skipped']} skipped, {found['buffered']} buffered, {found['replaced']} replaced")
    if found.get("problem"):
        parts.append(str(found["problem"]))
    return "; ".join(parts)


def missed_run_text(policy: dict[str, Any]) -> str:
    if not policy:
        return "-"
    return f"{policy['policy']} (grace {duration(policy['grace'])}, max_catchup {policy['max_catchup']})"


def lines(pairs: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in pairs) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in pairs]


def as_json(row: Row, now: float, tz: dt.tzinfo, detailed: bool = False) -> dict[str, Any]:
    """One entry as JSON: ISO times in ``tz``, durations in seconds."""
    data: dict[str, Any] = {
        "name": row.name,
        "task": row.task,
        "queue": row.queue,
        "cron": row.cron or None,
        "description": row.description or None,
        "next_run": iso(row.next_run, tz),
        "next_run_in": None if row.next_run is None or row.next_run < 0 else round(row.next_run - now, 3),
        "last_run": iso(row.last_run, tz),
        "total_runs": row.total_runs,
        "expires": row.expires,
        "enabled": row.enabled,
        "paused": row.paused_since is not None,
        "paused_since": iso(row.paused_since, tz),
        "run_requested": iso(row.run_requested, tz),
        "state": row.state,
        "static": row.static,
        "problem": row.problem or None,
    }
    if detailed:
        data.update(key=row.key, schedule=row.schedule, args=row.args, kwargs=row.kwargs, options=row.options,
                    missed_run=row.missed_run, overlap=row.overlap, overlaps=row.overlaps)  # fmt: skip
    return data
