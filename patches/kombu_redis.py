"""kombu's Redis transport, but a message a worker was taking when the broker went away is put back, not lost.

kombu consumes a Redis queue with ``BRPOP`` and then, in a second command, records the message in its ``unacked``
hash — the record that lets an ``acks_late`` message be redelivered when its worker dies. When the connection breaks
between the two (the broker restarts or fails over, the network drops, just as a message was popped), the message
is in neither place, and the worker never runs it either: kombu's connections do not retry, the error ends the
delivery. The chaos scenario "restart broker" lost one run in about one restart in eight that way.

``DurableQoS.append`` catches that error and pushes the message back to the head of its queue as soon as the broker
answers again, then lets the error take its course: the consumer reconnects and takes it again. It waits for the
broker at most ``PUT_BACK_TIMEOUT`` seconds (the consumer is disconnected meanwhile anyway); a broker down longer
than that, or a message no queue is bound for any more, is logged CRITICAL with the task id. If the record had in
fact reached Redis and only its reply was lost, the message now exists twice, in the queue and in ``unacked``; the
workers' slot dedupe (by task id) runs it once. A duplicate that is dropped is the price of never losing a run.

``install()`` points the ``redis``, ``rediss`` and ``sentinel`` broker URLs at these classes; the backend app calls
it when it loads, so every worker and beat of the platform uses them.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import kombu
import kombu.transport
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as stock
from kombu.transport.virtual.base import Message
from kombu.utils.json import dumps

logger = logging.getLogger("kombu.transport.redis")

PUT_BACK_TIMEOUT = 30.0
PUT_BACK_INTERVAL = 0.5

# kombu's internals this module relies on, in one place: the upgrade gate. :func:`check_kombu` (run by ``install``)
# fails at start, naming the one that changed, instead of at the next broker break, when a message would be lost.
PRIVATE_METHODS = {
    "QoS.append": (stock.QoS, "append", ("message", "delivery_tag")),
    "Channel._get_message_priority": (stock.Channel, "_get_message_priority", ("message", "reverse")),
    "Channel._lookup": (stock.Channel, "_lookup", ("exchange", "routing_key")),
    "Channel._q_for_pri": (stock.Channel, "_q_for_pri", ("queue", "pri")),
    "Channel.conn_or_acquire": (stock.Channel, "conn_or_acquire", ("client",)),
}
PRIVATE_MESSAGE_ATTRIBUTE = "_raw"  # the payload as it came off the queue (kombu.transport.virtual.base.Message)
# kombu resolves a URL scheme to its class once per process and keeps it here (kombu.transport.get_transport_cls):
# a Connection made before install() would pin the stock class for every later one.
PRIVATE_TRANSPORT_CACHE = "_transport_cache"
ALIASES = {"redis": "Transport", "rediss": "Transport", "sentinel": "SentinelTransport"}


class KombuChangedError(RuntimeError):
    """kombu no longer has an internal this module uses: put-back must be reviewed before upgrading kombu."""


def check_kombu() -> None:
    problems = []
    for label, (owner, name, params) in PRIVATE_METHODS.items():
        method = getattr(owner, name, None)
        if method is None:
            problems.append(f"{label} is gone")
            continue
        missing = [param for param in params if param not in inspect.signature(method).parameters]
        if missing:
            problems.append(f"{label} no longer takes {', '.join(missing)}")
    probe = Message({"body": "", "properties": {"delivery_tag": "probe", "delivery_info": {}}}, channel=None)
    if not hasattr(probe, PRIVATE_MESSAGE_ATTRIBUTE):
        problems.append(f"Message.{PRIVATE_MESSAGE_ATTRIBUTE} is gone")
    if not isinstance(getattr(kombu.transport, PRIVATE_TRANSPORT_CACHE, None), dict):
        problems.append(f"kombu.transport.{PRIVATE_TRANSPORT_CACHE} is gone")
    if problems:
        raise KombuChangedError(
            f"kombu {kombu.__version__} changed what patches/kombu_redis.py uses: {'; '.join(problems)}"
        )


class DurableQoS(stock.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except self.channel.connection_errors as exc:
            self.put_back(message, exc)
            raise

    def put_back(self, message: Any, exc: BaseException) -> None:
        """Push ``message`` back where the next ``BRPOP`` of its queue takes it first, retrying until the broker
        answers or PUT_BACK_TIMEOUT passes. Its headers are left alone: it was never delivered, so it is not
        marked redelivered (which would let a second copy run beside the first, see the slot dedupe)."""
        channel = self.channel
        payload = getattr(message, PRIVATE_MESSAGE_ATTRIBUTE)
        delivery = message.delivery_info
        task_id = (payload.get("headers") or {}).get("id") or message.delivery_tag
        priority = channel._get_message_priority(payload, reverse=False)
        deadline = time.monotonic() + PUT_BACK_TIMEOUT
        while True:
            try:
                # Inside the retry: routing through a named exchange reads its bindings from the broker too.
                queues = channel._lookup(delivery["exchange"], delivery["routing_key"])
                keys = [channel._q_for_pri(queue, priority) for queue in queues]
                with channel.conn_or_acquire() as client, client.pipeline() as pipe:
                    for key in keys:
                        pipe.rpush(key, dumps(payload))
                    pipe.execute()
            except channel.connection_errors as retry_exc:
                if time.monotonic() >= deadline:
                    logger.critical("message %s taken from the broker as the connection broke (%s) could not be "
                                    "put back within %.0fs: %s", task_id, exc, PUT_BACK_TIMEOUT, retry_exc)  # fmt: skip
                    return
                time.sleep(PUT_BACK_INTERVAL)
                continue
            if not keys:
                logger.critical("message %s taken from the broker as the connection broke (%s) could not be put "
                                "back: no queue is bound to %r / %r", task_id, exc, delivery["exchange"],
                                delivery["routing_key"])  # fmt: skip
                return
            logger.warning("message %s was taken as the broker connection broke (%s): put back at the head of %s",
                           task_id, exc, ", ".join(keys))  # fmt: skip
            return


class Channel(stock.Channel):
    QoS = DurableQoS


class Transport(stock.Transport):
    Channel = Channel


class SentinelChannel(stock.SentinelChannel):
    QoS = DurableQoS


class SentinelTransport(stock.SentinelTransport):
    Channel = SentinelChannel


def install() -> None:
    """Make the Redis broker URLs use these classes (idempotent), once kombu is checked (:func:`check_kombu`), also
    when a connection of the process resolved them before."""
    check_kombu()
    cache = getattr(kombu.transport, PRIVATE_TRANSPORT_CACHE)
    for alias, name in ALIASES.items():
        TRANSPORT_ALIASES[alias] = f"{__name__}:{name}"
        cache.pop(alias, None)
