"""The publish limit a beat works against: one process publishing the beat's own message to RabbitMQ on loopback.

The message is the one a beat sends for an entry: built by Celery for task ``bench.noop`` with the entry's name as its
only argument, same headers, body and properties (persistent), to a durable queue through the default exchange.

* ``kombu_no_confirm``: kombu ``Producer.publish`` per message, no publisher confirms (a stock beat's default);
* ``kombu_confirm_each``: confirms on, each publish waits for the broker's ack;
* ``kombu_confirm_batch_<B>``: confirms on, ``B`` messages published, then their acks awaited together;
* ``celery_send_task``: ``app.send_task`` through one producer, no confirms: Celery's per-message work included.

Each figure: messages per second and microseconds per message. Prints one JSON line.

Usage: ``python bench/kombu_limit.py [--messages 5000] [--batches 100 1000]``
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celery import Celery
from kombu import Connection, Producer
from kombu.serialization import dumps

from bench import common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "-n", type=int, default=5000, help="messages per figure")
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 1000], help="confirm batch sizes")
    parser.add_argument("--broker", default=common.DEFAULT_BROKER, help="AMQP broker (loopback only)")
    return parser


@dataclass
class BeatMessage:
    """What a beat publishes for one entry, already serialized."""

    payload: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    content_type: str
    content_encoding: str

    @classmethod
    def build(cls, app: Celery) -> BeatMessage:
        headers, properties, body, _ = app.amqp.create_task_message(str(uuid.uuid4()), "bench.noop", ("e0042",), {})
        content_type, content_encoding, payload = dumps(body, serializer="json")
        raw = payload if isinstance(payload, bytes) else payload.encode()
        return cls(raw, headers, properties, content_type, content_encoding)

    def publish(self, producer: Producer) -> None:
        producer.publish(
            self.payload,
            content_type=self.content_type,
            content_encoding=self.content_encoding,
            headers=self.headers,
            delivery_mode=2,
            **self.properties,
        )


Body = Callable[[], None]


def publish_each(msg: BeatMessage, n: int) -> Callable[[Connection, str], Body]:
    def prepare(conn: Connection, queue: str) -> Body:
        producer = Producer(conn.default_channel, routing_key=queue, auto_declare=False)
        msg.publish(producer)  # opens the channel (and enables confirms): not part of the figure

        def body() -> None:
            for _ in range(n):
                msg.publish(producer)

        return body

    return prepare


def publish_batched(msg: BeatMessage, n: int, batch: int) -> Callable[[Connection, str], Body]:
    def prepare(conn: Connection, queue: str) -> Body:
        channel: Any = conn.default_channel  # py-amqp's channel: confirm_select and the ack events
        acked, sent = [0], [0]

        def on_ack(tag: int, multiple: bool) -> None:
            # RabbitMQ confirms in order on a channel: the highest acked delivery tag says how many are confirmed.
            acked[0] = max(acked[0], tag)

        def on_nack(tag: int, multiple: bool) -> None:
            raise RuntimeError(f"the broker refused message {tag}")

        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(on_nack)
        channel.confirm_select()
        producer = Producer(channel, routing_key=queue, auto_declare=False)

        def send(count: int) -> None:
            for _ in range(count):
                msg.publish(producer)
            sent[0] += count  # delivery tags count the channel's publishes from 1
            while acked[0] < sent[0]:
                conn.drain_events(timeout=30)

        send(1)

        def body() -> None:
            for start in range(0, n, batch):
                send(min(batch, n - start))

        return body

    return prepare


def send_task(app: Celery, n: int) -> Callable[[Connection, str], Body]:
    def prepare(conn: Connection, queue: str) -> Body:
        producer = app.amqp.Producer(conn, auto_declare=False)
        app.send_task("bench.noop", ("e0042",), producer=producer, queue=queue)

        def body() -> None:
            for _ in range(n):
                app.send_task("bench.noop", ("e0042",), producer=producer, queue=queue)

        return body

    return prepare


def measure(broker: str, confirm: bool, n: int, prepare: Callable[[Connection, str], Body]) -> dict[str, Any]:
    """Time ``n`` messages to a fresh durable queue (deleted after); the broker must hold them all at the end."""
    conn = Connection(broker, transport_options={"confirm_publish": confirm})
    conn.connect()
    queue = common.new_queue(conn, "limit")
    try:
        body = prepare(conn, queue)
        conn.default_channel.queue_purge(queue)
        start = time.perf_counter()
        body()
        seconds = time.perf_counter() - start
        deadline = time.time() + 30
        while (queued := common.queue_depth(conn.default_channel, queue)) < n and time.time() < deadline:
            time.sleep(0.05)
    finally:
        conn.default_channel.queue_delete(queue)
        conn.default_channel.exchange_delete(queue)
        conn.release()
    return {"rate_per_s": round(n / seconds, 1), "us_per_msg": round(seconds / n * 1e6, 1), "queued": queued}


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.check_loopback(args.broker)
    n = args.messages
    app = Celery("kombu_limit", broker=args.broker)
    app.conf.update(result_expires=None)
    msg = BeatMessage.build(app)
    out: dict[str, Any] = {"script": "kombu_limit", "messages": n, "message_body_bytes": len(msg.payload)}
    out["kombu_no_confirm"] = measure(args.broker, False, n, publish_each(msg, n))
    out["kombu_confirm_each"] = measure(args.broker, True, n, publish_each(msg, n))
    for batch in args.batches:
        out[f"kombu_confirm_batch_{batch}"] = measure(args.broker, False, n, publish_batched(msg, n, batch))
    out["celery_send_task"] = measure(args.broker, False, n, send_task(app, n))
    return out


def main() -> None:
    common.emit(run(build_parser().parse_args()))


if __name__ == "__main__":
    main()
