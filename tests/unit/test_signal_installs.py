"""The backend app's signal receivers (task timing, refused messages) are installed once per app: a second set-up
of the same app must not count a run or a refused message twice."""

from __future__ import annotations

from types import SimpleNamespace

from celery import Celery
from celery.signals import task_rejected
from kombu.exceptions import ContentDisallowed

from alarm_backends.core.prometheus import celery_timer
from alarm_backends.core.prometheus.metrics import CELERY_TASK_EXECUTE_TIME, WORKER_REFUSED_MESSAGES
from alarm_backends.service.scheduler import refused


def sample(metric_name: str, **labels: str) -> float:
    metric = CELERY_TASK_EXECUTE_TIME if metric_name.startswith("bkmonitor_celery") else WORKER_REFUSED_MESSAGES
    for family in metric.collect():
        for s in family.samples:
            if s.name == metric_name and s.labels == labels:
                return s.value
    return 0.0


def test_a_task_of_an_app_installed_twice_is_timed_once() -> None:
    app = Celery("timed-twice", set_as_current=False)

    @app.task(name="bkm_test_timed_twice", queue="bkm-test-timed")
    def bkm_test_timed_twice() -> int:
        return 1

    labels = {"task_name": "bkm_test_timed_twice", "queue": "bkm-test-timed", "exception": "None"}
    before = sample("bkmonitor_celery_task_execute_time_count", **labels)
    celery_timer.install(app)
    celery_timer.install(app)
    assert bkm_test_timed_twice.apply().get() == 1
    assert sample("bkmonitor_celery_task_execute_time_count", **labels) == before + 1


def test_a_message_refused_by_an_app_installed_twice_is_counted_once() -> None:
    app = Celery("refused-twice", set_as_current=False)
    refused.install(app)
    refused.install(app)
    labels = {"content_type": "application/x-python-serialize", "queue": "bkm-test-refused"}
    before = sample("bkmonitor_worker_refused_messages_total", **labels)
    message = SimpleNamespace(
        content_type=labels["content_type"],
        delivery_info={"routing_key": labels["queue"]},
        headers={"task": "t", "id": "i"},
    )
    consumer = type("Consumer", (), {"app": app})()  # a worker's consumer, as the signal's sender
    task_rejected.send(sender=consumer, message=message, exc=ContentDisallowed("refused"))
    assert sample("bkmonitor_worker_refused_messages_total", **labels) == before + 1
