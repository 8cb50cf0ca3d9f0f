"""A real worker consumes a crontab queue and runs the jobs: effects, logs, metrics and the run log.

Runs against the embedded default's Redis broker and against RabbitMQ (in a vhost the test creates).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from alarm_backends.core.runlog import RunLogEntry, stream_key
from alarm_backends.core.storage.redis import LOG, SERVICE, get_client
from alarm_backends.service.scheduler import dedupe
from config.tools.rabbitmq import RabbitMQSettings
from tests.integration.conftest import Worker, wait_for
from tests.integration.jobs import EFFECT_KEY
from tests.metrics import Samples, metric_samples, value

PREFIX = "alarm_backends.service.scheduler.tasks.cron.tests_integration_"
RECORD, MODULE, BOOM, MISSING = (PREFIX + n for n in ("jobs_record_effect", "jobmodule", "jobs_boom", "nothere"))
# What logs and metrics call them, as the original's task_duration did: the job's dotted path.
PATHS = {
    RECORD: "tests.integration.jobs.record_effect",
    MODULE: "tests.integration.jobmodule",
    BOOM: "tests.integration.jobs.boom",
    MISSING: "tests.integration.nothere",
}


def count(samples: Samples, task: str, status: str, exception: str) -> float:
    name = "bkmonitor_cron_task_execute_count_total"
    return value(samples, name, exception=exception, queue="celery_cron", status=status, task_name=task)


def exercise(sender: Celery, worker: Worker, metrics_dir: Path) -> None:
    service = get_client(SERVICE)
    # Two as the beat sends them (slot ids: claimed, then released with their run-log entry in one script), two
    # with Celery's own ids (run as they come, their entry written on its own).
    slot = int(time.time())
    scheduled = {RECORD: f"{RECORD}@{slot}", BOOM: f"{BOOM}@{slot}"}
    for name in (RECORD, MODULE, BOOM, MISSING):
        sender.send_task(name, queue="celery_cron", expires=300, task_id=scheduled.get(name))
    wait_for(lambda: service.llen(EFFECT_KEY) >= 2, 60, "both record_effect jobs to run")
    # The pool processes were forked from a frozen heap (app._freeze_heap, before each fork): in the tens of
    # thousands of objects (Django, Celery, the app), where an unfrozen one has none.
    assert all(int(str(effect).rsplit(":", 1)[1]) > 10_000 for effect in service.lrange(EFFECT_KEY, 0, -1))
    wait_for(lambda: "cannot be imported" in worker.log(), 30, "the missing job to fail")

    log = worker.log()
    record, boom, missing = PATHS[RECORD], PATHS[BOOM], PATHS[MISSING]
    assert f"^[Cron Task]({record})" in log
    assert re.search(rf"\$\[Cron Task\]\({re.escape(record)}\) cost: \d+\.\d+\n", log)  # seconds, no unit
    assert f"![Cron Task]({boom}) error: this job always fails" in log
    assert re.search(rf"\$\[Cron Task\]\({re.escape(boom)}\) cost: ", log)  # after a failure too
    assert f"![Cron Task]({missing}) error: cron job 'tests.integration.nothere' cannot be imported" in log
    # Failures are visible to Celery too (the original swallowed them).
    assert f"Task {BOOM}[" in log and "raised unexpected: JobFailedError" in log

    samples = wait_for(
        lambda: (s := metric_samples(metrics_dir)) and count(s, PATHS[MISSING], "failed", "CronJobImportError") and s,
        30,
        "the metrics of all four runs",
    )
    # The original's labels: the job's path, "None" for no exception, its class name otherwise.
    assert count(samples, PATHS[RECORD], "success", "None") == 1
    assert count(samples, PATHS[MODULE], "success", "None") == 1
    assert count(samples, PATHS[BOOM], "failed", "JobFailedError") == 1
    assert count(samples, PATHS[MISSING], "failed", "CronJobImportError") == 1
    histogram = ("bkmonitor_cron_task_execute_time_count", (("queue", "celery_cron"), ("task_name", PATHS[RECORD])))
    assert samples[histogram] == 1
    # Every task is timed too, by its function's name, with the exception that ended it.
    celery_time = "bkmonitor_celery_task_execute_time_count"
    record_fn, boom_fn = RECORD.rpartition(".")[2], BOOM.rpartition(".")[2]
    ok, failed = ("exception", "None"), ("exception", "JobFailedError")
    assert samples[(celery_time, (ok, ("queue", "celery_cron"), ("task_name", record_fn)))] == 1
    assert samples[(celery_time, (failed, ("queue", "celery_cron"), ("task_name", boom_fn)))] == 1

    # A scheduled run's entry is written with its slot's release, after the job and its metrics.
    expected = sorted(
        [
            (RECORD, "success", ""),
            (MODULE, "success", ""),
            (BOOM, "failed", "JobFailedError"),
            (MISSING, "failed", "CronJobImportError"),
        ]
    )

    def logged() -> list[tuple[str, str, str]]:
        runs = [RunLogEntry.from_fields(fields) for _, fields in get_client(LOG).xrange(stream_key()) or []]
        return sorted((r.task, r.status, r.exception) for r in runs)

    wait_for(lambda: len(logged()) >= len(expected), 10, "the four runs' run-log entries")
    assert logged() == expected
    assert {task_id: service.get(dedupe.claim_key(task_id)) for task_id in scheduled.values()} == {
        task_id: dedupe.DONE for task_id in scheduled.values()
    }


@pytest.mark.redis
def test_worker_on_the_redis_broker(redis_dbs: None, start_worker: Callable[..., Worker], tmp_path: Path) -> None:
    from alarm_backends.service.scheduler.app import app

    assert app.conf.broker_url.startswith("redis://") and app.conf.broker_url.endswith("/13")
    worker = start_worker()
    exercise(app, worker, tmp_path / "metrics")


@pytest.mark.rabbitmq
def test_worker_on_rabbitmq(
    redis_dbs: None, rabbitmq_vhost: str, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    env = {
        "BK_MONITOR_RABBITMQ_HOST": "127.0.0.1",
        "BK_MONITOR_RABBITMQ_PORT": "5672",
        "BK_MONITOR_RABBITMQ_VHOST": rabbitmq_vhost,
        "BK_MONITOR_RABBITMQ_USERNAME": "guest",
        "BK_MONITOR_RABBITMQ_PASSWORD": "guest",
    }
    worker = start_worker(**env)
    assert "transport:   amqp://guest:**@127.0.0.1:5672/" + rabbitmq_vhost in worker.log()
    broker = RabbitMQSettings("127.0.0.1", 5672, rabbitmq_vhost, "guest", "guest").broker_url()
    sender = Celery("sender", broker=broker)
    sender.conf.task_serializer = "json"
    try:
        exercise(sender, worker, tmp_path / "metrics")
    finally:
        sender.close()


@pytest.mark.redis
def test_a_slot_published_twice_runs_once(redis_dbs: None, start_worker: Callable[..., Worker], tmp_path: Path) -> None:
    from alarm_backends.service.scheduler.app import app

    worker = start_worker()
    slot_id = f"{RECORD}@1795000000"
    sent = time.time()
    for _ in range(2):
        # As the patched beat sends a cron task: its deadline on the Redis clock, the publish plus the task's expires.
        deadline = round(get_client(SERVICE).time()[0] + 300.0, 3)
        app.send_task(RECORD, queue="celery_cron", task_id=slot_id, headers={"bkm_deadline": deadline})
    app.send_task(RECORD, queue="celery_cron", expires=300)  # an ad-hoc run (uuid id) is never deduplicated
    wait_for(lambda: "duplicate delivery dropped" in worker.log(), 30, "the second delivery to be dropped")
    wait_for(lambda: get_client(SERVICE).llen(EFFECT_KEY) >= 2, 30, "the two distinct runs")
    assert get_client(SERVICE).llen(EFFECT_KEY) == 2
    slot = f"bkmonitorv3.default.beat.slot.{slot_id}"
    wait_for(lambda: get_client(SERVICE).get(slot) == "done", 10, "the slot's release")  # after the job's effect
    samples = metric_samples(tmp_path / "metrics")
    assert samples[("bkmonitor_beat_duplicate_dropped_total", (("task_name", RECORD),))] == 1
    # The run log: the slot's run with its slot id and when it was published, the dropped delivery beside it, and
    # the ad-hoc run without a slot.
    entries = [RunLogEntry.from_fields(fields) for _, fields in get_client(LOG).xrange(stream_key()) or []]
    by_status = sorted((entry.status, entry.slot) for entry in entries)
    assert by_status == [("duplicate", slot_id), ("success", ""), ("success", slot_id)]
    [run] = [entry for entry in entries if entry.slot and entry.status == "success"]
    assert run.published is not None and sent - 1 < run.published < time.time() + 1
    assert (run.entry, run.due) == (RECORD, 1795000000.0)
