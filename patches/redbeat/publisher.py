"""Publishing due entries in batches: one producer, one channel, Celery's message format, confirms per batch.

Building a Celery message (``as_task_v2``, routing, serialization) costs more than sending it, and a periodic entry
sends the same task with the same arguments every time. So each entry's message is built once into a ``Template``
(cached by its definition) and each dispatch only stamps the task id and the expiry. On RabbitMQ the channel is put
in publisher-confirm mode and the broker's acks are awaited once per chunk, not once per message; a chunk that is
not confirmed (nack, timeout, lost connection) raises, so its entries are not marked as run and publish again next
tick (the task id makes the repeat harmless).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from celery import Celery, signals
from celery.utils.saferepr import saferepr
from kombu import Producer
from kombu.serialization import dumps

from patches.redbeat.stall import bounded

CONFIRM_TIMEOUT = 30.0


class PublishNotConfirmedError(Exception):
    """The broker did not confirm every message of a chunk."""


class LeaseExpiredError(Exception):
    """The beat's lease ran out in the middle of a chunk: the rest of it was not sent."""

    def __init__(self, sent: int) -> None:
        super().__init__(f"the lease ran out after {sent} message(s) of the chunk")
        self.sent = sent


@dataclass(slots=True)
class Template:
    """A ready-to-send message of one entry; ``stamp`` fills in what changes per dispatch."""

    task: str
    serializer: str
    payload: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    declare: list[Any]
    delivery_mode: int | None
    expires: float | None  # seconds after publish, from the task's or the entry's options
    # Whether the task checks its expiry itself on the Redis clock (see DEADLINE_HEADER) instead of Celery's header.
    deadline_header: bool = False
    # What differs between entries of one task; `headers` and the rest are shared with the task's base template.
    argsrepr: str = "()"
    kwargsrepr: str = "{}"

    def stamp(self, task_id: str, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
        headers = dict(self.headers, id=task_id, root_id=task_id, argsrepr=self.argsrepr, kwargsrepr=self.kwargsrepr)
        if self.expires is not None:
            if self.deadline_header:
                headers[DEADLINE_HEADER] = round(now + self.expires, 3)
            else:
                headers["expires"] = _expiry(now + self.expires)
        return headers, dict(self.properties, correlation_id=task_id)


# Celery's `expires` header is an absolute time that each worker compares with its own clock: `now` here is the Redis
# server's, so a worker host ahead of Redis by more than the expires (300 s for a minutely cron) revoked every run.
# A task that sets `expires_on_redis_clock` gets this header instead — the same deadline, epoch seconds on the Redis
# clock — and its worker's claim of the slot compares it with Redis's TIME (alarm_backends...scheduler.dedupe).
# The AMQP `expiration` TTL stays: RabbitMQ counts it on its own clock, from the publish.
DEADLINE_HEADER = "bkm_deadline"


@functools.lru_cache(maxsize=64)
def _expiry(at: float) -> str:
    # A tick publishes at one `now`, so a whole batch shares a handful of expiry times.
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).isoformat()


class Templates:
    """Templates of one app. Entries of the same task and options share everything but their arguments, so the
    routing and Celery's header set are worked out once per (task, options) and only the body is made per entry."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._bases: dict[tuple[str, str], Template] = {}

    def base(self, task: str, options: Mapping[str, Any]) -> Template:
        """What every entry of ``task`` and ``options`` shares: the routing, the expires, Celery's headers (the body
        is the empty call's). Enough to say where and for how long an entry's runs go."""
        signature = (task, repr(sorted((options or {}).items())))
        base = self._bases.get(signature)
        if base is None:
            base = self._bases[signature] = build_template(self.app, task, (), {}, options)
        return base

    def get(self, task: str, args: Any, kwargs: Any, options: Mapping[str, Any]) -> Template:
        base = self.base(task, options)
        content_type, content_encoding, payload = dumps((list(args), dict(kwargs), _EMBED), serializer=base.serializer)
        return replace(
            base,
            payload=payload if isinstance(payload, bytes) else str(payload).encode(),
            content_type=content_type,
            content_encoding=content_encoding,
            # As Task.apply_async writes them, cut at the app's maximum: saferepr of the args as Celery's beat passes
            # them (celery.beat._evaluate_entry_args: empty ones as they are, others as a list).
            argsrepr=saferepr(list(args) if args else args, self.app.amqp.argsrepr_maxsize),
            kwargsrepr=saferepr(dict(kwargs) if kwargs else kwargs, self.app.amqp.kwargsrepr_maxsize),
        )


# The third element of a protocol-2 body: no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@functools.cache
def _consumed_options(app: Celery) -> frozenset[str]:
    """The options ``send_task`` and ``send_task_message`` take as parameters; whatever else an entry's options
    hold (``priority``, ``expiration``, …) becomes a message property, as Celery passes it on to kombu."""
    names = set(inspect.signature(app.send_task).parameters) | set(
        inspect.signature(app.amqp.send_task_message).parameters
    )
    return frozenset(names - {"options", "kwargs"})


def build_template(app: Celery, task: str, args: Any, kwargs: Any, options: Mapping[str, Any]) -> Template:
    """What ``task.apply_async(args, kwargs, **options)`` would send, with the task's own queue and expires."""
    registered = app.tasks.get(task)
    merged = {**(registered._get_exec_options() if registered is not None else {}), **(options or {})}
    expires = merged.pop("expires", None)
    if isinstance(expires, dt.datetime):
        raise ValueError(f"entry for {task}: expires must be seconds, not a fixed datetime")
    routed = app.amqp.router.route(merged, task, args, kwargs)
    # Task.apply_async sends the task's own ignore_result unless the options say otherwise (a registered cron task's
    # is True); sent as False, every worker stored a result per run in the result backend, a Redis write each.
    ignore_result = merged.get("ignore_result", registered.ignore_result if registered is not None else False)
    # reply_to: the publishing thread's oid, as Task.apply_async sends it (beat publishes from one thread).
    headers, properties, body, _ = app.amqp.as_task_v2(
        "", task, args, kwargs, ignore_result=bool(ignore_result), reply_to=app.thread_oid,
        time_limit=merged.get("time_limit"), soft_time_limit=merged.get("soft_time_limit"),
    )  # fmt: skip
    consumed = _consumed_options(app)
    properties.update({k: v for k, v in routed.items() if k not in consumed})
    # The entry's own headers, then Celery beat's mark of what it sends (celery.beat.Scheduler.apply_async), merged
    # into the message headers as Celery's send_task_message merges them.
    headers.update(merged.pop("headers", None) or {})
    headers["celery_beat_task"] = True
    serializer = routed.pop("serializer", None) or app.conf.task_serializer
    content_type, content_encoding, payload = dumps(body, serializer=serializer)
    queue = routed.get("queue")
    exchange = routed.get("exchange")
    routing_key = routed.get("routing_key")
    exchange_name = getattr(exchange, "name", exchange)
    exchange_type = getattr(getattr(queue, "exchange", None), "type", "direct")
    # The same resolution as Celery's send_task_message: a direct exchange goes by the queue name.
    if (not exchange_name or not routing_key) and exchange_type == "direct":
        exchange_name, routing_key = "", queue.name
    delivery_mode = getattr(getattr(queue, "exchange", None), "delivery_mode", None)
    return Template(
        task=task,
        serializer=serializer,
        payload=payload if isinstance(payload, bytes) else str(payload).encode(),
        content_type=content_type,
        content_encoding=content_encoding,
        headers=headers,
        # Passed on as Celery passes them, None included (a None priority is no priority, not kombu's 0); and Celery
        # also gives the message the broker's own TTL (the AMQP `expiration` property) of its expires.
        properties=properties | ({"expiration": float(expires)} if expires is not None else {}),
        exchange=exchange_name or "",
        routing_key=routing_key or "",
        declare=[queue] if queue is not None else [],
        delivery_mode=delivery_mode or app.conf.task_default_delivery_mode,
        expires=float(expires) if expires is not None else None,
        deadline_header=bool(getattr(registered, "expires_on_redis_clock", False)),
    )


@dataclass
class _Confirms:
    """Publisher confirms of one AMQP channel: which delivery tags the broker acked or nacked."""

    channel: Any
    published: int = 0
    acked_upto: int = 0
    acked: set[int] = field(default_factory=set)
    nacked: int = 0

    def __post_init__(self) -> None:
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.acked_upto = max(self.acked_upto, delivery_tag)
        else:
            self.acked.add(delivery_tag)
        while self.acked_upto + 1 in self.acked:
            self.acked_upto += 1
            self.acked.discard(self.acked_upto)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked += 1


class BatchPublisher:
    """Sends templates through one producer (``send``); ``confirm`` waits until the broker has them."""

    def __init__(self, app: Celery, producer: Producer, confirm_timeout: float = CONFIRM_TIMEOUT) -> None:
        self.app = app
        self.confirm_timeout = confirm_timeout
        self.producer = producer
        self._confirms: _Confirms | None = None
        self._declared: tuple[Any, set[str]] = (None, set())

    @property
    def confirms(self) -> bool:
        return bool(self.producer.connection.transport.driver_type == "amqp")

    def _channel_confirms(self) -> _Confirms | None:
        if not self.confirms:
            return None
        channel = self.producer.channel
        if self._confirms is None or self._confirms.channel is not channel:
            # A new channel (first use, or after a reconnect) starts its delivery tags at 1 again.
            self._confirms = _Confirms(channel)
        return self._confirms

    def _declare(self, template: Template) -> None:
        """Declare a template's queue once per channel (kombu would re-bind and look it up for every message)."""
        channel = self.producer.channel
        if self._declared[0] is not channel:
            self._declared = (channel, set())
        for queue in template.declare:
            if queue.name not in self._declared[1]:
                queue(channel).declare()
                self._declared[1].add(queue.name)

    def send(
        self, messages: Iterable[tuple[Template, str]], now: float, still_valid: Callable[[], bool] | None = None
    ) -> int:
        """Publish ``(template, task_id)`` pairs without waiting; returns a mark for :meth:`confirm`.

        Sending the next chunk while the broker confirms this one keeps both the beat and the broker busy (on two
        cores they would otherwise take turns). ``still_valid`` is asked before every message: a beat frozen in the
        middle of a chunk (SIGSTOP, a stalled VM) must not send the rest of it once it runs again, since another
        beat may lead by then; :class:`LeaseExpiredError` says how many went out."""
        # A stalled link blocks confirm.select's reply or a full socket's write with no timeout of its own.
        with bounded(self.producer.connection, self.confirm_timeout, "publishing"):
            return self._send(messages, now, still_valid)

    def _send(
        self, messages: Iterable[tuple[Template, str]], now: float, still_valid: Callable[[], bool] | None
    ) -> int:
        confirms = self._channel_confirms()
        before = signals.before_task_publish.receivers
        after = signals.after_task_publish.receivers
        for sent, (template, task_id) in enumerate(messages):
            if still_valid is not None and not still_valid():
                raise LeaseExpiredError(sent)
            headers, properties = template.stamp(task_id, now)
            self._declare(template)
            if before:
                signals.before_task_publish.send(
                    sender=template.task, body=template.payload, exchange=template.exchange,
                    routing_key=template.routing_key, declare=template.declare, headers=headers,
                    properties=properties, retry_policy=None,
                )  # fmt: skip
            self.producer.publish(
                template.payload,
                exchange=template.exchange,
                routing_key=template.routing_key,
                content_type=template.content_type,
                content_encoding=template.content_encoding,
                headers=headers,
                delivery_mode=template.delivery_mode,
                retry=False,
                **properties,
            )
            if after:
                # With the headers, as Celery's own publish does: receivers read the task id from them.
                signals.after_task_publish.send(
                    sender=template.task, body=template.payload, exchange=template.exchange,
                    routing_key=template.routing_key, headers=headers,
                )  # fmt: skip
            if confirms is not None:
                confirms.published += 1
        return confirms.published if confirms is not None else 0

    def confirm(self, mark: int) -> None:
        """Wait until every message sent up to ``mark`` is confirmed; raise PublishNotConfirmedError otherwise.
        Without publisher confirms (the Redis transport) a publish has already returned the server's reply."""
        confirms = self._confirms if self.confirms else None
        if confirms is None:
            return
        deadline = time.monotonic() + self.confirm_timeout
        connection = self.producer.connection
        while confirms.acked_upto < mark:
            if confirms.nacked:
                raise PublishNotConfirmedError(f"the broker refused {confirms.nacked} message(s)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmedError(
                    f"{mark - confirms.acked_upto} message(s) unconfirmed after {self.confirm_timeout:.0f}s"
                )
            try:
                connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        if confirms.nacked:
            raise PublishNotConfirmedError(f"the broker refused {confirms.nacked} message(s)")


def open_producer(app: Celery, timeout: float) -> Producer:
    """A producer on a new broker connection of ``app``.

    On the Redis transport every socket wait is bounded by ``timeout``: kombu sets none, so a beat whose broker
    vanished mid-publish (a cut link, a frozen server) waited for the kernel to give the connection up — about
    15 minutes — and then sent its stale message. On RabbitMQ the calls that wait for the broker are bounded by
    :func:`patches.redbeat.stall.bounded` (opening the channel, here; publishing, in ``BatchPublisher``).
    """
    connection = app.connection_for_write()
    if connection.transport.driver_type == "redis":
        # Read by the transport's channel when it is created, below.
        connection.transport_options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    connection.ensure_connection(max_retries=3)  # the AMQP handshake is bounded by the connect timeout
    with bounded(connection, timeout, "opening a channel"):
        return Producer(connection.default_channel, auto_declare=False)
