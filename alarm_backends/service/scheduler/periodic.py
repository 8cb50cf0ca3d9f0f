"""Periodic tasks: a task that puts itself in its app's ``beat_schedule`` when bound, and runs each scheduled slot
once (``dedupe``). The crontab loader (``tasks.loader``) makes one per entry of the crontab lists."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from django.conf import settings

from alarm_backends.core import runlog
from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.overlap import (
    ALLOW,
    BUFFERED_HEADER,
    OVERLAP_HEADER,
    TAKEOVER_HEADER,
    guard,
    run_policy,
)
from patches.redbeat.publisher import DEADLINE_HEADER


class PeriodicTask(Task):
    """A task that puts itself in ``beat_schedule`` when bound to the app (Celery 3's ``PeriodicTask``).

    The entry's ``options`` stay empty: queue and expires are attributes of the task, and ``apply_async`` takes
    them from there, as in the original.
    """

    abstract = True
    ignore_result = True
    relative = False
    options: dict[str, Any] | None = None
    compat = True
    run_every: Any
    # The entry's missed-run policy for the patched scheduler (None: the scheduler's default).
    missed_run: dict[str, Any] | None = None
    # Seconds each slot's publish may be delayed by, the same for every beat (patches.redbeat.policy.jitter_offset).
    jitter: float = 0.0
    # What a run does when the entry's previous run is still running (alarm_backends.service.scheduler.overlap).
    overlap: str = ALLOW

    @property
    def expires_on_redis_clock(self) -> bool:
        """The patched beat then sends the run's deadline on the Redis clock (its bkm_deadline header) instead of
        Celery's ``expires``, which each worker compares with its own clock; the claim below checks it on Redis's.
        ``CRON_EXPIRES_CLOCK="worker"`` restores Celery's header."""
        return bool(settings.CRON_EXPIRES_CLOCK == "redis")

    def __init__(self) -> None:
        if not hasattr(self, "run_every"):
            raise NotImplementedError("Periodic tasks must have a run_every attribute")
        super().__init__()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Deduplicate by the slot id the patched beat gives each run (see dedupe.py).
        task_id = self.request.id
        if not dedupe.is_scheduled_id(task_id):
            return super().__call__(*args, **kwargs)
        ttl = int(self.expires) if isinstance(self.expires, int | float) else None
        delivery = self.request.delivery_info or {}
        deadline = getattr(self.request, DEADLINE_HEADER, None)
        queue = str(delivery.get("routing_key") or "")
        # A copy the platform sent again (overlap/): a buffered run's start, or a redelivery's retry (a takeover).
        buffered = bool(getattr(self.request, BUFFERED_HEADER, None))
        takeover = bool(getattr(self.request, TAKEOVER_HEADER, None))
        marker = dedupe.new_marker()
        redelivered = bool(delivery.get("redelivered")) or takeover
        if not dedupe.claim(self.name, task_id, ttl, redelivered, deadline, queue, marker=marker, buffered=buffered,
                            quiet=buffered or takeover):  # fmt: skip
            return None
        lease = None
        policy = run_policy(getattr(self.request, OVERLAP_HEADER, None), self.overlap)
        if policy != ALLOW:  # the entry's previous run may still be running (overlap/)
            # A copy that was here before (re-sent, or the broker's redelivery) was counted then.
            goes, lease = guard.enter(self, policy, task_id, marker, ttl, queue, buffered or redelivered)
            if not goes:
                return None
        deferred = runlog.defer()  # the run's run-log entry goes with the slot's release: one round trip
        try:
            return super().__call__(*args, **kwargs)
        finally:
            runs = runlog.collect(deferred)
            # Which slot ran, and when beat published it: the deadline header is the publish on the Redis clock
            # plus the task's expires (patches/redbeat/publisher.py).
            published = f"{float(deadline) - ttl:.3f}" if deadline is not None and ttl is not None else ""
            for fields in runs:
                fields["slot"] = task_id
                if published:
                    fields["published"] = published
            dedupe.finish(task_id, ttl, runs)
            # Released after the slot is marked done: a copy of it arriving in between finds it run, not free.
            waiting = lease.release() if lease is not None else ""
            if waiting:
                guard.start_buffered(self, waiting)

    @classmethod
    def on_bound(cls, app: Celery) -> None:
        entry = {
            "task": cls.name,
            "schedule": cls.run_every,
            "args": (),
            "kwargs": {},
            "options": cls.options or {},
            "relative": cls.relative,
        }
        if cls.missed_run is not None:
            entry["missed_run"] = cls.missed_run
        if cls.jitter:
            entry["jitter"] = cls.jitter
        if cls.overlap != ALLOW:  # read by the schedule's views; the workers apply it
            entry["overlap"] = cls.overlap
        app.conf.beat_schedule[cls.name] = entry


def periodic_task(app: Celery, **options: Any) -> Any:
    """``app.task(base=PeriodicTask, shared=False, **options)``; ``run_every`` is required.

    Not shared: a shared task binds to every Celery app of the process, and its ``on_bound`` would add the backend's
    crontabs to the SaaS app's ``beat_schedule`` too (both apps load in one process through Django's checks), so the
    SaaS beat would publish every backend crontab a second time under task ids the workers cannot dedupe.
    """
    return app.task(base=PeriodicTask, shared=False, **options)
