"""Consumers' liveness on the broker, and what comes back from one that stopped.

Each consuming channel is a *consumer* with an id. Its Redis records, beside kombu's own ``unacked`` hash and
``unacked_index``: a heartbeat in the index ``_kombu.consumers`` (a zset: id → last beat, on the Redis server's
clock) and in its record ``_kombu.consumer.<id>`` (a hash: ``beat``, and the queue key its blocking ``BLMOVE`` waits
on), the delivery tags it took (``….taken``) and the list that ``BLMOVE`` moves a message into (``….processing``).

A consumer whose last beat is older than ``consumer_timeout`` is dead: another restores what it held, in one script
(restore.lua) that also deletes its records — a taken message goes back to the head of its queue marked redelivered
(as kombu's own restore marks it: it may have started running), one still in the processing list goes back unmarked
(it never reached the consumer). The script does nothing for a consumer that beat again since it was read, and puts
back a message only if its ``unacked`` record is still the one read (kombu's visibility restore, or an
acknowledgement, may have come first).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

logger = logging.getLogger("kombu.transport.redis")

CONSUMERS_KEY = "_kombu.consumers"
CONSUMER_KEY = "_kombu.consumer.{}"
TAKE_LUA = (Path(__file__).parent / "take.lua").read_text(encoding="utf-8")
BEAT_LUA = (Path(__file__).parent / "beat.lua").read_text(encoding="utf-8")
RESTORE_LUA = (Path(__file__).parent / "restore.lua").read_text(encoding="utf-8")
REAP_LIMIT = 100  # dead consumers looked at per tick: a tick stays short whatever the backlog


@dataclass(frozen=True)
class ConsumerKeys:
    """A consumer's Redis keys."""

    id: str
    record: str
    taken: str
    processing: str

    @classmethod
    def of(cls, consumer_id: str) -> ConsumerKeys:
        record = CONSUMER_KEY.format(consumer_id)
        return cls(consumer_id, record, f"{record}.taken", f"{record}.processing")


def pushes(channel: Any, record: bytes, redelivered: bool) -> list[tuple[str, str]]:
    """Where the message of a kombu ``unacked`` record (``[message, exchange, routing_key]``) goes back, as kombu's
    restore puts it: the head of every queue it was routed to, marked ``redelivered`` as kombu's restore always marks
    it (only for a message that reached its consumer: one that never did goes back as it was sent)."""
    message, exchange, routing_key = loads(bytes_to_str(record))
    if redelivered:
        message.get("headers", {})["redelivered"] = True
        message.get("properties", {}).get("delivery_info", {})["redelivered"] = True
    priority = channel._get_message_priority(message, reverse=False)
    queues = channel._lookup(exchange, routing_key)
    if not queues:
        task_id = message.get("headers", {}).get("id") or message.get("properties", {}).get("delivery_tag")
        logger.critical("message %s could not be put back: no queue is bound to %r / %r", task_id, exchange,
                        routing_key)  # fmt: skip
    payload = dumps(message)
    return [(channel._q_for_pri(queue, priority), payload) for queue in queues]


def restore(channel: Any, client: Any, keys: ConsumerKeys, tags: list[bytes], redelivered: bool, beat: Any) -> int:
    """Put back the messages of ``tags`` taken by the consumer ``keys`` (restore.lua); with ``beat`` (its last beat
    as read, "" for none) also reap it. Returns how many went back, -1 if it beat meanwhile."""
    groups: list[Any] = []
    records = client.hmget(channel.unacked_key, tags) if tags else []
    for tag, record in zip(tags, records, strict=True):
        targets = pushes(channel, record, redelivered) if record else [("", "")]
        for key, payload in targets:
            groups += [tag, record or "", key, payload]
    source = client.hget(keys.record, "source") or ""
    script = channel.restore_script
    args = ["*" if beat is None else beat, keys.id, source, *groups]
    keys_ = [channel.unacked_key, channel.unacked_index_key, keys.taken, keys.processing, keys.record, CONSUMERS_KEY]
    return int(script(keys=keys_, args=args, client=client))


def restore_tags(channel: Any, client: Any, keys: ConsumerKeys, tags: list[bytes]) -> int:
    """Put back what the live consumer ``keys`` took and never received, as it was sent."""
    return restore(channel, client, keys, tags, redelivered=False, beat=None)


def reap(channel: Any, client: Any, keys: ConsumerKeys, timeout: float) -> int:
    """Restore what the consumer ``keys`` held and delete its records, if its last beat is older than ``timeout``
    on the server's clock; returns how many messages went back (0 as well when it turned out to be alive)."""
    beat = client.hget(keys.record, "beat")
    if beat is not None and client.time()[0] - int(beat) < timeout:
        return 0
    return max(restore(channel, client, keys, sorted(client.smembers(keys.taken)), True, beat or ""), 0)


def dead_consumers(client: Any, timeout: float) -> list[str]:
    """The ids of consumers whose last beat is older than ``timeout`` on the server's clock."""
    now = client.time()[0]
    stale = client.zrange(CONSUMERS_KEY, "-inf", f"({now - timeout}", byscore=True, offset=0, num=REAP_LIMIT)
    return [bytes_to_str(consumer_id) for consumer_id in stale]
