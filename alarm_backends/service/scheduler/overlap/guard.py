"""A periodic task's side of its overlap policy: take the entry's lease before the job, act on what acquire.lua
decided, and start the buffered run after it (see the package's docstring)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings

from alarm_backends.core import runlog
from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.overlap import BUFFERED_HEADER, OVERLAP_HEADER, TAKEOVER_HEADER
from alarm_backends.service.scheduler.overlap.lease import (
    BUFFERED,
    HELD,
    OVERLAP_RUNS,
    REPLACED,
    SKIPPED,
    Decision,
    HeldLease,
    acquire,
)
from patches.redbeat.publisher import DEADLINE_HEADER

logger = logging.getLogger("cron")

# How many times a redelivered slot waits for its own run's lease before it is given up (see _wait_or_drop).
MAX_TAKEOVERS = 5


def enter(
    task: Any, policy: str, slot: str, marker: str, expires: int | None, queue: str, resent: bool
) -> tuple[bool, HeldLease | None]:
    """Whether the run of ``slot`` goes ahead under ``policy``, and the lease it then holds (None: the service DB
    could not be reached, and the run goes ahead without one, as its claim does). ``resent``: this delivery is one
    the platform sent again (a buffered run's start, a takeover's retry), whose waiting was already counted."""
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
    if not decision.runs:
        _wait_or_drop(task, policy, slot, queue, resent, decision, seconds)
        return False, None
    held = HeldLease(entry, slot, marker, seconds, decision.fence, dedupe.claim_key(""))  # renewed from now on
    if decision.outcome == REPLACED:
        _stop_replaced(task, policy, slot, queue, decision)
    return True, held


def _wait_or_drop(
    task: Any, policy: str, slot: str, queue: str, resent: bool, decision: Decision, lease: float
) -> None:
    if decision.outcome == HELD:
        # Sent again once the lease has run out: it runs then if that run died, and is dropped if it ended. A job
        # that kills its own process each time would come back for ever: MAX_TAKEOVERS tries, then it is given up.
        tries = int(getattr(task.request, TAKEOVER_HEADER, 0) or 0) + 1
        if tries > MAX_TAKEOVERS:
            logger.error("[Cron Task](%s) %s given up: its run died holding the entry %d times", task.name, slot,
                         MAX_TAKEOVERS)  # fmt: skip
            return
        logger.info("[Cron Task](%s) %s redelivered while its run holds the entry: retried in %.1fs", task.name, slot,
                    decision.retry + 1)  # fmt: skip
        resend(task, slot, TAKEOVER_HEADER, countdown=decision.retry + 1, value=tries)
        return
    if decision.outcome == SKIPPED:
        OVERLAP_RUNS.labels(task_name=task.name, policy=policy, outcome=SKIPPED).inc()
        also = f", and {decision.waiting} already waits" if decision.waiting else ""
        logger.warning("[Cron Task](%s) %s skipped: %s is still running%s (overlap %s)", task.name, slot,
                       decision.holder, also, policy)  # fmt: skip
        runlog.record_run(task.name, queue, runlog.SKIPPED, 0.0, slot=slot)
        return
    assert decision.outcome == BUFFERED
    if not resent:
        OVERLAP_RUNS.labels(task_name=task.name, policy=policy, outcome=BUFFERED).inc()
        logger.info("[Cron Task](%s) %s buffered: it runs when %s ends (overlap %s)", task.name, slot,
                    decision.holder, policy)  # fmt: skip
        runlog.record_run(task.name, queue, runlog.BUFFERED, 0.0, slot=slot)
    # A reminder one lease from now: if the run it waits for dies without handing over, this starts it.
    resend(task, slot, BUFFERED_HEADER, countdown=lease)


def _stop_replaced(task: Any, policy: str, slot: str, queue: str, decision: Decision) -> None:
    """Terminate the run this one replaces, by Celery's remote control. Its pool process is signalled only while the
    worker still has that task active: a prefork worker under ``-O fair`` (the platform's) gives the process no
    other task until it has taken the old one's end, so the signal cannot reach another job."""
    OVERLAP_RUNS.labels(task_name=task.name, policy=policy, outcome=REPLACED).inc()
    logger.warning("[Cron Task](%s) %s replaces %s, still running on %s: terminating it (overlap %s)", task.name,
                   slot, decision.holder, decision.holder_worker or "?", policy)  # fmt: skip
    runlog.record_run(task.name, queue, runlog.REPLACED, 0.0, slot=decision.holder)
    try:
        task.app.control.revoke(decision.holder, terminate=True, signal="SIGTERM")
    except Exception as exc:  # the broker is down: the old run goes on, fenced off its lease
        logger.error("[Cron Task](%s) could not terminate %s: %s", task.name, decision.holder, exc)


def start_buffered(task: Any, slot: str) -> None:
    """Start the buffered run ``slot``, handed the lease by the run that just ended (release.lua)."""
    if resend(task, slot, BUFFERED_HEADER):
        logger.info("[Cron Task](%s) starting buffered run %s", task.name, slot)


def resend(task: Any, slot: str, header: str, countdown: float | None = None, value: int = 1) -> bool:
    """Send ``slot`` of the running task's entry again, as the running delivery came (its arguments, queue and
    overlap rule), with ``header`` set to ``value``: now, or after ``countdown`` seconds. A copy that finds the slot
    already run is dropped quietly (dedupe.claim)."""
    request = task.request
    headers: dict[str, Any] = {header: value}
    rule = getattr(request, OVERLAP_HEADER, None)
    if rule is not None:
        headers[OVERLAP_HEADER] = rule
    deadline = getattr(request, DEADLINE_HEADER, None)
    if header == TAKEOVER_HEADER and deadline is not None:
        headers[DEADLINE_HEADER] = deadline  # the same slot: valid as long as the delivery it stands for
    queue = (request.delivery_info or {}).get("routing_key") or None
    try:
        # No expiry of Celery's: a buffered run is valid until it has run, however long the run before it took.
        task.apply_async(args=request.args, kwargs=request.kwargs, task_id=slot, countdown=countdown, expires=None,
                         headers=headers, queue=queue)  # fmt: skip
    except Exception as exc:  # a buffered run: its reminder (or the hand-off) starts it; a takeover: the broker's
        logger.error("[Cron Task](%s) could not send %s again: %s", task.name, slot, exc)
        return False
    return True
