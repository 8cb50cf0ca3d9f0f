"""The publisher-confirm failure path on a real RabbitMQ, and the log of an emptied store.

A broker that refuses a message (here a queue at its ``x-max-length`` with ``x-overflow=reject-publish``: RabbitMQ
nacks the publish) must leave its chunk uncommitted: the entries stay due, the next tick publishes them again under
the same ids, and no run is lost or sent twice to a queue that took it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from celery.schedules import crontab
from kombu import Connection, Queue

from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT
from tests.integration.redbeat_helpers import make_app, store

pytestmark = pytest.mark.redis

EVERY_MINUTE = {"task": "t.minutely", "schedule": crontab(minute="*")}
ROOM = 4  # messages the queue takes before the broker nacks


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


def drain(connection: Connection, queue: str) -> list[str]:
    ids = []
    while (message := connection.default_channel.basic_get(queue, no_ack=True)) is not None:
        ids.append(message.headers["id"])
    return ids


def test_a_nacked_message_is_published_again_and_its_chunk_not_committed(
    rabbitmq_vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker_url = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{rabbitmq_vhost}"
    entries = {f"e{i}": EVERY_MINUTE for i in range(ROOM + 2)}
    # One message per chunk: the chunks the broker confirmed commit, the nacked ones do not.
    app = make_app(entries, broker_url=broker_url, redbeat_publish_chunk=1)
    queue = app.conf.task_default_queue
    arguments: dict[str, Any] = {"x-max-length": ROOM, "x-overflow": "reject-publish"}
    app.conf.task_queues = [Queue(queue, routing_key=queue, queue_arguments=arguments)]
    beat = RedBeatScheduler(app=app)
    with Connection(broker_url) as connection:
        app.conf.task_queues[0](connection.default_channel).declare()
        try:
            with caplog.at_level(logging.WARNING, logger="celery.beat"):
                beat.tick()
            first = drain(connection, queue)
            committed = {name for name in entries if decode_meta(store().hget(f"redbeat:{name}", "meta"))[1]}
            assert len(first) == ROOM and {i.split("@")[0] for i in first} == committed
            assert "publishing failed" in caplog.text and "will be retried" in caplog.text
            # The queue has room again: the next tick publishes what was refused, under the same ids.
            beat.tick()
            second = drain(connection, queue)
        finally:
            beat.close()
    assert sorted(i.split("@")[0] for i in first + second) == sorted(entries)  # every entry once: none lost
    assert len(set(first + second)) == len(first + second)  # nothing sent twice
    assert {i.rpartition("@")[2] for i in first + second} == {first[0].rpartition("@")[2]}  # one slot, one id each
    assert all(decode_meta(store().hget(f"redbeat:{name}", "meta"))[1] == 1 for name in entries)


def test_an_emptied_store_is_logged_as_such(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app({"a": EVERY_MINUTE, "b": EVERY_MINUTE}, redbeat_first_run="next")
    beat = RedBeatScheduler(app=app)
    try:
        with caplog.at_level(logging.WARNING, logger="celery.beat"):
            beat.tick()
    finally:
        beat.close()
    assert ("beat: the schedule store holds none of the 2 entries (a new store, or one that lost its data): each "
            "entry waits for its next slot") in caplog.text  # fmt: skip
    caplog.clear()
    beat = RedBeatScheduler(app=app)  # the store kept them: nothing to say
    try:
        with caplog.at_level(logging.WARNING, logger="celery.beat"):
            beat.tick()
    finally:
        beat.close()
    assert "holds none of" not in caplog.text
