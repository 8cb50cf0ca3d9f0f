"""The SaaS app's own periodic housekeeping, scheduled by ``config.celery.schedule.SAAS_BEAT_SCHEDULE``.

The tasks keep the original's names, ``config.celery.tasks.<function>`` (the schedule's entries, the database
scheduler's rows and the queued messages name them so), and live here because they build on the platform's storage
and ring: ``config`` never imports ``alarm_backends``. Each task leaves a record a reader (or a test) can check:
records go to the Redis DB roles of the platform's plan through ``alarm_backends.core.storage.redis``, under keys
scoped by app code and cluster (``key("saas", …)``). Imported by SaaS workers and beat through the app's
``imports`` setting; not shared (``shared=False``), so the backend app, which SaaS processes also load, does not
register them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from alarm_backends.core.storage.redis import CACHE, key
from alarm_backends.jobs.heartbeat import write
from alarm_backends.jobs.records import replace_hash
from alarm_backends.management.base.dispatch import ring_targets
from config.celery.celery import app
from config.celery.schedule import DEFAULT_QUEUE, TASKS

logger = get_task_logger(__name__)

# Seconds to wait for the workers' replies when asking who consumes a queue. The worker running the task answers
# too: its main process handles the broadcast while a pool process runs the task.
INSPECT_TIMEOUT = 1.0
# key() parts of the records in the cache DB.
BIZ_KEY = ("saas", "biz")
SCHEDULE_KEY = ("saas", "beat", "schedule")


def health_key(queue: str) -> str:
    """Where ``report_saas_health`` writes the record of ``queue`` (service DB)."""
    return key("saas", "health", queue)


def queue_consumers(queue: str, timeout: float = INSPECT_TIMEOUT) -> list[str]:
    """The node names of the workers consuming ``queue``, sorted; empty when none answers within ``timeout``."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return sorted(node for node, queues in replies.items() if any(q.get("name") == queue for q in queues or ()))


@app.task(name=f"{TASKS}.report_saas_health", bind=True, ignore_result=True, shared=False)
def report_saas_health(self: Task) -> dict[str, str]:
    """Replace ``key("saas", "health", <queue>)`` in the service DB (TTL 600 s) with the node that ran this task.

    Scheduled once per SaaS queue, so each worker pool keeps its own record alive; a record that expired means no
    worker took that queue's message for ten minutes. ``consumers`` lists every node consuming the queue: two
    workers sharing one ``-n`` (the original's supervisord config) show up there as one name.
    """
    delivery = self.request.delivery_info or {}
    queue = str(delivery.get("routing_key") or DEFAULT_QUEUE)
    extra = {
        "queue": queue,
        "node": str(self.request.hostname or ""),
        "consumers": json.dumps(queue_consumers(queue)),
    }
    return write(health_key(queue), extra).fields


@app.task(name=f"{TASKS}.refresh_biz_cache", ignore_result=True, shared=False)
def refresh_biz_cache() -> dict[str, str]:
    """Replace ``key("saas", "biz")`` in the cache DB with the business ids this cluster serves (JSON list)."""
    fields = {
        "biz_ids": json.dumps(ring_targets()),
        "default_biz_id": str(settings.DEFAULT_BK_BIZ_ID),
        "ts": str(time.time()),
    }
    replace_hash(CACHE, key(*BIZ_KEY), fields)
    return fields


def row_state(row: dict[str, Any]) -> str:
    """One ``PeriodicTask`` row as the JSON a snapshot holds."""
    last_run_at = row["last_run_at"]
    return json.dumps(
        {
            "task": row["task"],
            "enabled": row["enabled"],
            "queue": row["queue"],
            "last_run_at": last_run_at.isoformat() if last_run_at else None,
            "total_run_count": row["total_run_count"],
        }
    )


@app.task(name=f"{TASKS}.snapshot_periodic_tasks", ignore_result=True, shared=False)
def snapshot_periodic_tasks() -> dict[str, str]:
    """Replace ``key("saas", "beat", "schedule")`` in the cache DB: one field per ``PeriodicTask`` row (JSON of
    task, enabled, queue, last_run_at, total_run_count) and ``_ts``, so a reader without the database sees what
    the SaaS beat runs and which entries an operator switched off."""
    rows = PeriodicTask.objects.order_by("name").values(
        "name", "task", "enabled", "queue", "last_run_at", "total_run_count"
    )
    fields = {row["name"]: row_state(row) for row in rows}
    fields["_ts"] = str(time.time())
    replace_hash(CACHE, key(*SCHEDULE_KEY), fields)
    return fields


@app.task(name=f"{TASKS}.clean_stale_periodic_tasks", ignore_result=True, shared=False)
def clean_stale_periodic_tasks() -> list[str]:
    """Delete the ``PeriodicTask`` rows whose task this app does not have; the names of the rows deleted.

    A row outlives the static entry (or the code) that created it, and beat keeps sending it; every worker then
    rejects the message as an unregistered task. The deletion is seen by a running beat at its next tick.
    """
    # Every module that registers tasks (the `imports` setting, autodiscovery) is loaded before the registry is
    # trusted: a task missing only because its module was not imported yet must not cost its row.
    app.loader.import_default_modules()
    names = sorted(PeriodicTask.objects.exclude(task__in=list(app.tasks)).values_list("name", flat=True))
    if names:
        # By name: exactly the rows found, not whatever else the same filter matches by now.
        PeriodicTask.objects.filter(name__in=names).delete()
        logger.warning("clean_stale_periodic_tasks: deleted %d rows of unknown tasks: %s", len(names), names)
    return names
