"""What a due entry publishes, and when it is next due (pure: no I/O, no clock of its own).

Every time comes from one clock, the Redis server's ``TIME`` read once per tick, so beats on hosts with skewed clocks
agree on what is due. Schedules are made to use that clock too (``bind_clock``).

Missed runs, per entry (``missed_run`` in the beat entry, or the scheduler's default):

* ``once`` (default, the original's behaviour): a run later than the grace period still fires, once, however many
  slots were missed;
* ``skip``: a run later than the grace period does not fire; the entry waits for its next slot;
* ``all``: every missed slot fires, oldest first, at most ``max_catchup`` of them (the most recent ones).

A run within ``grace`` seconds of its slot — and never less than ``ON_TIME`` seconds, the ordinary delay between a
slot and the tick that serves it — is on time under every policy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab
from celery.schedules import schedule as celery_schedule

ONCE, SKIP, ALL = "once", "skip", "all"
POLICIES = (ONCE, SKIP, ALL)
# Scores below zero mark entries that will never fire again (the stock layout's convention).
NEVER = -1.0
# A tick serves a slot a little after it (wake-up jitter, a busy burst): that is not a missed run.
ON_TIME = 5.0


@dataclass(frozen=True)
class MissedRun:
    policy: str = ONCE
    grace: float = 0.0
    max_catchup: int = 10

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, default: MissedRun | None = None, where: str = "") -> MissedRun:
        """``{"policy": "all", "grace": 30, "max_catchup": 5}`` over ``default``; a bad value names ``where``."""
        base = default or cls()
        if not raw:
            return base
        unknown = set(raw) - {"policy", "grace", "max_catchup"}
        policy = raw.get("policy", base.policy)
        try:
            grace = float(raw.get("grace", base.grace))
            max_catchup = int(raw.get("max_catchup", base.max_catchup))
        except (TypeError, ValueError):
            raise ValueError(f"{where}missed_run {dict(raw)!r}: grace and max_catchup must be numbers") from None
        if unknown or policy not in POLICIES or grace < 0 or max_catchup < 1:
            raise ValueError(
                f"{where}missed_run {dict(raw)!r}: expected policy in {POLICIES}, grace ≥ 0, max_catchup ≥ 1"
            )
        return cls(policy=policy, grace=grace, max_catchup=max_catchup)


@dataclass(frozen=True)
class Plan:
    """The outcome of one due entry in one tick."""

    slots: tuple[float, ...]  # due times (epoch seconds) to publish, one message each
    next_due: float  # the new score (NEVER if the schedule has no future run)
    skipped: int  # slots missed and not published


def task_id(name: str, slot: float) -> str:
    """``<entry name>@<due epoch seconds>``: the same slot gets the same id from any beat, so workers can drop a
    second delivery."""
    return f"{name}@{int(slot)}"


def to_epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def from_epoch(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def bind_clock(schedule: Any, now: Callable[[], dt.datetime]) -> Any:
    """Make a Celery schedule read ``now`` instead of the host clock (Celery schedules take a ``nowfun``)."""
    schedule.nowfun = now
    return schedule


def next_due(schedule: Any, after: dt.datetime, now: float) -> float:
    """The first fire time after ``after`` (epoch seconds), as the schedule computes it against ``now``."""
    remaining = schedule.remaining_estimate(after)
    if remaining is None:
        return NEVER
    return now + remaining.total_seconds()


# How far before its due time stock redbeat can store an interval entry's score: the due time floored to the second,
# less the moments between stamping last_run_at and computing the score from its own "now".
SNAP_WINDOW = 2.0


def snap(schedule: Any, score: float, last_run_at: dt.datetime | None, now: float) -> float:
    """The slot a stored score stands for: the schedule's own fire time, not the score itself.

    Stock celery-redbeat writes each score as the due time floored to the whole second: an interval entry's score
    is up to a second before its due time (it fired 0.49-0.79 s early), and a crontab entry's one second *before*
    its slot (``remaining_estimate`` is measured from now and its fraction dropped: ``xx:59`` for ``* * * * *``).
    Taken as the slot, that fired crontab entries at ``xx:59`` and again at the minute, under two ids the workers'
    dedupe cannot match. So a score moves to the slot it stands for when that lies less than SNAP_WINDOW after it:
    for a crontab, its first fire time at or after the score; for an interval, ``last_run_at + run_every``. Any
    other score is taken as it is (an operator's hand-set score).

    Only a whole-second score can be stock's (it stores ``calendar.timegm``). This scheduler's first run "now" is
    the Redis clock with its microseconds: seeded in the last SNAP_WINDOW seconds before a slot, it was moved to
    that slot and the entry did not fire on the tick that seeded it.
    """
    if score != int(score):
        return score
    if isinstance(schedule, crontab):
        # Celery's crontab gives the first fire time after the minute of `after`: a hair before the score.
        due = next_due(schedule, from_epoch(score - 1e-3), now)
    elif isinstance(schedule, celery_schedule) and last_run_at is not None:
        due = to_epoch(last_run_at) + schedule.run_every.total_seconds()
    else:
        return score
    return due if 0 <= due - score < SNAP_WINDOW else score


def seed_score(schedule: Any, last_run_at: dt.datetime | None, now: float, first_run_now: bool = False) -> float:
    """The score an entry gets when the schedule is synced: if it never ran, its first slot or, with
    ``first_run_now``, now (fire at once); else its next fire time after the last run — in the past if runs were
    missed, so the tick sees how late it is."""
    if last_run_at is None:
        return now if first_run_now else next_due(schedule, from_epoch(now), now)
    return next_due(schedule, last_run_at, now)


def plan(
    schedule: Any, score: float, now: float, missed: MissedRun, following: float | None = None, offset: float = 0.0
) -> Plan:
    """Decide what a due entry (``score <= now``) publishes, and its next score, under its missed-run policy.

    ``following`` (the schedule's first fire time after now) may be passed in when the caller already knows it:
    entries sharing a schedule share it within a tick. ``offset``: the slot's jitter (see :func:`jitter_offset`),
    which is not lateness: the run is late from its slot plus that.
    """
    if following is None:
        following = next_due(schedule, from_epoch(now), now)
    late = now - score - offset
    if late <= max(missed.grace, ON_TIME) or missed.policy == ONCE:
        return Plan(slots=(score,), next_due=following, skipped=0)
    if missed.policy == SKIP:
        return Plan(slots=(), next_due=following, skipped=1)
    # ALL: walk the missed slots from the first one up to now.
    slots = [score]
    while len(slots) < 100_000:
        step = next_due(schedule, from_epoch(slots[-1]), now)
        if step == NEVER or step > now or step <= slots[-1]:
            break
        slots.append(step)
    kept = tuple(slots[-missed.max_catchup :])
    return Plan(slots=kept, next_due=following, skipped=len(slots) - len(kept))


# --- jitter ---------------------------------------------------------------------------------------------------------
# An entry with ``jitter`` seconds is published up to that long after each slot: its score is the slot plus an offset
# drawn from the slot's id, so every beat computes the same one and the id does not change. The jitter is shorter
# than the schedule's shortest gap (the configuration refuses more), so exactly one slot lies within ``jitter``
# before any score, and the slot is found again from the score alone.


def jitter_offset(name: str, slot: float, jitter: float) -> float:
    """The delay of ``name``'s ``slot`` in [0, jitter), in milliseconds: the first 52 bits of the SHA-1 of its id."""
    if jitter <= 0:
        return 0.0
    fraction = int(hashlib.sha1(task_id(name, slot).encode("utf-8")).hexdigest()[:13], 16) / 16**13
    return round(fraction * jitter, 3)


def jittered_score(name: str, slot: float, jitter: float) -> float:
    """The score that publishes ``slot`` of an entry with ``jitter``: the slot plus its offset (NEVER stays)."""
    return slot if slot == NEVER or jitter <= 0 else slot + jitter_offset(name, slot, jitter)


def slot_of(schedule: Any, score: float, jitter: float, now: float) -> float:
    """The slot a jittered score publishes: the schedule's one fire time in (score - jitter, score]. A score with no
    offset (written before the entry had its jitter) is its own slot. To the millisecond: Celery's estimate is a
    timedelta from its now, a microsecond off the slot at times, and the id takes the slot's whole second."""
    return round(next_due(schedule, from_epoch(score - jitter), now), 3)


def entry_jitter(name: str, raw: Any, schedule: Any) -> float:
    """An entry's ``jitter`` option: seconds ≥ 0, for a crontab schedule (an interval's slots follow its last run,
    not a calendar, so a score cannot lead back to its slot); a ValueError naming the entry otherwise."""
    if raw is None or raw == 0:
        return 0.0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError(f"entry {name}: jitter {raw!r}: expected a number of seconds ≥ 0")
    if not isinstance(schedule, crontab):
        raise ValueError(f"entry {name}: jitter applies to crontab schedules, not {schedule!r}")
    return float(raw)
