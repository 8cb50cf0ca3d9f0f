"""kombu's Redis transport without its loss windows: a message is never in neither the queue nor a consumer's record.

kombu takes a message with ``BRPOP`` and records it as unacknowledged in a second command: a consumer that dies (or
whose connection breaks) between the two loses it. And what a consumer killed with -9 held (prefetched, or received
and not yet acknowledged) comes back only after the visibility timeout (hours), long after the run expired.

Here a consumer (one channel; see ``consumers``):

1. takes with ``take.lua``, which pops the next message of its queues and records it — in kombu's ``unacked`` hash
   and ``unacked_index``, as kombu's transport does, and in the consumer's own set of taken tags — in one step;
2. when there is none, blocks with ``BLMOVE`` from its first queue key into its own processing list (an atomic move:
   the message is in the queue or in that list), then takes it from there with ``take.lua``;
3. beats every ``consumer_heartbeat`` seconds on the Redis clock; one that stops beating for ``consumer_timeout``
   seconds is dead, and a live consumer puts back what it held (``consumers.reap``) — a consumer reaps only once it
   has itself beaten for ``consumer_timeout`` without a failure, so the end of a Redis outage (when every beat is
   stale) is not taken for the death of every consumer;
4. after a connection error, and every beat, puts back what it took but never received (``take.lua`` ran, its reply
   was lost) — unmarked, as it never ran.

A message whose consumer died comes back marked redelivered, as kombu's restore marks it, so the workers' slot dedupe
lets a run that was cut short run again (and drops it if it finished). Queue keys, message format and the ``unacked``
records are kombu's, so kombu's own consumers (the original's workers, in a rolling upgrade) share the queues, and
kombu's visibility-timeout restore still applies to every record. Only a message on a priority sub-queue or on a
second queue of the same consumer can wait up to ``brpop_timeout`` (1 s) longer, while its first queue is empty:
``BLMOVE`` blocks on one key.
"""

from __future__ import annotations

import logging
import uuid
from time import monotonic, time
from typing import Any

import redis
from kombu.transport import redis as stock
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from patches.kombu_redis import consumers
from patches.kombu_redis.consumers import CONSUMERS_KEY, ConsumerKeys

logger = logging.getLogger("kombu.transport.redis")

CONSUMER_OPTIONS = ("consumer_heartbeat", "consumer_timeout")  # broker_transport_options these channels read
TAKE, MOVE = "EVALSHA", "BLMOVE"  # what a consumer's poll connection is waiting for (the reply's command)


class Empty(stock.Empty):
    """Nothing to deliver from this reply (kombu's own ``Empty``)."""


class QoS(stock.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        channel = self.channel
        if delivery_tag in channel.taken_now:
            # take.lua recorded it already: only the consumer's in-memory record is left to make.
            channel.taken_now.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        # Not from take.lua (a fanout message from pub/sub, a rejected inbound one): kombu's record, and this
        # consumer's, so a dead consumer's copy comes back too.
        channel.ensure_registered()
        super().append(message, delivery_tag)
        with channel.conn_or_acquire() as client:
            client.sadd(channel.consumer.taken, delivery_tag)

    def restore_unacked_once(self, stderr: Any = None) -> Any:
        try:
            return super().restore_unacked_once(stderr)
        finally:  # the channel closes (or the process exits)
            self.channel.deregister()

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        return super()._remove_from_indices(delivery_tag, pipe).srem(self.channel.consumer.taken, delivery_tag)


class Channel(stock.Channel):
    """kombu's Redis channel, consuming as described above."""

    QoS = QoS
    consumer_heartbeat = 2.0
    consumer_timeout = 10.0
    from_transport_options = (*stock.Channel.from_transport_options, *CONSUMER_OPTIONS)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        transport = args[0] if args else kwargs["connection"]
        if transport.client.transport_options.get("global_keyprefix"):
            raise ValueError("broker_transport_options: global_keyprefix is not supported by the reliable Redis "
                             "transport (patches.kombu_redis); BROKER_REDIS_TRANSPORT=kombu names kombu's")  # fmt: skip
        self.consumer = ConsumerKeys.of(uuid.uuid4().hex)
        self.taken_now: set[str] = set()
        self.no_ack_queues: set[str] = set()
        self.phase: str | None = None
        self.take_keys: list[str] = []
        self.move_timeout: float = 0
        self.registered = False
        self.alive_since: float | None = None
        self.reconcile_due = False
        super().__init__(*args, **kwargs)
        self.take_script = self.client.register_script(consumers.TAKE_LUA)
        self.beat_script = self.client.register_script(consumers.BEAT_LUA)
        self.restore_script = self.client.register_script(consumers.RESTORE_LUA)

    # -- consuming ---------------------------------------------------------------------------------------------------

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        (self.no_ack_queues.add if no_ack else self.no_ack_queues.discard)(queue)
        return super().basic_consume(queue, *args, **kwargs)

    def take_args(self, keys: list[str], loop: bool, ack: bool | None = None) -> tuple[list[str], list[Any]]:
        """take.lua's keys and arguments; ``ack`` for every key, or (None) as each key's queue is consumed."""
        if ack is None:
            flags = "".join("0" if key.rsplit(self.sep, 1)[0] in self.no_ack_queues else "1" for key in keys)
        else:
            flags = ("1" if ack else "0") * len(keys)
        consumer = self.consumer
        head = [self.unacked_key, self.unacked_index_key, consumer.taken, consumer.processing, consumer.record]
        return head + keys, [time(), flags, "1" if loop else "0"]

    def take_now(self, client: Any, keys: list[str], loop: bool = True, ack: bool | None = None) -> Any:
        take_keys, args = self.take_args(keys, loop, ack)
        return self.take_script(keys=take_keys, args=args, client=client)

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        self.ensure_registered()
        if self.reconcile_due:
            with self.conn_or_acquire() as client:
                self.put_back_orphans(client)
        self.take_keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        self.move_timeout = self.brpop_timeout if timeout is None else timeout
        self._in_poll = self.client.connection
        self.send_take()

    def send_take(self) -> None:
        keys, args = self.take_args(self.take_keys, loop=True)
        self.phase = TAKE
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command("EVALSHA", self.take_script.sha, len(keys), *keys, *args)

    def send_move(self) -> None:
        self.phase = MOVE
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command("BLMOVE", self.take_keys[0], self.consumer.processing, "RIGHT", "LEFT",
                                            self.move_timeout or 0)  # fmt: skip

    def _brpop_read(self, **options: Any) -> bool:
        waiting = False
        try:
            try:
                reply = self.client.parse_response(self.client.connection, self.phase, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                self.reconcile_due = True  # a take may have run with its reply lost
                raise
            except redis.exceptions.NoScriptError:
                self.client.script_load(consumers.TAKE_LUA)  # the server restarted: next poll takes again
                raise Empty() from None
            if self.phase == MOVE:
                if reply is None:
                    raise Empty()
                reply = self.take_now(self.client, self.take_keys)  # the message BLMOVE moved in, now recorded
            elif not reply:
                self.send_move()
                waiting = True
            if not reply:
                raise Empty()
            self.deliver_taken(*reply)
            return True
        finally:
            if not waiting:
                self._in_poll = None  # type: ignore[assignment]
                self.phase = None
                self._flush_brpop_reauth()

    def deliver_taken(self, key: bytes, payload: bytes, ack: bytes) -> None:
        queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
        message = loads(bytes_to_str(payload))
        if ack == b"1":
            self.taken_now.add(message["properties"]["delivery_tag"])
        self._queue_cycle.rotate(queue)
        self.connection._deliver(message, queue)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        if not no_ack:
            self.ensure_registered()
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps]
        with self.conn_or_acquire() as client:
            reply = self.take_now(client, keys, loop=False, ack=not no_ack)
        if not reply:
            return None
        message = self.Message(loads(bytes_to_str(reply[1])), channel=self)
        if not no_ack:
            virtual.QoS.append(self.qos, message, message.delivery_tag)
        return message

    # -- liveness ----------------------------------------------------------------------------------------------------

    def ensure_registered(self) -> None:
        if not self.registered:
            with self.conn_or_acquire() as client:
                self.beat(client)

    def beat(self, client: Any) -> None:
        self.beat_script(keys=[CONSUMERS_KEY, self.consumer.record], args=[self.consumer.id], client=client)
        self.registered = True
        if self.alive_since is None:
            self.alive_since = monotonic()

    def consumer_tick(self, reap: bool) -> bool:
        """Beat, put back what was taken and never received, and (``reap``) what dead consumers held. Returns
        whether this consumer took part (it has consumed)."""
        if not self.registered or self.closed:
            return False
        with self.conn_or_acquire() as client:
            try:
                self.beat(client)
            except self.connection_errors:
                self.alive_since = None
                raise
            if self.phase != TAKE:  # with a take's reply pending, what it took is not received yet
                self.put_back_orphans(client)
            if reap and self.alive_since is not None and monotonic() - self.alive_since >= self.consumer_timeout:
                self.reap_dead(client)
        return True

    def put_back_orphans(self, client: Any) -> None:
        delivered = self.qos._delivered
        orphans = [tag for tag in client.smembers(self.consumer.taken) if bytes_to_str(tag) not in delivered]
        self.taken_now.clear()
        self.reconcile_due = False
        if orphans:
            restored = consumers.restore_tags(self, client, self.consumer, orphans)
            logger.warning("%d message(s) taken as the broker connection broke put back in their queues", restored)

    def reap_dead(self, client: Any) -> None:
        for consumer_id in consumers.dead_consumers(client, self.consumer_timeout):
            if consumer_id == self.consumer.id:
                continue
            restored = consumers.reap(self, client, ConsumerKeys.of(consumer_id), self.consumer_timeout)
            logger.warning("consumer %s stopped beating %.0fs ago or more: %d message(s) it held put back in their "
                           "queues", consumer_id, self.consumer_timeout, restored)  # fmt: skip

    def deregister(self) -> None:
        """Put back what was taken and not received, or moved in, and delete the consumer's records (kombu's
        close put back what was received just before), so no one reaps it later."""
        if not self.registered:
            return
        self.registered = False
        try:
            with self.conn_or_acquire() as client:
                consumers.reap(self, client, self.consumer, timeout=0)
        except Exception as exc:  # closing must not fail: a connection closed under it has no pool left to use
            logger.info("consumer %s not deregistered (%s): the others put back what it held once it has been "
                        "silent for %.0fs", self.consumer.id, exc, self.consumer_timeout)  # fmt: skip


class SentinelChannel(Channel, stock.SentinelChannel):
    """kombu's Sentinel channel, consuming as :class:`Channel` does."""

    from_transport_options = (  # type: ignore[assignment]
        *stock.SentinelChannel.from_transport_options,
        *CONSUMER_OPTIONS,
    )


class ReliablePoller(stock.MultiChannelPoller):
    """kombu's poller, which also beats for its channels: on the event loop's timer, or from ``get`` without one."""

    heartbeat = Channel.consumer_heartbeat
    ticked_at = float("-inf")
    consumers_tref: Any = None

    def consumers_tick(self) -> None:
        self.ticked_at = monotonic()
        reap = True  # one channel per process reaps: the records are shared
        for channel in list(self._channels):
            try:
                if channel.consumer_tick(reap):
                    reap = False
            except channel.connection_errors:
                logger.debug("consumer heartbeat: connection error, will retry", exc_info=True)

    def get(self, callback: Any, timeout: float | None = None) -> Any:
        if monotonic() - self.ticked_at >= self.heartbeat:
            self.consumers_tick()
        return super().get(callback, timeout)


class Transport(stock.Transport):
    """kombu's Redis transport with :class:`Channel`, and a poller that beats for it."""

    Channel = Channel
    cycle: ReliablePoller  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = ReliablePoller()
        options = self.client.transport_options  # type: ignore[union-attr]
        self.cycle.heartbeat = float(options.get("consumer_heartbeat", Channel.consumer_heartbeat))

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        previous = self.cycle.consumers_tref
        if previous is not None:  # a reconnect: the old timer beats no more
            previous.cancel()
        self.cycle.consumers_tref = loop.call_repeatedly(self.cycle.heartbeat, self.cycle.consumers_tick)


class SentinelTransport(Transport, stock.SentinelTransport):
    Channel = SentinelChannel
