"""Messages across a rolling upgrade from the original, whose hosts publish and accept pickle only (its
service/scheduler/app.py: ``task_serializer = "pickle"``, ``accept_content = ["pickle"]``), on the Redis broker.

* By default (JSON) a worker refuses the original's pickle message: the run is lost, so it is counted and logged
  loudly, naming the setting that fixes it.
* With ``CELERY_SERIALIZER = "pickle"`` (the upgrade setting) a worker runs the original's messages and JSON ones,
  and the beat publishes pickle, which the original's workers accept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection
from kombu.serialization import loads, prepare_accept_content

from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.conftest import Worker, wait_for
from tests.integration.jobs import EFFECT_KEY
from tests.integration.redbeat_helpers import make_app
from tests.metrics import metric_samples, value

pytestmark = pytest.mark.redis

RECORD = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_record_effect"
PICKLE = "application/x-python-serialize"


@pytest.fixture
def original(redis_dbs: None) -> Iterator[Celery]:
    """A sender configured as the original's backend app, on the platform's broker."""
    from alarm_backends.service.scheduler.app import app

    sender = Celery("original", broker=app.conf.broker_url, set_as_current=False)
    sender.conf.update(task_serializer="pickle", accept_content=["pickle"], result_serializer="pickle")
    yield sender
    sender.close()


def effects() -> int:
    from alarm_backends.core.storage.redis import SERVICE, get_client

    return int(get_client(SERVICE).llen(EFFECT_KEY))


def test_a_json_worker_refuses_the_originals_message_loudly(
    original: Celery, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    worker = start_worker()
    original.send_task(RECORD, queue="celery_cron", expires=300, task_id=f"{RECORD}@1795000000")
    wait_for(lambda: "worker: refused a" in worker.log(), 30, "the refusal to be logged")
    line = next(line for line in worker.log().splitlines() if "worker: refused a" in line)
    assert f"refused a {PICKLE} message of task {RECORD} (id {RECORD}@1795000000) on queue celery_cron" in line
    assert " ERROR " in line and "set CELERY_SERIALIZER=pickle" in line
    samples = wait_for(lambda: metric_samples(tmp_path / "metrics") or None, 10, "the worker's metrics")
    name = "bkmonitor_worker_refused_messages_total"
    assert value(samples, name, content_type=PICKLE, queue="celery_cron") == 1
    assert effects() == 0


def test_with_the_upgrade_setting_both_sides_run_each_others_messages(
    original: Celery, start_worker: Callable[..., Worker]
) -> None:
    from alarm_backends.service.scheduler.app import app

    # Celery refuses to run a pickle-accepting worker as root without C_FORCE_ROOT, which the original's supervisord
    # config sets (the README's upgrade guide says so).
    worker = start_worker(BKAPP_SETTINGS_CELERY_SERIALIZER="pickle", C_FORCE_ROOT="1")
    original.send_task(RECORD, queue="celery_cron", expires=300)  # the original's beat
    app.send_task(RECORD, queue="celery_cron", expires=300, serializer="json")  # a host of this platform still on JSON
    wait_for(lambda: effects() >= 2, 60, "both runs")
    assert "refused" not in worker.log()

    # This platform's beat under the setting publishes pickle, which the original's workers accept.
    beat_app = make_app({"e": {"task": RECORD, "schedule": 60.0}}, task_serializer="pickle")
    beat = RedBeatScheduler(app=beat_app)
    try:
        beat.tick()
    finally:
        beat.close()
    with Connection(beat_app.conf.broker_url) as connection:
        message = connection.default_channel.basic_get(beat_app.conf.task_default_queue, no_ack=True)
    assert message.content_type == PICKLE
    # As the original's workers read it: pickle accepted, nothing else.
    args, kwargs, embed = loads(
        message.body, message.content_type, message.content_encoding, accept=prepare_accept_content(["pickle"])
    )
    assert (list(args), kwargs, embed["callbacks"]) == ([], {}, None)
    assert message.headers["task"] == RECORD
