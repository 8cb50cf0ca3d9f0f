"""The SaaS beat's scheduler: django-celery-beat's database scheduler, keeping an operator's ``enabled`` switch.

At every start the stock ``DatabaseScheduler`` writes the static ``beat_schedule`` into the ``PeriodicTask`` table
with ``update_or_create(name=…, defaults=<every field of the entry>)``. The entries carry ``"enabled": True``
(``config.celery.schedule``), so each restart re-enabled every task an operator had switched off in the database.
The original (``monitor.schedulers.MonitorDatabaseScheduler``) drops ``enabled`` when the row exists, after a
separate existence query; here the same rule is one ``update_or_create`` whose ``create_defaults`` (Django 5.0+)
hold every field and whose ``defaults`` all but ``enabled``: one query fewer per entry, and a row deleted between
the original's check and its write is no longer re-created with the model's default (enabled) instead of the
entry's own flag.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

APP_LABEL = "django_celery_beat"
# Fields of a static entry that apply only when its row is created; afterwards the row is the operator's.
CREATE_ONLY_FIELDS = frozenset({"enabled"})


def pending_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    """django-celery-beat's migrations not yet applied to the database ``alias``, in order."""
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan if migration.app_label == APP_LABEL]


class MonitorModelEntry(ModelEntry):
    """A schedule entry backed by a ``PeriodicTask`` row that keeps the row's ``enabled`` flag on re-sync."""

    @classmethod
    def from_entry(cls, name: str, app: Celery | None = None, **entry: Any) -> MonitorModelEntry:
        fields = cls._unpack_fields(**entry)
        update = {field: value for field, value in fields.items() if field not in CREATE_ONLY_FIELDS}
        row, _ = PeriodicTask._default_manager.update_or_create(name=name, defaults=update, create_defaults=fields)
        return cls(row, app=app)


class MonitorDatabaseScheduler(DatabaseScheduler):
    """``beat_scheduler = "config.celery.schedulers:MonitorDatabaseScheduler"`` (the SaaS app's config)."""

    Entry = MonitorModelEntry

    def setup_schedule(self) -> None:
        # Without its tables the stock scheduler logs a traceback per entry and then dies on its first query;
        # say once what to do instead. SystemExit ends `celery beat` with this message and status 1.
        pending = pending_migrations()
        if pending:
            name = connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]
            sys.exit(
                f"bkmonitor: the SaaS beat's tables in database {name} lack {len(pending)} migrations "
                f"({pending[0]} …): run `manage.py migrate --noinput` first"
            )
        # django-celery-beat stores each crontab row with the timezone of the *current* app (it resets the
        # schedule's own app to None), and builds the entries that follow each run with no app but the current one.
        # Django's system checks import the backend app (UTC) into this process, and a new Celery app makes itself
        # current: without this, "30 3 * * *" would be stored as 03:30 UTC instead of the SaaS app's local time.
        self.app.set_current()
        super().setup_schedule()
