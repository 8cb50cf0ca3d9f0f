"""The Redis broker transport puts back a message taken as the connection broke, against the real Redis.

The break is injected where it happens in production — the command that records the taken message in ``unacked``
fails with a connection error, after ``BRPOP`` removed it from the queue — and everything else is real.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as stock

from patches import kombu_redis
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN

pytestmark = pytest.mark.redis

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB_PLAN['queue']}"


@pytest.fixture
def queue(redis_dbs: None) -> Iterator[Queue]:
    name = f"bkm-test-putback-{uuid.uuid4().hex[:8]}"
    yield Queue(name, Exchange(name, type="direct"), routing_key=name)


def raw(queue: Queue) -> list[dict[str, Any]]:
    """The queue's messages as stored, next to be taken first (BRPOP takes from the right)."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB_PLAN["queue"])
    return [json.loads(item) for item in reversed(client.lrange(queue.name, 0, -1))]


def test_a_message_taken_as_the_connection_breaks_goes_back_to_the_head_of_its_queue(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Connection(URL, transport=kombu_redis.Transport) as conn:
        producer = conn.Producer()
        for task_id in ("first", "second"):
            producer.publish({"n": task_id}, exchange=queue.exchange, routing_key=queue.routing_key,
                             declare=[queue], headers={"id": task_id})  # fmt: skip
        broken: list[str] = []

        def record_fails(self: stock.QoS, message: Any, delivery_tag: str) -> None:
            broken.append(message.headers["id"])
            raise redis.ConnectionError("Connection closed by server.")

        monkeypatch.setattr(stock.QoS, "append", record_fails)
        consumer = conn.SimpleQueue(queue)
        with pytest.raises(redis.ConnectionError):
            consumer.get(timeout=5)  # the error still reaches the consumer, which reconnects
        assert broken == ["first"]
        # Back where the next take finds it first, and not marked redelivered: it never ran.
        stored = raw(queue)
        assert [m["headers"]["id"] for m in stored] == ["first", "second"]
        assert "redelivered" not in stored[0]["headers"]

        monkeypatch.undo()
        taken = [consumer.get(timeout=5) for _ in range(2)]
        assert [m.payload["n"] for m in taken] == ["first", "second"]
        for message in taken:
            message.ack()
        consumer.close()


def test_the_stock_transport_loses_that_message(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the patch exists: the same break with kombu's own transport leaves the message nowhere."""
    with Connection(URL, transport=stock.Transport) as conn:
        conn.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])

        def record_fails(self: stock.QoS, message: Any, delivery_tag: str) -> None:
            raise redis.ConnectionError("Connection closed by server.")

        monkeypatch.setattr(stock.QoS, "append", record_fails)
        consumer = conn.SimpleQueue(queue)
        with pytest.raises(redis.ConnectionError):
            consumer.get(timeout=5)
        assert raw(queue) == []
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB_PLAN["queue"])
        assert client.hlen("unacked") == 0
        consumer.close()


def test_the_backend_app_uses_it_for_redis_brokers() -> None:
    from alarm_backends.service.scheduler.app import app

    assert app.conf.broker_url  # a worker reads its configuration first, which installs the transport
    for url, expected in (("redis://127.0.0.1:6379/9", kombu_redis.Transport),
                          ("sentinel://127.0.0.1:26379", kombu_redis.SentinelTransport)):  # fmt: skip
        assert type(Connection(url).transport) is expected
