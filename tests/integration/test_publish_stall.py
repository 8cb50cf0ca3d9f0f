"""A broker link that stalls (a cut network, a frozen broker host: bytes neither delivered nor refused), on a real
RabbitMQ behind a loopback relay that holds them (``stallproxy.StallProxy``).

py-amqp waits for confirms, for ``confirm.select``'s reply and for the close handshake without a timeout of its own,
and writes on a blocking socket: each such wait is bounded (``patches.redbeat.stall``). The beat's tick returns, the
chunk is not committed, and the next tick publishes it again under the same ids once the link flows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.schedules import crontab
from kombu import Connection

from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import make_app, store
from tests.integration.stallproxy import StallProxy

pytestmark = pytest.mark.redis

EVERY_MINUTE = {"task": "t.minutely", "schedule": crontab(minute="*")}


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


@pytest.fixture
def proxy() -> Iterator[StallProxy]:
    relay = StallProxy(RABBITMQ_PORT)
    yield relay
    relay.close()


def runs(entries: dict[str, Any]) -> list[int]:
    return [decode_meta(store().hget(f"redbeat:{name}", "meta"))[1] for name in entries]


def sent_ids(vhost: str, queue: str) -> list[str]:
    ids = []
    with Connection(f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}") as connection:
        while (message := connection.default_channel.basic_get(queue, no_ack=True)) is not None:
            ids.append(message.headers["id"])
    return ids


def stalled_tick(beat: RedBeatScheduler, caplog: pytest.LogCaptureFixture, error: str) -> None:
    """A tick on the stalled link returns well within the lease, logging ``error``."""
    with caplog.at_level(logging.WARNING, logger="celery.beat"):
        started = time.monotonic()
        beat.tick()
    assert time.monotonic() - started < beat.conf.lock_timeout  # the beat did not hang in its tick
    assert error in caplog.text


def published_again(beat: RedBeatScheduler, entries: dict[str, Any], vhost: str, due_again: float) -> None:
    """Once the link flows, the next ticks publish the held slot under its ids; a copy that did get through before
    the stall is the same slot (the workers' claim drops the second delivery)."""
    # The stalled tick may have outlasted most of the lease: the beat re-checks the lock first.
    wait_for(lambda: beat.tick() is not None and runs(entries) == [2] * len(entries), 15, "the slot published again")
    sent = sent_ids(vhost, beat.app.conf.task_default_queue)
    again = {f"{name}@{int(due_again)}" for name in entries}
    assert again <= set(sent) and len(set(sent)) == 2 * len(entries)  # both slots of every entry: none lost


def test_unconfirmed_chunk_times_out_and_is_published_again(
    rabbitmq_vhost: str, proxy: StallProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's confirms stop arriving: the wait gives up after a third of the lease, nothing is committed."""
    entries = {f"e{i}": EVERY_MINUTE for i in range(3)}
    app = make_app(entries, broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{rabbitmq_vhost}")
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()  # every entry once, confirmed: the channel is in confirm mode
        assert runs(entries) == [1, 1, 1]
        due_again = time.time() - 3  # a slot before the first tick's: ids apart from its ids
        store().zadd("redbeat::schedule", {f"redbeat:{name}": due_again for name in entries})
        proxy.hold()
        stalled_tick(beat, caplog, "PublishNotConfirmedError: 3 message(s) unconfirmed after 1s")
        assert runs(entries) == [1, 1, 1]  # not committed
        proxy.resume()
        published_again(beat, entries, rabbitmq_vhost, due_again)
    finally:
        beat.close()


def test_blocked_write_is_cut_short_and_published_again(
    rabbitmq_vhost: str, proxy: StallProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The link takes no more bytes: the publish blocks in ``sendall`` once the socket buffers are full, until the
    bound shuts the socket down."""
    payload = "x" * 256 * 1024  # 64 messages, 16 MiB: more than the send buffer and the relay hold
    entries = {f"e{i:02d}": {**EVERY_MINUTE, "args": (payload,)} for i in range(64)}
    app = make_app(entries, broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{rabbitmq_vhost}")
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        assert runs(entries) == [1] * len(entries)
        due_again = time.time() - 3  # a slot before the first tick's: ids apart from its ids
        store().zadd("redbeat::schedule", {f"redbeat:{name}": due_again for name in entries})
        proxy.hold(requests=True)
        stalled_tick(beat, caplog, "BrokerStalledError: publishing: no progress with the broker in 1s")
        assert runs(entries) == [1] * len(entries)
        proxy.resume()
        published_again(beat, entries, rabbitmq_vhost, due_again)
    finally:
        beat.close()


def test_clean_stop_on_a_stalled_link_returns(rabbitmq_vhost: str, proxy: StallProxy) -> None:
    """Stopping says goodbye to the broker (AMQP's close), but does not wait forever for its reply."""
    entries = {"e0": EVERY_MINUTE}
    app = make_app(entries, broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{rabbitmq_vhost}")
    beat = RedBeatScheduler(app=app)
    beat.tick()
    assert runs(entries) == [1]
    proxy.hold(requests=True)
    started = time.monotonic()
    beat.close()
    assert time.monotonic() - started < beat.conf.lock_timeout
    assert store().get("redbeat::lock") is None  # the lock is still given up
