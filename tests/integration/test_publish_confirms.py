"""The publisher-confirm failure path on a real RabbitMQ, and the log of an emptied store.

A broker that refuses a message (here a queue at its ``x-max-length`` with ``x-overflow=reject-publish``: RabbitMQ
nacks the publish) must leave its chunk uncommitted: the entries stay due, the next tick publishes them again under
the same ids, and no run is lost or sent twice to a queue that took it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.schedules import crontab
from kombu import Connection, Queue

from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT
from tests.integration.conftest import wait_for
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


class FreezableProxy:
    """A TCP proxy on loopback between a client and RabbitMQ whose broker-to-client direction can be held: the
    broker's confirms then never arrive, as over a link that stalled."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.flowing = threading.Event()  # cleared: the broker's bytes are held until it is set again
        self.flowing.set()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, holdable: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if holdable:
                    self.flowing.wait()
                sink.sendall(data)

    def close(self) -> None:
        self.flowing.set()
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def test_an_unconfirmed_chunk_times_out_and_is_published_again(
    rabbitmq_vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's confirms stop arriving (a stalled link): the wait gives up after a third of the lease, the chunk is
    not committed, and the next tick publishes it again under the same ids. A copy that did reach the queue is the
    same slot: the workers' claim drops the second delivery."""
    proxy = FreezableProxy(RABBITMQ_PORT)
    entries = {f"e{i}": EVERY_MINUTE for i in range(3)}
    app = make_app(entries, broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{rabbitmq_vhost}")
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()  # every entry once, confirmed: the channel is in confirm mode
        assert runs(entries) == [1, 1, 1]
        due_again = time.time() - 1
        store().zadd("redbeat::schedule", {f"redbeat:{name}": due_again for name in entries})
        proxy.flowing.clear()
        with caplog.at_level(logging.WARNING, logger="celery.beat"):
            started = time.monotonic()
            beat.tick()
        assert time.monotonic() - started < 3 * beat.conf.lock_timeout  # the beat did not hang
        assert "PublishNotConfirmedError: 3 message(s) unconfirmed after 1s" in caplog.text
        assert runs(entries) == [1, 1, 1]  # not committed
        proxy.flowing.set()
        # The beat's next ticks (the stalled one may have outlasted most of the lease: it re-checks the lock first).
        wait_for(lambda: beat.tick() is not None and runs(entries) == [2, 2, 2], 15, "the chunk published again")
    finally:
        beat.close()
        proxy.close()
    with Connection(f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{rabbitmq_vhost}") as connection:
        sent = drain(connection, app.conf.task_default_queue)
    again = {f"{name}@{int(due_again)}" for name in entries}
    assert again <= set(sent) and len(set(sent)) == 2 * len(entries)  # both slots of every entry: none lost
    assert all(sent.count(task_id) == (2 if task_id in again else 1) for task_id in set(sent))  # the same id twice


def runs(entries: dict[str, Any]) -> list[int]:
    return [decode_meta(store().hget(f"redbeat:{name}", "meta"))[1] for name in entries]
