"""A periodic task's side of its overlap policy: take the entry's lease before the job, act on what acquire.lua
decided, and start the buffered run after it (see the package's docstring)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings

from alarm_backends.core import runlog
from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.overlap import BUFFERED_HEADER
from alarm_backends.service.scheduler.overlap.lease import BUFFERED, OVERLAP_RUNS, REPLACED, SKIPPED, HeldLease, acquire

logger = logging.getLogger("cron")


def enter(
    task: Any, policy: str, slot: str, marker: str, expires: int | None, queue: str, buffered: bool
) -> tuple[bool, HeldLease | None]:
    """Whether the run of ``slot`` goes ahead under ``policy``, and the lease it then holds (None: the service DB
    could not be reached, and the run goes ahead without one, as its claim does). ``buffered``: this delivery starts
    a buffered run (its hand-off or a reminder), whose waiting was already counted and logged."""
    seconds = float(settings.CRON_RUN_LEASE)
    # The lease is the entry's, named by the slot id (<entry>@<due>): entries of one task (a beat_schedule of one
    # task with different arguments) overlap only themselves. A cron entry's name is its task's.
    entry = slot.rpartition("@")[0]
    try:
        decision = acquire(entry, slot, marker, policy, seconds, dedupe.claim_key(""), dedupe.claim_ttl(expires))
    except redis.RedisError as exc:
        logger.warning("[Cron Task](%s) %s: overlap %s not applied (service DB unavailable: %s)", task.name, slot,
                       policy, exc)  # fmt: skip
        return True, None
    if decision.outcome == SKIPPED:
        OVERLAP_RUNS.labels(task_name=task.name, policy=policy, outcome=SKIPPED).inc()
        also = f", and {decision.waiting} already waits" if decision.waiting else ""
        logger.warning("[Cron Task](%s) %s skipped: %s is still running%s (overlap %s)", task.name, slot,
                       decision.holder, also, policy)  # fmt: skip
        runlog.record_run(task.name, queue, runlog.SKIPPED, 0.0, slot=slot)
        return False, None
    if decision.outcome == BUFFERED:
        if not buffered:
            OVERLAP_RUNS.labels(task_name=task.name, policy=policy, outcome=BUFFERED).inc()
            logger.info("[Cron Task](%s) %s buffered: it runs when %s ends (overlap %s)", task.name, slot,
                        decision.holder, policy)  # fmt: skip
            runlog.record_run(task.name, queue, runlog.BUFFERED, 0.0, slot=slot)
        # A reminder one lease from now: if the run it waits for dies without handing over, this starts it.
        start_buffered(task, slot, countdown=seconds)
        return False, None
    if decision.outcome == REPLACED:
        OVERLAP_RUNS.labels(task_name=task.name, policy=policy, outcome=REPLACED).inc()
        logger.warning("[Cron Task](%s) %s replaces %s, still running on %s: terminating it (overlap %s)",
                       task.name, slot, decision.holder, decision.holder_worker or "?", policy)  # fmt: skip
        runlog.record_run(task.name, queue, runlog.REPLACED, 0.0, slot=decision.holder)
        try:
            task.app.control.revoke(decision.holder, terminate=True, signal="SIGTERM")
        except Exception as exc:  # the broker is down: the old run goes on, fenced off its lease
            logger.error("[Cron Task](%s) could not terminate %s: %s", task.name, decision.holder, exc)
    return True, HeldLease(entry, slot, marker, seconds, decision.fence)


def start_buffered(task: Any, slot: str, countdown: float | None = None) -> None:
    """Send a start of the buffered run ``slot``: at once (its hand-off, by the run it waited for) or after
    ``countdown`` seconds (a reminder). Either may find it started already, and is then dropped quietly."""
    try:
        # No expiry: a buffered run is valid until it has run, however long the run before it took.
        task.apply_async(task_id=slot, countdown=countdown, expires=None, headers={BUFFERED_HEADER: 1})
    except Exception as exc:  # the reminder sent when it was buffered starts it
        logger.error("[Cron Task](%s) could not send the start of buffered run %s: %s", task.name, slot, exc)
        return
    if countdown is None:
        logger.info("[Cron Task](%s) starting buffered run %s", task.name, slot)
