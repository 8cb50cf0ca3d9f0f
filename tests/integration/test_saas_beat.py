"""The SaaS beat for real: ``manage.py celery beat`` with the database scheduler on the test broker (Redis DB 13),
and a SaaS worker (``manage.py celery worker -Q celery_resource``) running what it published; and each SaaS task's
record, the task run in this process against the test Redis DBs.

Every process is started in its own process group and stopped by PID; the Redis DBs are flushed by ``redis_dbs``
and the ``PeriodicTask`` rows deleted by ``beat_db``.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from supervisor.options import ServerOptions

from alarm_backends.saas import tasks
from config.celery.schedule import RESOURCE_QUEUE, SAAS_BEAT_SCHEDULE
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN, require_service
from tests.integration.conftest import wait_for
from tests.processes import stop_group
from tests.unit.test_saas_schedule import DISABLED, HEALTH, RESOURCE_HEALTH, beat_db, sync  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(REPO / "manage.py")]
DEFAULT_QUEUE = "celery"
# The enabled entries on celery_resource: made due at once by back-dating their last run.
RESOURCE_ENTRIES = [n for n, e in SAAS_BEAT_SCHEDULE.items() if e.get("options", {}).get("queue") == RESOURCE_QUEUE]
# Where the SaaS tasks leave their records (``key("saas", …)``: app code "bkmonitorv3", the default cluster).
HEALTH_KEY = "bkmonitorv3.default.saas.health."  # + the queue; in the service DB
BIZ_KEY = "bkmonitorv3.default.saas.biz"  # in the cache DB
SCHEDULE_KEY = "bkmonitorv3.default.saas.beat.schedule"  # in the cache DB

pytestmark = pytest.mark.redis


class Proc:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log_path = proc, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start ``argv`` with its output in a log file; every process is stopped (by PID) after the test."""
    started: list[Proc] = []

    def run(argv: list[str], name: str, **env: str) -> Proc:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=os.environ | {"PYTHONUNBUFFERED": "1"} | env,
            )
        started.append(Proc(proc, log))
        return started[-1]

    yield run
    for proc in started:
        stop_group(proc.proc, grace=15)


def raw(role: str) -> redis.Redis:
    """A client of the test's own on a role's DB, apart from the platform's clients."""
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB_PLAN[role], decode_responses=True)


def broker() -> redis.Redis:
    return raw("queue")


def queued_tasks(queue: str) -> list[str]:
    """The task names of the messages waiting in ``queue`` (kombu's Redis transport: a list of JSON messages)."""
    return [json.loads(raw)["headers"]["task"] for raw in broker().lrange(queue, 0, -1)]


def queued_headers(queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw)["headers"] for raw in broker().lrange(queue, 0, -1)]


def rows_in(db_file: Path) -> set[str]:
    with sqlite3.connect(db_file) as db:
        return {name for (name,) in db.execute("SELECT name FROM django_celery_beat_periodictask")}


def run_beat(start: Callable[..., Proc], name: str) -> Proc:
    beat = start([*MANAGE, "celery", "beat", "-l", "INFO"], name)
    # The static entries are synced before the first tick; the log line comes after the sync.
    wait_for(lambda: "DatabaseScheduler: Schedule changed" in beat.log() or beat.proc.poll() is not None, 30, name)
    assert beat.proc.poll() is None, beat.log()
    return beat


def test_beat_asks_for_migrate_and_the_dev_profile_runs_it(
    redis_dbs: None, start: Callable[..., Proc], tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh-run"
    env = os.environ | {"BKM_RUN_DIR": str(fresh)}
    refused = subprocess.run(
        [*MANAGE, "celery", "beat", "-l", "INFO"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "lack" in refused.stderr and "run `manage.py migrate --noinput` first" in refused.stderr

    # The dev profile's beat program, as supervisord would run it (its command, split as supervisord splits it).
    config = tmp_path / "saas-supervisord.conf"
    call_command("render_saas_supervisor", "--profile", "dev", "--output", str(config))
    options = ServerOptions()
    options.configfile = str(config)
    options.process_config(do_usage=False)
    (program,) = [p for g in options.process_group_configs for p in g.process_configs if p.name.endswith("_beat")]
    beat = start(shlex.split(program.command), "dev-beat", BKM_RUN_DIR=str(fresh))
    db_file = fresh / "db.sqlite3"
    wait_for(lambda: set(SAAS_BEAT_SCHEDULE) <= rows_in(db_file), 45, "the rows", ignore=(sqlite3.Error,))
    # Past its start-up (a stop signal in the middle of the first sync makes Celery's handler sync again, and wait
    # on the SQLite lock the interrupted sync holds).
    wait_for(lambda: "DatabaseScheduler: Schedule changed" in beat.log() or beat.proc.poll() is not None, 30, "beat")
    assert beat.proc.poll() is None, beat.log()
    assert "Applying django_celery_beat.0001_initial... OK" in beat.log()


@pytest.mark.usefixtures("beat_db")
def test_beat_keeps_an_operators_switch_publishes_due_entries_and_a_worker_runs_them(
    redis_dbs: None, start: Callable[..., Proc]
) -> None:
    # 1. A first start creates a row per static entry, with the entry's flag.
    beat = run_beat(start, "beat-1")
    wait_for(lambda: set(SAAS_BEAT_SCHEDULE) <= set(PeriodicTask.objects.values_list("name", flat=True)), 30, "rows")
    stop_group(beat.proc, grace=15)
    flags = dict(PeriodicTask.objects.filter(name__in=SAAS_BEAT_SCHEDULE).values_list("name", "enabled"))
    assert flags == {name: entry["enabled"] for name, entry in SAAS_BEAT_SCHEDULE.items()}
    broker().delete(DEFAULT_QUEUE, RESOURCE_QUEUE)  # whatever a minute boundary made due meanwhile

    # 2. An operator switches the default queue's health report off; the resource entries last ran 15 minutes ago.
    row = PeriodicTask.objects.get(name=HEALTH)
    row.enabled = False
    row.save()
    PeriodicTask.objects.filter(name__in=RESOURCE_ENTRIES).update(last_run_at=timezone.now() - timedelta(minutes=15))

    # 3. After a restart the switch holds, and the due entries are published to celery_resource at the first tick.
    beat = run_beat(start, "beat-2")
    due = {SAAS_BEAT_SCHEDULE[name]["task"] for name in RESOURCE_ENTRIES}
    wait_for(lambda: set(queued_tasks(RESOURCE_QUEUE)) >= due, 30, "the due entries on celery_resource")
    stop_group(beat.proc, grace=15)
    assert not PeriodicTask.objects.get(name=HEALTH).enabled
    assert HEALTH not in queued_tasks(DEFAULT_QUEUE)
    names = {headers.get("periodic_task_name") for headers in queued_headers(RESOURCE_QUEUE)}
    assert set(RESOURCE_ENTRIES) <= names

    # 4. A SaaS worker on celery_resource runs them: each leaves its record.
    node = f"saas-test-{os.getpid()}-resource@%h"
    worker = start(
        [*MANAGE, "celery", "worker", "-Q", RESOURCE_QUEUE, "-n", node, "-c", "1", "-l", "INFO", "--without-mingle"],
        "worker",
    )
    health = wait_for(lambda: raw("service").hgetall(HEALTH_KEY + RESOURCE_QUEUE), 45, "the health record")
    assert health["queue"] == RESOURCE_QUEUE and health["task"] == HEALTH
    assert health["node"].startswith(f"saas-test-{os.getpid()}-resource@")
    assert health["node"] in json.loads(health["consumers"])
    wait_for(lambda: raw("cache").exists(BIZ_KEY, SCHEDULE_KEY) == 2, 30, "the cache records")
    snapshot = raw("cache").hgetall(SCHEDULE_KEY)
    assert json.loads(snapshot[HEALTH])["enabled"] is False
    assert worker.proc.poll() is None, worker.log()
    assert broker().llen(RESOURCE_QUEUE) == 0


def test_report_saas_health_writes_one_record_per_queue(redis_dbs: None) -> None:
    tasks.report_saas_health.apply(routing_key=RESOURCE_QUEUE).get()
    record = raw("service").hgetall(HEALTH_KEY + RESOURCE_QUEUE)
    assert record["queue"] == RESOURCE_QUEUE and record["task"] == HEALTH
    assert record["node"] and isinstance(json.loads(record["consumers"]), list)
    assert 0 < raw("service").ttl(HEALTH_KEY + RESOURCE_QUEUE) <= 600
    assert not raw("service").exists(HEALTH_KEY + DEFAULT_QUEUE)


def test_refresh_biz_cache_writes_the_clusters_business_ids(redis_dbs: None) -> None:
    with override_settings(BKMONITOR_WORKER_INCLUDE_LIST=[5, 3], DEFAULT_BK_BIZ_ID=4):
        tasks.refresh_biz_cache.apply().get()
    record = raw("cache").hgetall(BIZ_KEY)
    assert (json.loads(record["biz_ids"]), record["default_biz_id"]) == ([3, 4, 5], "4")
    assert float(record["ts"]) > 0


@pytest.mark.usefixtures("beat_db")
def test_snapshot_periodic_tasks_mirrors_the_table(redis_dbs: None) -> None:
    sync()
    last_run = timezone.now() - timedelta(minutes=3)
    PeriodicTask.objects.filter(name=RESOURCE_HEALTH).update(last_run_at=last_run, total_run_count=7)
    tasks.snapshot_periodic_tasks.apply().get()
    record = raw("cache").hgetall(SCHEDULE_KEY)
    assert set(record) == {*PeriodicTask.objects.values_list("name", flat=True), "_ts"}
    assert json.loads(record[DISABLED])["enabled"] is False
    assert json.loads(record[RESOURCE_HEALTH]) == {
        "task": HEALTH,
        "enabled": True,
        "queue": RESOURCE_QUEUE,
        "last_run_at": last_run.isoformat(),
        "total_run_count": 7,
    }


SYNC_TWICE = f"""
import django; django.setup()
from django_celery_beat.models import PeriodicTask
from config.celery import app
from config.celery.schedulers import MonitorDatabaseScheduler
MonitorDatabaseScheduler(app=app)
PeriodicTask.objects.filter(name={HEALTH!r}).update(enabled=False)
MonitorDatabaseScheduler(app=app)
print(PeriodicTask.objects.get(name={HEALTH!r}).enabled, PeriodicTask.objects.filter(enabled=True).count())
"""


def test_postgresql_database(tmp_path: Path) -> None:
    """BKAPP_DB_ENGINE=postgresql: migrate and the scheduler on a database of the test's own, dropped afterwards.

    Needs a PostgreSQL on 127.0.0.1:5432 that lets this OS user create databases without a password (skipped
    otherwise, a failure under BKM_REQUIRE_SERVICES=1); ``psycopg`` is a dev dependency (the ``postgresql`` extra)."""
    import psycopg

    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"bkm_test_{os.getpid()}"
    admin = psycopg.connect("host=127.0.0.1 port=5432 dbname=postgres", autocommit=True, connect_timeout=5)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            env = os.environ | {"BKAPP_DB_ENGINE": "postgresql", "BKAPP_DB_NAME": name}
            env |= {"BKAPP_DB_USER": admin.info.user, "BKAPP_DB_HOST": "127.0.0.1", "BKAPP_DB_PORT": "5432"}
            migrate = subprocess.run(
                [*MANAGE, "migrate", "--noinput"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
            )
            assert migrate.returncode == 0, migrate.stderr
            synced = subprocess.run(
                [sys.executable, "-c", SYNC_TWICE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
            )
            assert synced.returncode == 0, synced.stderr
            still_enabled, enabled_rows = synced.stdout.split()
            assert still_enabled == "False" and int(enabled_rows) >= 3
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
