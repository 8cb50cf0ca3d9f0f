"""The SaaS app's static periodic tasks (``beat_schedule``), synced into the database by the SaaS beat.

Entries have the shape the original's ``config/celery/config.py`` gives them, which is django-celery-beat's:

* ``enabled`` is a key of the entry itself, not of ``options``: the scheduler passes every key it does not know
  (``task``, ``enabled``, ``description`` …) to the ``PeriodicTask`` row as a field. It takes effect only when the
  row is created; after that the row's own flag rules, so an operator's switch survives a restart
  (``config.celery.schedulers``).
* ``options`` carries only ``queue``, ``exchange``, ``routing_key``, ``priority``, ``headers`` and
  ``expire_seconds``; anything else there (``expires`` included) is dropped silently by the scheduler.
* Crontabs are evaluated in the SaaS app's timezone (``Asia/Shanghai``), unlike the backend's crontab lists (UTC).
  The scheduler stores that timezone with each row (``config.celery.schedulers``).

Only django-celery-beat's scheduler understands ``enabled``: Celery's own file scheduler (``-S
celery.beat:PersistentScheduler``) rejects every entry that has it, as the original's did.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

# The two queues of the SaaS workers: Celery's default queue and the one of the resource worker.
DEFAULT_QUEUE = "celery"
RESOURCE_QUEUE = "celery_resource"
# The tasks' names, the original's (they are defined in alarm_backends.saas.tasks).
TASKS = "config.celery.tasks"

SAAS_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Each worker pool's liveness: one run per queue, so a pool whose worker is gone shows as a missing record.
    f"{TASKS}.report_saas_health": {
        "task": f"{TASKS}.report_saas_health",
        "schedule": crontab(),
        "enabled": True,
    },
    f"{TASKS}.report_saas_health.{RESOURCE_QUEUE}": {
        "task": f"{TASKS}.report_saas_health",
        "schedule": crontab(),
        "enabled": True,
        "options": {"queue": RESOURCE_QUEUE},
    },
    # The business ids this cluster serves, for readers that do not load the settings.
    f"{TASKS}.refresh_biz_cache": {
        "task": f"{TASKS}.refresh_biz_cache",
        "schedule": crontab(minute="*/10"),
        "enabled": True,
        "options": {"queue": RESOURCE_QUEUE},
    },
    # The SaaS beat's schedule as it stands in the database (enabled flags, last runs), for the backend's tools.
    f"{TASKS}.snapshot_periodic_tasks": {
        "task": f"{TASKS}.snapshot_periodic_tasks",
        "schedule": crontab(minute="*/5"),
        "enabled": True,
        "options": {"queue": RESOURCE_QUEUE},
    },
    # Deletes rows whose task the app no longer has (an entry removed from this dict stays in the database and
    # is sent forever, to fail as an unregistered task on every worker). Destructive, so off until an operator
    # enables the row, as the original ships one disabled entry.
    f"{TASKS}.clean_stale_periodic_tasks": {
        "task": f"{TASKS}.clean_stale_periodic_tasks",
        "schedule": crontab(minute=30, hour=3),
        "enabled": False,
    },
}
