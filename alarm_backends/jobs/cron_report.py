"""Per-task totals folded from the cron run log (log DB) into the cache DB, a bounded batch per run.

Each run reads the stream after the last processed entry id (the cursor, kept in the cache DB), adds the batch's
counts to one hash per task and moves the cursor, all in one transaction: a crash leaves either both or neither,
so no entry is counted twice. Two overlapping runs would read the same batch; the cursor key is WATCHed, so the
second one's transaction is discarded instead of counting it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import redis

from alarm_backends.core.runlog import NOT_RUN, RunLogEntry, stream_key
from alarm_backends.core.storage.redis import CACHE, LOG, get_client, key

logger = logging.getLogger("cron")

Entries = list[tuple[str, dict[str, str]]]

# Entries per run: a backlog (first run, or after an outage) is worked off over several runs.
MAX_ENTRIES = 10_000


@dataclass
class TaskTotals:
    """One task's share of a batch."""

    runs: int = 0
    failures: int = 0
    cost: float = 0.0
    last_status: str = ""
    last_ts: float = 0.0

    def add(self, run: RunLogEntry) -> None:
        self.runs += 1
        if run.status != "success":
            self.failures += 1
        self.cost += run.cost
        self.last_status = run.status
        self.last_ts = run.ts


@dataclass
class CronReport:
    """What one run folded in: entries read, totals per task, and the cursor it left (None: nothing read yet)."""

    entries: int = 0
    tasks: dict[str, TaskTotals] = field(default_factory=dict)
    cursor: str | None = None


def cursor_key() -> str:
    return key("cron", "report", "cursor")


def task_key(task: str) -> str:
    return key("cron", "report", task)


def aggregate(entries: Iterable[tuple[str, dict[str, str]]]) -> dict[str, TaskTotals]:
    """Totals per task of stream entries in id order; malformed entries are logged and left out."""
    totals: dict[str, TaskTotals] = {}
    for entry_id, fields in entries:
        try:
            run = RunLogEntry.from_fields(fields)
        except (KeyError, ValueError) as exc:
            logger.warning("cron report: run log entry %s skipped, malformed: %r", entry_id, exc)
            continue
        if run.status in NOT_RUN:  # a delivery a worker dropped: nothing ran
            continue
        totals.setdefault(run.task, TaskTotals()).add(run)
    return totals


def _merge(pipe: redis.client.Pipeline, totals: dict[str, TaskTotals]) -> None:
    for task, part in totals.items():
        name = task_key(task)
        pipe.hincrby(name, "runs", part.runs)
        pipe.hincrby(name, "failures", part.failures)
        pipe.hincrbyfloat(name, "cost", part.cost)
        # Batches are read in id order, so the batch's last run is the task's latest.
        pipe.hset(name, mapping={"last_status": part.last_status, "last_ts": str(part.last_ts)})


def main() -> CronReport:
    """Fold the run log entries after the cursor (at most ``MAX_ENTRIES``) into ``key("cron", "report", <task>)``."""
    log = get_client(LOG)
    with get_client(CACHE).pipeline(transaction=True) as pipe:
        pipe.watch(cursor_key())
        # The storage clients decode responses: ids, fields and values come back as str.
        cursor = cast(str | None, pipe.get(cursor_key()))
        start = f"({cursor}" if cursor else "-"
        entries = cast(Entries, log.xrange(stream_key(), min=start, max="+", count=MAX_ENTRIES))
        if not entries:
            return CronReport(cursor=cursor)
        totals = aggregate(entries)
        new_cursor = entries[-1][0]
        pipe.multi()
        _merge(pipe, totals)
        pipe.set(cursor_key(), new_cursor)
        try:
            pipe.execute()
        except redis.WatchError:
            logger.info("cron report: another run moved the cursor past %s first; this batch is left to it", cursor)
            return CronReport(cursor=cursor)
    return CronReport(entries=len(entries), tasks=totals, cursor=new_cursor)
