"""The reliable Redis transport (patches/kombu_redis) against the real Redis, with kombu's own transport as the
oracle: the same queues, message format and ``unacked`` records, and the two loss windows it has and this one
closes — a message taken as the connection breaks, and what a dead consumer held."""

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
from patches.kombu_redis import consumers
from patches.kombu_redis.consumers import CONSUMERS_KEY, ConsumerKeys
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN

pytestmark = pytest.mark.redis

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB_PLAN['queue']}"
# Beats every 0.2 s, dead after 1 s: the tests wait on seconds, not the defaults' tens.
FAST = {"consumer_heartbeat": 0.2, "consumer_timeout": 1.0}


@pytest.fixture
def queue(redis_dbs: None) -> Iterator[Queue]:
    name = f"bkm-test-reliable-{uuid.uuid4().hex[:8]}"
    yield Queue(name, Exchange(name, type="direct"), routing_key=name)


@pytest.fixture
def db() -> redis.Redis:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB_PLAN["queue"])


def raw(db: redis.Redis, queue: Queue) -> list[dict[str, Any]]:
    """The queue's messages as stored, next to be taken first (kombu takes from the right)."""
    return [json.loads(item) for item in reversed(db.lrange(queue.name, 0, -1))]


def publish(conn: Connection, queue: Queue, *task_ids: str) -> None:
    producer = conn.Producer()
    for task_id in task_ids:
        producer.publish({"n": task_id}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue],
                         headers={"id": task_id})  # fmt: skip


def reliable(**options: Any) -> Connection:
    return Connection(URL, transport=kombu_redis.Transport, transport_options=options)


def test_a_taken_message_is_recorded_as_kombu_records_it_and_as_this_consumers(queue: Queue, db: redis.Redis) -> None:
    with reliable() as conn:
        publish(conn, queue, "a")
        consumer = conn.SimpleQueue(queue)
        message = consumer.get(timeout=5)
        channel = consumer.channel
        tag = message.delivery_tag
        # kombu's own record, read back the way kombu's restore reads it
        stored, exchange, routing_key = json.loads(db.hget("unacked", tag) or "null")
        assert stored == message._raw and (exchange, routing_key) == (queue.name, queue.routing_key)
        assert db.zscore("unacked_index", tag) is not None
        assert db.smembers(channel.consumer.taken) == {tag.encode()}
        assert db.zscore(CONSUMERS_KEY, channel.consumer.id) is not None
        message.ack()
        assert db.hget("unacked", tag) is None and db.smembers(channel.consumer.taken) == set()
        consumer.close()
    # a consumer that closes deregisters: nothing of it is left to reap
    assert db.zscore(CONSUMERS_KEY, channel.consumer.id) is None
    assert not db.exists(channel.consumer.record, channel.consumer.taken, channel.consumer.processing)


def test_kombus_own_transport_shares_the_queues(queue: Queue, db: redis.Redis) -> None:
    """A rolling upgrade: kombu's consumers (the original's workers) take what this transport's side publishes,
    and the reverse; and kombu's visibility restore puts back a message this transport recorded."""
    with Connection(URL, transport=stock.Transport) as old, reliable() as new:
        publish(new, queue, "to-old")
        publish(old, queue, "to-new")
        got_old = old.SimpleQueue(queue).get(timeout=5)
        got_new = new.SimpleQueue(queue).get(timeout=5)
        assert (got_old.headers["id"], got_new.headers["id"]) == ("to-old", "to-new")
        got_old.ack()
        # kombu's restore of records older than the visibility timeout (here 0) takes this transport's record too
        restorer = Connection(URL, transport=stock.Transport, transport_options={"visibility_timeout": 0})
        with restorer:
            restorer.default_channel.qos.restore_visible(num=10, interval=1)
        assert [m["headers"]["id"] for m in raw(db, queue)] == ["to-new"]


def test_a_message_whose_take_reply_is_lost_goes_back_unmarked(
    queue: Queue, db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """take.lua ran on the server and its reply never arrived (the connection broke): the message is in this
    consumer's record, which the consumer checks against what it received."""
    with reliable(**FAST) as conn:
        publish(conn, queue, "first", "second")
        consumer = conn.SimpleQueue(queue)
        channel = consumer.channel
        lost: list[Any] = []
        parse = channel.client.parse_response

        def reply_lost(connection: Any, command: str, **options: Any) -> None:
            lost.append(parse(connection, command, **options))  # the server answered; the answer never arrives
            raise redis.ConnectionError("Connection reset by peer")

        monkeypatch.setattr(channel.client, "parse_response", reply_lost)
        with pytest.raises(redis.ConnectionError):
            consumer.get(timeout=5)
        monkeypatch.undo()
        assert len(lost) == 1 and lost[0] and raw(db, queue)[0]["headers"]["id"] == "second"
        assert db.scard(channel.consumer.taken) == 1  # taken and recorded, never received
        taken = [consumer.get(timeout=5) for _ in range(2)]
        assert [m.headers["id"] for m in taken] == ["first", "second"]
        assert not taken[0].delivery_info.get("redelivered")  # it never ran
        for message in taken:
            message.ack()
        consumer.close()


def test_kombus_own_transport_loses_that_message(
    queue: Queue, db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oracle: the same break after kombu's BRPOP took the message leaves it nowhere."""
    with Connection(URL, transport=stock.Transport) as conn:
        publish(conn, queue, "first")

        def reply_lost(self: stock.QoS, message: Any, delivery_tag: str) -> None:
            raise redis.ConnectionError("Connection reset by peer")

        monkeypatch.setattr(stock.QoS, "append", reply_lost)
        consumer = conn.SimpleQueue(queue)
        with pytest.raises(redis.ConnectionError):
            consumer.get(timeout=5)
        assert raw(db, queue) == [] and db.hlen("unacked") == 0
        consumer.close()


def abandon(conn: Connection) -> None:
    """What kill -9 leaves: the consumer stops beating, its records stay, nothing is closed."""
    conn.transport.cycle.consumers_tick = lambda: None
    for channel in conn.transport.cycle._channels:
        channel.deregister = lambda: None
        channel.do_restore = False  # nor does it put back what it received at exit


def test_what_a_dead_consumer_held_is_back_within_seconds_marked_redelivered(queue: Queue, db: redis.Redis) -> None:
    dead = reliable(**FAST)
    publish(dead, queue, "received", "waiting")
    held = dead.SimpleQueue(queue).get(timeout=5)  # received, never acknowledged
    dead_id = held.channel.consumer.id
    abandon(dead)
    with reliable(**FAST) as conn:
        survivor = conn.SimpleQueue(queue)
        first = survivor.get(timeout=5)
        assert first.headers["id"] == "waiting" and not first.delivery_info.get("redelivered")
        first.ack()
        back = survivor.get(timeout=10)  # the survivor beats for 1 s, then finds the dead one stale for 1 s
        assert back.headers["id"] == "received" and back.delivery_info["redelivered"] is True
        back.ack()
        assert db.zscore(CONSUMERS_KEY, dead_id) is None
        gone = ConsumerKeys.of(dead_id)
        assert not db.exists(gone.record, gone.taken, gone.processing)
        survivor.close()
    assert db.hlen("unacked") == 0


def test_a_message_moved_in_by_a_dead_consumers_blmove_goes_back_unmarked(queue: Queue, db: redis.Redis) -> None:
    """Killed after ``BLMOVE`` answered and before it took the message from its processing list."""
    keys = ConsumerKeys.of("killed-mid-move")
    with reliable(**FAST) as conn:
        publish(conn, queue, "moved")
        db.hset(keys.record, mapping={"beat": 0, "source": queue.name, "ack": "1"})
        db.zadd(CONSUMERS_KEY, {keys.id: 0})
        assert db.lmove(queue.name, keys.processing, "RIGHT", "LEFT")
        assert raw(db, queue) == []
        consumer = conn.SimpleQueue(queue)
        back = consumer.get(timeout=10)
        assert back.headers["id"] == "moved" and not back.delivery_info.get("redelivered")
        back.ack()
        consumer.close()
    assert not db.exists(keys.record, keys.processing)


def test_a_live_consumer_is_not_reaped(queue: Queue, db: redis.Redis) -> None:
    with reliable(**FAST) as busy, reliable(**FAST) as other:
        publish(busy, queue, "held")
        held = busy.SimpleQueue(queue).get(timeout=5)
        watcher = other.SimpleQueue(queue)
        channel = watcher.channel
        channel.ensure_registered()
        # both beat (drain_events beats from the poller); the watcher is old enough to reap after 1 s
        deadline_ticks = 0
        while deadline_ticks < 15:
            busy.transport.cycle.consumers_tick()
            other.transport.cycle.consumers_tick()
            deadline_ticks += 1
            with pytest.raises(watcher.Empty):
                watcher.get(timeout=0.2)
        assert db.sismember(held.channel.consumer.taken, held.delivery_tag)
        assert db.hget("unacked", held.delivery_tag) is not None
        held.ack()
        watcher.close()


def test_no_consumer_reaps_before_it_has_beaten_for_a_whole_timeout(queue: Queue, db: redis.Redis) -> None:
    """After a Redis outage every beat is stale: a consumer that just came back must not take the others for dead
    before they could beat again."""
    stale = ConsumerKeys.of("stale-after-outage")
    db.hset(stale.record, mapping={"beat": 0, "source": queue.name, "ack": "1"})
    db.zadd(CONSUMERS_KEY, {stale.id: 0})
    with reliable(consumer_heartbeat=0.2, consumer_timeout=30.0) as conn:
        consumer = conn.SimpleQueue(queue)
        consumer.channel.ensure_registered()
        conn.transport.cycle.consumers_tick()
        assert db.zscore(CONSUMERS_KEY, stale.id) == 0  # not reaped: this one is 0 s old, not 30
        consumer.close()
    db.delete(stale.record)
    db.zrem(CONSUMERS_KEY, stale.id)


def test_dead_consumers_are_found_on_the_redis_clock(db: redis.Redis) -> None:
    now = db.time()[0]
    db.zadd(CONSUMERS_KEY, {"old": now - 100, "fresh": now})
    try:
        assert consumers.dead_consumers(db, 10) == ["old"]
    finally:
        db.zrem(CONSUMERS_KEY, "old", "fresh")


def test_its_channels_read_every_option_kombus_read() -> None:
    for ours, kombus in ((kombu_redis.Transport.Channel, stock.Channel),
                         (kombu_redis.SentinelTransport.Channel, stock.SentinelChannel)):  # fmt: skip
        assert set(kombus.from_transport_options) < set(ours.from_transport_options)


def test_the_backend_app_names_it_for_redis_brokers() -> None:
    from alarm_backends.service.scheduler.app import app

    assert app.conf.broker_url  # a worker reads its configuration first, which installs the transport
    for url, expected in (("redis://127.0.0.1:6379/9", kombu_redis.Transport),
                          ("sentinel://127.0.0.1:26379", kombu_redis.SentinelTransport)):  # fmt: skip
        assert type(Connection(url).transport) is expected
