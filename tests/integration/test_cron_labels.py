"""A cron job's log lines and metrics as the original's ``task_duration`` wrote them (its tasks/cron.py, api_cron.py
and core/prometheus): dashboards, alerts and log searches written for the original keep working.

* ``task_name``: the job's dotted path (``DEFAULT_CRONTAB`` & co.), or its function's ``__name__`` (``API_CRONTAB``,
  ``REPORT_CRONTAB``); ``queue``: the entry's queue as configured; ``exception``: the class name, or ``None``;
* ``^[Cron Task](<name>)`` before, ``![Cron Task](<name>) error: <e>`` on a failure and ``$[Cron Task](<name>) cost:
  <seconds>`` after every run, failed or not;
* the original's histogram buckets.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator

import pytest
from croniter import croniter
from django.test import override_settings
from prometheus_client import REGISTRY

from alarm_backends.core.prometheus.metrics import CELERY_TASK_EXECUTE_TIME, CRON_TASK_EXECUTE_TIME
from alarm_backends.service.scheduler.crontab import make_crontab
from alarm_backends.service.scheduler.runner import run_job

pytestmark = pytest.mark.redis  # the run log

INF = float("inf")


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


def runs(task_name: str, queue: str, status: str, exception: str) -> float:
    labels = {"task_name": task_name, "queue": queue, "status": status, "exception": exception}
    return REGISTRY.get_sample_value("bkmonitor_cron_task_execute_count_total", labels) or 0.0


def test_a_cron_job_is_named_by_its_path(caplog: pytest.LogCaptureFixture) -> None:
    path = "tests.integration.jobs.record_effect"
    before = runs(path, "celery_cron", "success", "None")
    with caplog.at_level(logging.INFO, logger="cron"):
        run_job(path, "celery_cron", "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_record_effect")
    assert runs(path, "celery_cron", "success", "None") == before + 1
    assert caplog.messages[0] == f"^[Cron Task]({path})"
    assert re.fullmatch(rf"\$\[Cron Task\]\({re.escape(path)}\) cost: \d+\.\d+(e-\d+)?", caplog.messages[-1])


def test_an_api_job_is_named_by_its_function_and_a_failure_still_costs(caplog: pytest.LogCaptureFixture) -> None:
    path = "tests.integration.jobs.boom"
    before = runs("boom", "celery_api_cron", "failed", "JobFailedError")
    # CRON_TASK_RAISE_ERRORS=False: the original swallowed it.
    with caplog.at_level(logging.INFO, logger="cron"), override_settings(CRON_TASK_RAISE_ERRORS=False):
        assert run_job(path, "celery_api_cron", path, function_label=True) is None
    assert runs("boom", "celery_api_cron", "failed", "JobFailedError") == before + 1
    assert [m.split(")")[0] for m in caplog.messages] == ["^[Cron Task](boom", "![Cron Task](boom", "$[Cron Task](boom"]
    assert caplog.messages[1] == "![Cron Task](boom) error: this job always fails"


def test_a_stopped_run_is_counted_as_stopped_not_as_a_success(caplog: pytest.LogCaptureFixture) -> None:
    """A run a SIGTERM stopped (a replace, a terminate) goes on up as it came, logged and counted as failed with its
    class; it used to be counted a success (the body's BaseException passed the outcome by)."""
    path = "tests.integration.jobs.stopped"
    before = runs(path, "celery_cron", "failed", "SystemExit"), runs(path, "celery_cron", "success", "None")
    with caplog.at_level(logging.INFO, logger="cron"), pytest.raises(SystemExit):
        run_job(path, "celery_cron", "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_stopped")
    assert (runs(path, "celery_cron", "failed", "SystemExit"), runs(path, "celery_cron", "success", "None")) == (
        before[0] + 1,
        before[1],
    )
    assert caplog.messages[1] == f"![Cron Task]({path}) stopped: SystemExit"
    assert caplog.messages[-1].startswith(f"$[Cron Task]({path}) cost: ")


def test_the_buckets_are_the_originals() -> None:
    # core/prometheus/metrics.py of the original.
    assert CRON_TASK_EXECUTE_TIME._upper_bounds == [1, 5, 10, 30, 60, 120, 180, 240, 300, 450, 600, 900, 1800, 3000,
                                                    10000, INF]  # fmt: skip
    assert CELERY_TASK_EXECUTE_TIME._upper_bounds == [0.1, 0.5, 1, 3, 5, 10, 30, 60, 300, 1800, INF]


def test_the_originals_task_duration_decorator(caplog: pytest.LogCaptureFixture) -> None:
    """Product code imports ``task_duration`` from tasks.cron: same lines and labels, the exception swallowed."""
    from alarm_backends.service.scheduler.tasks.cron import task_duration

    @task_duration("sync_cluster", queue_name="celery_api_cron")
    def ok(x: int) -> int:
        return x * 2

    @task_duration("broken")  # no queue: the original's label read "None"
    def broken() -> None:
        raise KeyError("gone")

    before = runs("broken", "None", "failed", "KeyError")
    with caplog.at_level(logging.INFO, logger="cron"):
        assert ok(21) == 42
        assert broken() is None
    assert runs("broken", "None", "failed", "KeyError") == before + 1
    assert runs("sync_cluster", "celery_api_cron", "success", "None") >= 1
    assert [m.partition(")")[0] for m in caplog.messages] == [
        "^[Cron Task](sync_cluster", "$[Cron Task](sync_cluster",
        "^[Cron Task](broken", "![Cron Task](broken", "$[Cron Task](broken",
    ]  # fmt: skip


def test_a_run_sets_when_it_ran_and_when_it_is_due_next_by_croniter() -> None:
    """The gauges of the not-running alert: the run's end, and the next fire time after it, as croniter computes it
    (in the backend app's zone, UTC) — not as the platform does."""
    from celery import current_app

    from alarm_backends.service.scheduler.app import app

    path = "tests.integration.jobs.boom"  # a failed run is a run too
    labels = {"task_name": path, "queue": "celery_cron"}
    previous = current_app._get_current_object()
    app.set_current()  # the crontab's zone is its app's, as in a worker
    try:
        before = time.time()
        with override_settings(CRON_TASK_RAISE_ERRORS=False):
            run_job(path, "celery_cron", "t.boom", schedule=make_crontab("*/7 3-23 * * *"))
        after = time.time()
    finally:
        previous.set_current()
    last = REGISTRY.get_sample_value("bkmonitor_cron_task_last_run_timestamp_seconds", labels)
    due = REGISTRY.get_sample_value("bkmonitor_cron_task_next_due_timestamp_seconds", labels)
    assert last is not None and before <= last <= after
    expected = croniter("*/7 3-23 * * *", dt.datetime.fromtimestamp(last, dt.UTC)).get_next(float)
    assert due == pytest.approx(expected, abs=1e-6)
    # Without its schedule (the original's task_duration decorator), only when it ran.
    with override_settings(CRON_TASK_RAISE_ERRORS=False):
        run_job(path, "celery_other", "t.boom")
    other = {"task_name": path, "queue": "celery_other"}
    assert REGISTRY.get_sample_value("bkmonitor_cron_task_next_due_timestamp_seconds", other) is None
    assert REGISTRY.get_sample_value("bkmonitor_cron_task_last_run_timestamp_seconds", other) is not None
