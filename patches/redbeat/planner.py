"""Planning one tick: each due or requested entry → the runs to publish, its next score and its new meta.

Pure apart from logging: the scheduler fetches the entries, publishes the runs and commits the updates.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable
from typing import Any

from celery.schedules import crontab, schedule

from patches.redbeat.controls import run_now_id
from patches.redbeat.entries import Definition, Definitions, MetaWriter, decode_meta, run_count
from patches.redbeat.observe import PlannedRun
from patches.redbeat.policy import (
    NEVER,
    from_epoch,
    jitter_offset,
    jittered_score,
    next_due,
    plan,
    slot_of,
    snap,
    task_id,
)
from patches.redbeat.publisher import Templates
from patches.redbeat.store import Due, DueEntry, Update

logger = logging.getLogger("celery.beat")

# A disabled entry is looked at again after this long, as in celery-redbeat.
DISABLED_RETRY = 5.0
# An entry that cannot be dispatched (see TickPlanner.__call__) is looked at again after this long.
BROKEN_RETRY = 60.0

Planned = tuple[Definition | None, list[PlannedRun], Update]


def schedule_key(sched: Any) -> Hashable | None:
    """What decides a schedule's next fire time after a given now, exactly; None for types not known to share it.

    Not ``repr``: an interval's repr is rounded ("<freq: 1.00 day>" for both 86,450 s and 86,830 s), and entries
    keyed on it borrowed each other's next run (the second ran 380 s early).
    """
    if type(sched) is crontab:
        fields = (sched.minute, sched.hour, sched.day_of_week, sched.day_of_month, sched.month_of_year)
        return "crontab", *(frozenset(values) for values in fields), str(sched.tz)
    if type(sched) is schedule:
        return "interval", sched.run_every, bool(sched.relative)
    return None


class TickPlanner:
    """Plans the entries of one tick, all against the same ``now`` (the Redis server's clock at the fetch)."""

    def __init__(self, definitions: Definitions, templates: Templates, now: float) -> None:
        self.definitions = definitions
        self.templates = templates
        self.now = now
        # Entries with equal schedules (most are "* * * * *" or "*/5 …") have the same next fire time after now.
        self.following: dict[Hashable, float] = {}
        self.snapped: dict[tuple[Hashable, float], float] = {}
        self.meta = MetaWriter(from_epoch(now))

    def __call__(self, item: DueEntry) -> Planned:
        """``plan``, but an entry that cannot be planned or built (unreadable definition or meta, bad options) is
        logged and parked for BROKEN_RETRY seconds instead of blocking every entry behind it."""
        try:
            planned = self.plan(item)
            if planned[0] is not None and planned[1]:
                planned[0].template(self.templates)
            return planned
        except Exception:
            logger.exception("beat: entry %s cannot be dispatched; retrying in %.0fs", item.key, BROKEN_RETRY)
            # A run-now request of it is dropped (served): retried every tick, it would fail every tick.
            return None, [], Update(item.key, self.now + BROKEN_RETRY if item.due else None, "", item.requested)

    def plan(self, item: DueEntry) -> Planned:
        """One due or requested entry → (its definition, the runs to publish, its new score and meta)."""
        if item.definition is None:
            logger.warning("beat: entry %s has no definition, %s", item.key, "removing it" if item.due else
                           "dropping the run requested of it")  # fmt: skip
            return None, [], Update(item.key, NEVER if item.due else None, "", item.requested)
        definition = self.definitions.get(item.definition, item.key)
        runs, score = self.slots(definition, item) if item.due else ([], None)
        if item.requested is not None:  # an operator's `beat_schedule run`, paused or not
            name = definition.name
            runs.append(PlannedRun(name, run_now_id(name, item.requested), item.requested / 1000, requested=True))
        new_meta = self.meta(run_count(item.meta) + len(runs)) if runs else ""
        return definition, runs, Update(item.key, score, new_meta, item.requested)

    def slots(self, definition: Definition, item: DueEntry) -> tuple[list[PlannedRun], float]:
        """The slots a due entry publishes, and its next score."""
        now = self.now
        if not definition.enabled:
            return [], now + DISABLED_RETRY
        sched = definition.schedule
        shape = schedule_key(sched)
        if shape is not None and shape not in self.following:
            self.following[shape] = next_due(sched, from_epoch(now), now)
        upcoming = self.following.get(shape) if shape else None
        name, jitter = definition.name, definition.jitter
        if item.paused:  # skipped, not queued up: it resumes at its next slot
            logger.info("beat: %s is paused: its slot is skipped", definition.name)
            following = upcoming if upcoming is not None else next_due(sched, from_epoch(now), now)
            return [], jittered_score(name, following, jitter)
        assert item.score is not None  # a due entry comes from the ZSET
        slot = slot_of(sched, item.score, jitter, now) if jitter else None
        if slot is None or slot > item.score:  # no jitter, or a score that is no slot's (a first run "now")
            slot = self.slot(sched, item)
        if slot > now:  # a score written before its slot (by stock redbeat): wait for the slot itself
            return [], jittered_score(name, slot, jitter)
        offset = jitter_offset(name, slot, jitter)
        decided = plan(sched, slot, now, definition.missed_run, upcoming, offset)
        if decided.skipped:
            logger.warning("beat: %s missed %d run(s) (policy %s)", definition.name, decided.skipped,
                           definition.missed_run.policy)  # fmt: skip
        runs = [
            PlannedRun(name, task_id(name, due), due, offset=jitter_offset(name, due, jitter)) for due in decided.slots
        ]
        return runs, jittered_score(name, decided.next_due, jitter)

    def slot(self, sched: Any, item: DueEntry) -> float:
        """:func:`snap` of the item's score; entries of one schedule due at one score (a burst) share it."""
        assert item.score is not None
        if type(sched) is crontab:
            key = (schedule_key(sched), item.score)
            if key not in self.snapped:
                self.snapped[key] = snap(sched, item.score, None, self.now)
            return self.snapped[key]
        return stored_slot(sched, item.score, item.meta, self.now)


def stored_slot(sched: Any, score: float, meta: str | None, now: float) -> float:
    """:func:`snap` of a stored score, with the entry's ``last_run_at`` where its schedule needs one."""
    last_run_at = None
    # An unreadable meta is rewritten by the entry's next run; the score then stands as it is.
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        last_run_at = decode_meta(meta)[0] if isinstance(sched, schedule) else None
    return snap(sched, score, last_run_at, now)


def next_wake(due: Due, definitions: Definitions) -> float | None:
    """When the earliest entry not due yet really is due: its score moved to the slot it stands for, but never past
    the score after it. A score stock's entry API wrote lies up to a second before its slot: waking at the score
    itself, the leader found nothing to run and only moved the score on, one wake-up and one write per such entry."""
    head = due.head_entry
    if head is None or head.score is None or head.definition is None:
        return due.head
    try:
        slot = stored_slot(definitions.get(head.definition, head.key).schedule, head.score, head.meta, due.now)
    except Exception:  # an unreadable definition: the tick that serves the entry logs it and parks it
        return due.head
    return slot if due.after_head is None else min(slot, due.after_head)
