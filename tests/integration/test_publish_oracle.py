"""The batched publisher against Celery's own beat: for the same entry, the message the patched scheduler sends
equals the one ``celery.beat.Scheduler.apply_async`` (``Task.apply_async`` with Celery beat's header) sends —
body, headers, properties, delivery info — read back from the broker, on Redis and on RabbitMQ.

The only differences allowed are the ones the README names: the task id (``id``, ``root_id``, ``correlation_id``:
``<entry>@<slot>`` here, a random uuid in Celery), the ``expires`` stamp (counted from the publish, a moment apart)
and the broker's own delivery tag. This test is the gate for every Celery or kombu upgrade.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from celery import Celery
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import crontab, schedule, solar

from patches.redbeat.schedulers import RedBeatScheduler
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT
from tests.integration.redbeat_helpers import make_app

pytestmark = pytest.mark.redis

STAMPED_HEADERS = {"id", "root_id", "expires"}
STAMPED_PROPERTIES = {"correlation_id", "delivery_tag"}
# py-amqp repeats the headers among the properties: compared once, as headers.
HEADERS_PROPERTY = "application_headers"


def entries(prefix: str) -> dict[str, dict[str, Any]]:
    """One entry per kind of schedule and per way options reach a message, each on a queue of its own."""
    return {
        "cron": {"task": "t.cron", "schedule": crontab(minute="*")},  # the task's own queue and expires
        "interval": {
            "task": "t.plain",
            "schedule": schedule(run_every=dt.timedelta(seconds=30)),
            "args": (1, "x", [2.5, None]),
            "kwargs": {"k": {"nested": True}},
            "options": {"queue": f"{prefix}-interval", "priority": 5, "expires": 120},
        },
        "solar": {
            "task": "t.plain",
            "schedule": solar("sunrise", 22.54, 114.06),
            "options": {"queue": f"{prefix}-solar", "headers": {"x-origin": "ops", "trace": 7}},
        },
        "routed": {
            "task": "t.plain",
            "schedule": crontab(minute="*/5"),
            "kwargs": {"n": 3},
            "options": {"exchange": f"{prefix}-x", "routing_key": f"{prefix}-routed", "priority": 9},
        },
    }


def oracle_app(prefix: str, broker_url: str | None = None) -> Celery:
    app = make_app(entries(prefix), broker_url=broker_url, redbeat_first_run="now")

    @app.task(name="t.cron", queue=f"{prefix}-cron", expires=300, ignore_result=True, shared=False)
    def cron() -> None:
        """A task carrying its queue, expires and ignore_result, as the cron loader makes them."""

    @app.task(name="t.plain", shared=False)
    def plain(*args: Any, **kwargs: Any) -> None:
        """A plain task: queue and expires from the entry's options."""

    from kombu import Exchange, Queue

    exchange = Exchange(f"{prefix}-x", type="direct")
    app.conf.task_queues = [
        Queue(f"{prefix}-cron"),
        Queue(f"{prefix}-interval"),
        Queue(f"{prefix}-solar"),
        Queue(f"{prefix}-routed", exchange, routing_key=f"{prefix}-routed"),
        Queue(app.conf.task_default_queue),
    ]
    return app


def queue_of(name: str, prefix: str) -> str:
    return f"{prefix}-{name}"


def drain(app: Celery, queue: str) -> list[dict[str, Any]]:
    """Every message waiting in ``queue``, as the broker hands it out (kombu's basic_get on either transport)."""
    got = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        while (raw := channel.basic_get(queue, no_ack=True)) is not None:
            # py-amqp hands out its own message; kombu's virtual transports (Redis) a kombu Message already.
            message = raw if hasattr(raw, "decode") else channel.message_to_python(raw)
            got.append(
                {
                    "body": message.decode(),
                    "content_type": message.content_type,
                    "content_encoding": message.content_encoding,
                    "headers": dict(message.headers),
                    "properties": {k: v for k, v in message.properties.items() if k not in ("delivery_info",)},
                    "delivery_info": {
                        key: message.delivery_info.get(key) for key in ("exchange", "routing_key", "priority")
                    },
                }
            )
    return got


def comparable(message: dict[str, Any]) -> dict[str, Any]:
    return {
        **message,
        "headers": {k: v for k, v in message["headers"].items() if k not in STAMPED_HEADERS},
        "properties": {
            k: v for k, v in message["properties"].items() if k not in STAMPED_PROPERTIES | {HEADERS_PROPERTY}
        },
        "stamped": {
            "expires": "expires" in message["headers"],
            "ids": message["headers"]["id"] == message["headers"]["root_id"] == message["properties"]["correlation_id"],
            "headers": HEADERS_PROPERTY not in message["properties"]
            or message["properties"][HEADERS_PROPERTY] == message["headers"],
        },
    }


def stock_messages(app: Celery, prefix: str) -> dict[str, dict[str, Any]]:
    """What Celery's own beat sends for each entry (its Scheduler.apply_async, Celery beat's header included)."""
    scheduler = Scheduler(app=app, lazy=True)
    found = {}
    for name, entry in entries(prefix).items():
        scheduler.apply_async(ScheduleEntry(name=name, app=app, **entry), advance=False)
        [found[name]] = drain(app, queue_of(name, prefix))
    return found


def patched_messages(app: Celery, prefix: str) -> dict[str, dict[str, Any]]:
    """What the patched scheduler sends for the same entries: its first tick publishes every new entry."""
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
    finally:
        beat.close()
    found = {}
    for name in entries(prefix):
        [found[name]] = drain(app, queue_of(name, prefix))
    return found


def assert_same_messages(app: Celery, prefix: str) -> None:
    # The queues (and the routed entry's exchange and binding) exist before either publishes.
    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            queue(connection.default_channel).declare()
    stock, patched = stock_messages(app, prefix), patched_messages(app, prefix)
    assert stock["cron"]["headers"]["celery_beat_task"] is True  # the oracle really is Celery 5.7's beat
    for name in entries(prefix):
        assert comparable(patched[name]) == comparable(stock[name]), name
        assert patched[name]["headers"]["id"].startswith(f"{name}@")
        # expires: the same offset from the publish, each stamped at its own publish.
        for message in (stock[name], patched[name]):
            assert (message["headers"]["expires"] is not None) == (name in ("cron", "interval"))


def test_on_redis(redis_dbs: None) -> None:
    prefix = f"bkm-test-oracle-{uuid.uuid4().hex[:6]}"
    assert_same_messages(oracle_app(prefix), prefix)


def test_on_rabbitmq(rabbitmq_vhost: str, redis_dbs: None) -> None:
    prefix = f"bkm-test-oracle-{uuid.uuid4().hex[:6]}"
    app = oracle_app(prefix, f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{rabbitmq_vhost}")
    assert_same_messages(app, prefix)
