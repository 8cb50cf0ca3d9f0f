"""The broker depth of every crontab queue, written to the cache DB once a minute.

A growing depth means the queue's workers are missing or too slow; since cron messages expire, a stuck queue
otherwise shows only as jobs that silently stop running.

Depth is read with a passive ``queue_declare``, which works on RabbitMQ and on kombu's Redis transport alike.
A queue that was never declared (no message yet, or no consumer ever started) counts as 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from kombu import Connection

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.prometheus.metrics import CRON_QUEUE_DEPTH
from alarm_backends.core.storage.redis import CACHE, key
from alarm_backends.jobs.records import replace_hash
from alarm_backends.service.scheduler.app import app
from alarm_backends.service.scheduler.tasks.cron import QUEUE_SETTINGS

# The queues of the fixed-name crontabs (API and report), beside the ones the cron loader owns.
FIXED_QUEUES = ("celery_api_cron", "celery_report_cron")


@dataclass(frozen=True)
class QueueDepths:
    """Messages waiting per queue name, and when they were counted."""

    depths: dict[str, int]
    ts: float


def queue_names() -> list[str]:
    """Every crontab queue, as named on this cluster's broker."""
    cluster = get_cluster()
    return [cluster.queue_name(name) for name in (*QUEUE_SETTINGS, *FIXED_QUEUES)]


def _is_not_found(exc: Exception) -> bool:
    # py-amqp raises NotFound (code 404); kombu's virtual transports raise a ChannelError whose text says NOT_FOUND.
    return getattr(exc, "code", None) == 404 or "NOT_FOUND" in str(exc)


def depth(connection: Connection, name: str) -> int:
    """Messages ready in queue ``name``; 0 when the broker does not know the queue."""
    return occupancy(connection, name)[0]


def occupancy(connection: Connection, name: str) -> tuple[int, int]:
    """Messages ready in queue ``name`` and its consumers, as the broker counts them (kombu's Redis transport counts
    no consumers: 0); (0, 0) when the broker does not know the queue."""
    # A failed passive declare closes the AMQP channel, so each queue gets its own.
    channel = connection.channel()
    try:
        _, message_count, consumer_count = channel.queue_declare(queue=name, passive=True)
        return int(message_count), int(consumer_count)
    except connection.channel_errors as exc:
        if _is_not_found(exc):
            return 0, 0
        raise
    finally:
        channel.close()


def depths(connection: Connection, names: Iterable[str]) -> dict[str, int]:
    """The depth of each queue in ``names`` on the broker behind ``connection``."""
    return {name: depth(connection, name) for name in names}


def main() -> QueueDepths:
    """Count every crontab queue on the backend app's broker, replace ``key("queue", "depth")`` in the cache DB and
    set the ``bkmonitor_cron_queue_depth`` gauge.

    The hash has one field per queue name (message count) and ``_ts``; it is rewritten whole, so a queue that
    left the crontab lists does not keep a stale count.
    """
    with app.connection_for_write() as connection:
        counted = depths(connection, queue_names())
    now = time.time()
    for name, count in counted.items():
        CRON_QUEUE_DEPTH.labels(queue=name).set(count)
    mapping = {**{name: str(count) for name, count in counted.items()}, "_ts": str(now)}
    replace_hash(CACHE, key("queue", "depth"), mapping)
    return QueueDepths(depths=counted, ts=now)
