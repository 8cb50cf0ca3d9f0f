"""The SaaS app's beat schedule, its database scheduler (an operator's ``enabled`` survives a re-sync), its tasks'
logic, and the database settings.

The scheduler runs in-process against the test SQLite file (``<BKM_RUN_DIR>/db.sqlite3``), migrated here. No
Redis: the tasks that write records there are tested in ``tests/integration/test_saas_beat.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import current_app
from celery.schedules import crontab
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from alarm_backends.saas import tasks
from config.celery import app, schedulers
from config.celery.schedule import RESOURCE_QUEUE, SAAS_BEAT_SCHEDULE
from config.celery.schedulers import MonitorDatabaseScheduler, pending_migrations
from config.tools.database import database_settings
from config.tools.env import EnvError

REPO = Path(__file__).resolve().parents[2]
HEALTH = "config.celery.tasks.report_saas_health"
RESOURCE_HEALTH = f"{HEALTH}.{RESOURCE_QUEUE}"
DISABLED = "config.celery.tasks.clean_stale_periodic_tasks"
# Stock django-celery-beat keeps only these of an entry's options.
KEPT_OPTIONS = {"queue", "exchange", "routing_key", "priority", "headers", "expire_seconds"}


@pytest.fixture
def beat_db() -> Iterator[None]:
    """django-celery-beat's tables in the test database, with no row before or after the test."""
    call_command("migrate", verbosity=0, interactive=False)
    for model in (PeriodicTask, CrontabSchedule, IntervalSchedule):
        model.objects.all().delete()
    yield
    for model in (PeriodicTask, CrontabSchedule, IntervalSchedule):
        model.objects.all().delete()


def sync(scheduler_cls: type[DatabaseScheduler] = MonitorDatabaseScheduler) -> DatabaseScheduler:
    """What a beat does at start: write the static schedule into the database and read it back."""
    return scheduler_cls(app=app)


def enabled(name: str) -> bool:
    return bool(PeriodicTask.objects.get(name=name).enabled)


# --- the static schedule --------------------------------------------------------------------------------------


def test_app_config_uses_the_database_scheduler_in_local_time() -> None:
    assert app.conf.beat_scheduler == "config.celery.schedulers:MonitorDatabaseScheduler"
    assert app.conf.timezone == "Asia/Shanghai"
    assert app.conf.beat_schedule.items() >= SAAS_BEAT_SCHEDULE.items()
    assert "alarm_backends.saas.tasks" in app.conf.imports


def test_the_saas_beat_schedules_only_the_saas_entries() -> None:
    # The backend's periodic tasks are not shared (periodic_task(..., shared=False)): with app.task's default they
    # bound to the SaaS app as well and the SaaS beat published every backend crontab a second time.
    # A fresh process, as `manage.py celery beat` loads it: this one has the apps in whatever order tests left them.
    code = (
        "from config.celery import app; app.loader.import_default_modules(); app.finalize(); "
        "print(*sorted(app.conf.beat_schedule))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(SAAS_BEAT_SCHEDULE)


def test_schedule_entries_are_real_tasks_of_the_saas_app() -> None:
    app.loader.import_default_modules()
    assert len(SAAS_BEAT_SCHEDULE) >= 4
    for name, entry in SAAS_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
        assert app.tasks[entry["task"]].app is app
        assert isinstance(entry["schedule"], crontab)
        # `enabled` sits beside `task` (django-celery-beat makes it a row field); options keep only what it keeps.
        assert isinstance(entry["enabled"], bool)
        assert set(entry.get("options", {})) <= KEPT_OPTIONS
    assert [n for n, e in SAAS_BEAT_SCHEDULE.items() if not e["enabled"]] == [DISABLED]
    on_resource = [n for n, e in SAAS_BEAT_SCHEDULE.items() if e.get("options", {}).get("queue") == RESOURCE_QUEUE]
    assert len(on_resource) >= 2 and RESOURCE_HEALTH in on_resource


def test_crontabs_keep_the_saas_timezone_when_another_app_is_current(beat_db: None) -> None:
    """Django's checks import the backend app (UTC), which makes itself current; rows must still be local time."""
    from alarm_backends.service.scheduler.app import app as backend_app

    previous = current_app._get_current_object()
    backend_app.set_current()
    try:
        assert current_app.timezone == ZoneInfo("UTC")
        sync()
    finally:
        previous.set_current()
    zones = {str(row.crontab.timezone) for row in PeriodicTask.objects.filter(name__in=SAAS_BEAT_SCHEDULE)}
    assert zones == {"Asia/Shanghai"}


# --- the scheduler --------------------------------------------------------------------------------------------


def test_first_sync_creates_a_row_per_entry_with_its_flag_and_queue(beat_db: None) -> None:
    scheduler = sync()
    rows = {row.name: row for row in PeriodicTask.objects.all()}
    assert set(SAAS_BEAT_SCHEDULE) <= set(rows)
    for name, entry in SAAS_BEAT_SCHEDULE.items():
        assert (rows[name].task, rows[name].enabled) == (entry["task"], entry["enabled"])
        assert rows[name].queue == entry.get("options", {}).get("queue")
    # A disabled row is not scheduled.
    assert DISABLED not in scheduler.schedule and HEALTH in scheduler.schedule


def test_resync_keeps_an_operators_switch_but_restores_the_rest(beat_db: None) -> None:
    sync()
    row = PeriodicTask.objects.get(name=HEALTH)
    row.enabled = False  # switched off by an operator (admin, SQL)
    row.save()
    row = PeriodicTask.objects.get(name=DISABLED)
    row.enabled = True  # and the shipped-disabled one switched on
    row.save()
    PeriodicTask.objects.filter(name=RESOURCE_HEALTH).update(queue="somewhere_else")

    scheduler = sync()  # a beat restart

    assert not enabled(HEALTH) and enabled(DISABLED)
    assert HEALTH not in scheduler.schedule and DISABLED in scheduler.schedule
    # Everything else still comes from the static schedule.
    assert PeriodicTask.objects.get(name=RESOURCE_HEALTH).queue == RESOURCE_QUEUE


def test_the_stock_scheduler_would_re_enable_it(beat_db: None) -> None:
    """Why the override exists: stock django-celery-beat writes the entry's ``enabled`` over the row's."""
    sync()
    PeriodicTask.objects.filter(name=HEALTH).update(enabled=False)
    sync(DatabaseScheduler)
    assert enabled(HEALTH)


def test_a_row_that_disappeared_is_created_again_with_the_entrys_flag(beat_db: None) -> None:
    sync()
    PeriodicTask.objects.filter(name__in=[HEALTH, DISABLED]).delete()
    sync()
    assert enabled(HEALTH) and not enabled(DISABLED)


def test_beat_refuses_to_start_on_unmigrated_tables(beat_db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pending_migrations() == []
    monkeypatch.setattr(schedulers, "pending_migrations", lambda: ["django_celery_beat.0001_initial"])
    with pytest.raises(SystemExit, match=r"lack 1 migrations \(django_celery_beat.0001_initial …\): run `manage.py"):
        sync()


# --- the tasks ------------------------------------------------------------------------------------------------


def test_queue_consumers_are_the_nodes_on_that_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = {"b@h": [{"name": RESOURCE_QUEUE}], "a@h": [{"name": "celery"}, {"name": RESOURCE_QUEUE}], "c@h": None}

    class FakeInspect:
        def __init__(self, timeout: float) -> None:
            assert timeout == tasks.INSPECT_TIMEOUT

        def active_queues(self) -> dict[str, Any]:
            return replies

    monkeypatch.setattr(app.control, "inspect", FakeInspect)
    assert tasks.queue_consumers(RESOURCE_QUEUE) == ["a@h", "b@h"]
    replies.clear()
    assert tasks.queue_consumers(RESOURCE_QUEUE) == []


def test_clean_stale_periodic_tasks_deletes_only_rows_of_unknown_tasks(beat_db: None) -> None:
    sync()
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="left over", task="config.celery.tasks.gone", interval=every)
    kept = set(PeriodicTask.objects.exclude(name="left over").values_list("name", flat=True))
    assert tasks.clean_stale_periodic_tasks.apply().get() == ["left over"]
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == kept
    assert tasks.clean_stale_periodic_tasks.apply().get() == []


# --- the database settings ------------------------------------------------------------------------------------


def test_database_defaults_to_sqlite_in_the_run_dir() -> None:
    assert database_settings({}, "/srv/run") == {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/run/db.sqlite3"}
    assert database_settings({"BKAPP_DB_ENGINE": "SQLite3"}, "/r")["NAME"] == "/r/db.sqlite3"
    assert settings.DATABASES["default"]["NAME"] == f"{settings.RUN_DIR}/db.sqlite3"


def test_database_postgresql_from_the_environment() -> None:
    environ = {
        "BKAPP_DB_ENGINE": "postgresql",
        "BKAPP_DB_HOST": "db.example",
        "BKAPP_DB_PORT": "6432",
        "BKAPP_DB_NAME": "monitor",
        "BKAPP_DB_USER": "saas",
        "BKAPP_DB_PASSWORD": "p@ss word",
    }
    assert database_settings(environ, "/r") == {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "db.example",
        "PORT": 6432,
        "NAME": "monitor",
        "USER": "saas",
        "PASSWORD": "p@ss word",
        "CONN_MAX_AGE": 60,
    }
    defaults = database_settings({"BKAPP_DB_ENGINE": "postgres"}, "/r")
    assert (defaults["HOST"], defaults["PORT"], defaults["NAME"], defaults["USER"]) == (
        "127.0.0.1",
        5432,
        "bkmonitor",
        "bkmonitor",
    )


def test_database_errors_name_the_variable() -> None:
    with pytest.raises(EnvError, match="BKAPP_DB_ENGINE='mysql' must be one of sqlite, postgresql"):
        database_settings({"BKAPP_DB_ENGINE": "mysql"}, "/r")
    with pytest.raises(EnvError, match="BKAPP_DB_PORT='x' is not an integer"):
        database_settings({"BKAPP_DB_ENGINE": "postgresql", "BKAPP_DB_PORT": "x"}, "/r")
