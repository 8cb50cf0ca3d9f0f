"""Consume rate on a Redis broker: kombu's own transport and the platform's (patches/kombu_redis) side by side.

Each round publishes ``--messages`` Celery-sized messages to a fresh queue, then one consumer (``--prefetch``
messages in flight, each acknowledged as it arrives, as a worker with ``acks_late`` does) takes them all; the
variants alternate round by round on the same redis-server (the benchmark's own unless ``--redis`` names one), so a
slower moment of the machine falls on both. Prints the median rate per variant, Redis commands and round trips per
message (INFO commandstats deltas: a script's inner commands count as commands, its call as one round trip), and the
ratio reliable / kombu (> 1: the platform's is faster), and one JSON line of every figure.

Usage: ``python bench/kombu_consume.py [--messages 20000] [--rounds 3] [--prefetch 8]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kombu import Connection, Consumer, Exchange, Queue
from kombu.transport import redis as stock

from bench import common
from bench import run as run_report
from patches.kombu_redis import reliable

VARIANTS = {"kombu": stock.Transport, "reliable": reliable.Transport}
# A Celery task message's size: a body of a few hundred bytes and Celery's protocol-2 headers.
HEADERS = {"lang": "py", "task": "alarm_backends.service.scheduler.tasks.noop", "argsrepr": "()", "kwargsrepr": "{}",
           "origin": "gen1@bench", "retries": 0, "timelimit": [None, None], "expires": None, "eta": None}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant (alternating)")
    parser.add_argument("--prefetch", type=int, default=8, help="unacknowledged messages a consumer may hold")
    parser.add_argument("--redis", default=common.PRIVATE, help="'private' (default) or a loopback redis:// URL")
    return parser


def one_round(url: str, transport: type, messages: int, prefetch: int) -> dict[str, Any]:
    name = f"bench-consume-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    client = common.redis_client(url)
    with Connection(url, transport=transport) as conn:
        producer = conn.Producer()
        for n in range(messages):
            producer.publish([[], {}, {"n": n}], exchange=queue.exchange, routing_key=name, declare=[queue],
                             headers={**HEADERS, "id": f"noop@{n}"})  # fmt: skip
        got = 0

        def on_message(body: Any, message: Any) -> None:
            nonlocal got
            got += 1
            message.ack()

        before = common.redis_snapshot(client)
        started = time.perf_counter()
        with Consumer(conn, [queue], callbacks=[on_message], prefetch_count=prefetch):
            while got < messages:
                conn.drain_events(timeout=10)
        seconds = time.perf_counter() - started
        delta = common.redis_delta(before, common.redis_snapshot(client))
    client.delete(name)
    return {
        "rate_per_s": messages / seconds,
        "commands_per_message": delta["commands"] / messages,
        "round_trips_per_message": delta["round_trips"] / messages,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant, transport in VARIANTS.items():
            rounds[variant].append(one_round(args.redis, transport, args.messages, args.prefetch))
    results = {
        variant: {key: round(statistics.median(r[key] for r in found), 2) for key in found[0]}
        for variant, found in rounds.items()
    }
    return {"script": "kombu_consume", "messages": args.messages, "prefetch": args.prefetch, "results": results,
            "rounds": rounds}  # fmt: skip


ROWS: list[tuple[str, str, str | None]] = [
    ("rate_per_s", "consumed and acknowledged (msg/s, median)", run_report.HIGHER),
    ("commands_per_message", "Redis commands per message, counting those inside scripts", run_report.LOWER),
    ("round_trips_per_message", "Redis round trips per message", run_report.LOWER),
]


def report(summary: dict[str, Any]) -> str:
    title = f"Consume rate: {summary['messages']:,} messages, prefetch {summary['prefetch']}"
    return run_report.table(title, ROWS, summary["results"])


def main() -> None:
    common.script_main(build_parser, run, report)


if __name__ == "__main__":
    main()
