"""Where a run's cost on the worker goes: the CPU one pool process spends per run, in-process, part by part.

bench/worker_cost.py measures whole workers; this one runs the same no-op through Celery's tracer (what a pool
process calls for each message) in one process, so each part of the platform's wrapper can be taken out and its
share read as the difference:

* plain: the no-op as a bare Celery task;
* platform: the no-op as a crontab entry's task, sent as the beat sends it (slot id, deadline): the slot's claim
  and release (two Redis round trips), the run log, the metrics, the ``^``/``$`` lines, the per-task timer;
* platform without the claim and release; then also without the ``^``/``$`` lines; then also without the
  per-task timer (``celery_timer``'s signal receivers);
* the claim and release called alone, one after the other, and a bare ``PING`` round trip on a socket: what the
  two round trips cost when nothing else runs between them.

Variants alternate round by round; the figures are medians of CPU time (``time.process_time``) per run. Log lines go
to a file, as a worker's do.

Usage: ``python bench/wrapper_parts.py [--runs 5000] [--rounds 3] [--redis private|redis://127.0.0.1:6379/0]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.config
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench import run as run_report

JOB = "bench.noop.noop"
PLATFORM_TASK = "alarm_backends.service.scheduler.tasks.cron.bench_noop_noop"  # the loader's name for JOB
VARIANTS = ("plain", "platform", "- claim/release", "- ^/$ lines", "- task timer", "claim+release alone", "PING")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000, help="runs per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (variants alternate)")
    parser.add_argument("--redis", default=common.PRIVATE, help="'private' (default) or a loopback redis:// URL")
    return parser


def set_up(redis_url: str, workdir: Path) -> dict[str, Callable[[int], Any]]:
    """The platform's app configured on ``redis_url`` as a worker's is, and one call per variant (its argument: a
    number unique to the call)."""
    storage = urlparse(redis_url)
    (workdir / "metrics").mkdir()
    (workdir / "counts").mkdir()
    os.environ.update({
        "BKAPP_SETTINGS_DEFAULT_CRONTAB": json.dumps([[JOB, "* * * * *", "global"]]),
        "BK_MONITOR_REDIS_HOST": storage.hostname or "127.0.0.1",
        "BK_MONITOR_REDIS_PORT": str(storage.port or 6379),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        "BENCH_COUNT_DIR": str(workdir / "counts"),
    })  # fmt: skip
    from celery import Celery
    from celery.app.trace import build_tracer

    from alarm_backends.service.scheduler.app import app
    from bench.noop import noop

    app.loader.import_default_modules()
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    log = (workdir / "worker.log").open("w")
    for name in ("", "cron", "celery"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log)

    plain_app = Celery("plain", set_as_current=False)
    plain_app.conf.task_ignore_result = True
    plain_task = plain_app.task(name="bench.noop", ignore_result=True)(noop)
    plain = build_tracer("bench.noop", plain_task, app=plain_app, eager=False, propagate=False, hostname="bench")
    platform = build_tracer(PLATFORM_TASK, app.tasks[PLATFORM_TASK], app=app, eager=False, propagate=False,
                            hostname="bench")  # fmt: skip
    tag = uuid.uuid4().hex[:8]

    def request(task_id: str, **fields: Any) -> dict[str, Any]:
        return {"id": task_id, "delivery_info": {"redelivered": False}, "ignore_result": True, **fields}

    def platform_run(n: int) -> Any:
        task_id = f"{tag}@{n}"  # a slot id, as the beat gives it, with the deadline header
        return platform(task_id, (), {}, request(task_id, bkm_deadline=time.time() + 3600))

    from alarm_backends.service.scheduler import dedupe

    def claim_and_release(n: int) -> None:
        task_id = f"{tag}-alone@{n}"
        dedupe.claim(PLATFORM_TASK, task_id, 60, False, time.time() + 3600)
        dedupe.finish(task_id, 60, [{"task": PLATFORM_TASK, "queue": "celery_cron", "status": "success"}])

    sock = socket.create_connection((storage.hostname or "127.0.0.1", storage.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reply = bytearray(64)

    def ping(_: int) -> None:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        sock.recv_into(reply)

    return {
        "plain": lambda n: plain(f"plain-{tag}-{n}", (), {}, request(f"plain-{tag}-{n}")),
        "platform": platform_run,
        "- claim/release": platform_run,
        "- ^/$ lines": platform_run,
        "- task timer": platform_run,
        "claim+release alone": claim_and_release,
        "PING": ping,
    }


@contextlib.contextmanager
def without(variant: str) -> Iterator[None]:
    """The parts a variant takes out, put back after it."""
    from celery.signals import task_failure, task_postrun, task_prerun

    from alarm_backends.service.scheduler import dedupe

    removed = VARIANTS.index(variant) - 1 if variant.startswith("- ") else 0
    saved = (dedupe.claim, dedupe.finish, [(s, list(s.receivers)) for s in (task_prerun, task_postrun, task_failure)])
    cron = logging.getLogger("cron")
    try:
        if removed >= 1:
            dedupe.claim = lambda *a, **k: True
            dedupe.finish = lambda *a, **k: None
        if removed >= 2:
            cron.disabled = True
        if removed >= 3:
            for signal, _ in saved[2]:
                signal.receivers = [r for r in signal.receivers if not _timer(r[1])]
                signal.sender_receivers_cache.clear()
        yield
    finally:
        dedupe.claim, dedupe.finish = saved[0], saved[1]
        cron.disabled = False
        for signal, receivers in saved[2]:
            signal.receivers = receivers
            signal.sender_receivers_cache.clear()


def _timer(receiver: Any) -> bool:
    return str(getattr(receiver, "__module__", "")).endswith("celery_timer")


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-parts-"))
    calls = set_up(args.redis, workdir)
    cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    serial = 0
    for _ in range(args.rounds):
        for variant in VARIANTS:
            call = calls[variant]
            with without(variant):
                for _ in range(200):  # warm-up
                    serial += 1
                    call(serial)
                started = time.process_time()
                for _ in range(args.runs):
                    serial += 1
                    call(serial)
                cpu[variant].append((time.process_time() - started) / args.runs * 1e6)
    medians = {variant: round(statistics.median(found), 1) for variant, found in cpu.items()}
    return {"script": "wrapper_parts", "runs": args.runs, "rounds": args.rounds, "cpu_us_per_run": medians,
            "by_round": cpu}  # fmt: skip


def report(summary: dict[str, Any]) -> str:
    found = summary["cpu_us_per_run"]
    rows: list[tuple[str, str, str | None]] = [("cpu", "CPU per run (µs, median)", None)]
    title = f"A run's CPU in a pool process, part by part: {summary['runs']:,} runs x {summary['rounds']} rounds"
    return run_report.table(title, rows, {variant: {"cpu": found[variant]} for variant in VARIANTS})


def main() -> None:
    common.script_main(build_parser, run, report)


if __name__ == "__main__":
    main()
