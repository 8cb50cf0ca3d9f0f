"""The operators' console with a large schedule: how long its pages take with ``--entries`` entries (10,000 by
default; goal: the schedule page under 1 s).

A redis-server of the benchmark's own holds the schedule, synced into it by the platform's scheduler (one leader
tick on an app of that many hourly entries), and the platform's run log (``--runs`` entries as workers write them,
the middle entry's among them); the console then serves, through Django's test client in this process with a
signed-in user, ``--requests`` times each: the schedule's first page (100 rows of all entries read and decoded), a
search that matches one entry, and that entry's page (its hash alone, and its 20 newest runs among the run log's
newest 5,000). Prints the median and the slowest of each, in milliseconds, and the time of the sync for scale.

Usage: ``python bench/console_render.py [--entries 10000] [--runs 20000] [--requests 5]
[--redis private|redis://127.0.0.1:6379/0]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench import run as run_report

GOAL_MS = 1000.0
PAGES = ("schedule", "search", "entry")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000, help="entries in the schedule")
    parser.add_argument("--runs", type=int, default=20_000, help="run-log entries written before the requests")
    parser.add_argument("--requests", type=int, default=5, help="requests per page")
    parser.add_argument("--redis", default=common.PRIVATE, help="'private' (default) or a loopback redis:// URL")
    return parser


def set_up(redis_url: str, entries: int, runs: int) -> tuple[Any, float, str]:
    """Django on a database of its own, a signed-in client, the schedule synced and the run log written; returns the
    client, the sync's seconds and the name of an entry in the middle."""
    os.environ["BKM_RUN_DIR"] = tempfile.mkdtemp(prefix="bench-console-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    # The platform's storage (the run log's DB among them) on the benchmark's Redis too.
    address = urlparse(redis_url)
    os.environ["BK_MONITOR_CACHE_REDIS_HOST"] = address.hostname or "127.0.0.1"
    os.environ["BK_MONITOR_CACHE_REDIS_PORT"] = str(address.port or 6379)
    import django

    django.setup()
    from celery import Celery
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from alarm_backends.management import utils
    from patches.redbeat.schedulers import RedBeatScheduler

    call_command("migrate", verbosity=0, interactive=False)
    schedule = common.build_schedule({"count": entries, "kind": "interval", "interval": 3600})
    app = Celery("bench-console", set_as_current=False)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_key_prefix="redbeat:", beat_schedule=schedule,
                    timezone="UTC", broker_url="memory://", redbeat_first_run="next")  # fmt: skip
    common.redis_client(redis_url).flushdb()
    started = time.perf_counter()
    beat = RedBeatScheduler(app=app)
    beat.tick()  # the leader's first tick: takes the lock and syncs every entry into the store
    synced = time.perf_counter() - started
    beat.close()
    utils.backend_app = lambda: app  # the console reads this app's schedule
    middle = sorted(schedule)[entries // 2]
    write_run_log(sorted(schedule), middle, runs)
    client = Client()
    client.force_login(User.objects.create_user("bench-reader"))
    return client, synced, middle


def write_run_log(names: list[str], middle: str, runs: int) -> None:
    """``runs`` entries as the workers write them (a slot id each, every 50th the middle entry's), newest last."""
    from alarm_backends.core import runlog
    from alarm_backends.core.storage.redis import LOG, get_client

    client = get_client(LOG)
    client.delete(runlog.stream_key())
    now = time.time()
    with client.pipeline(transaction=False) as pipe:
        for n in range(runs):
            name = middle if n % 50 == 0 else names[n % len(names)]
            due = int(now) - (runs - n)
            fields = {"task": name, "queue": "celery_cron", "status": "success", "cost": "0.010000", "exception": "",
                      "host": "bench", "ts": f"{due + 0.5:.6f}", "slot": f"{name}@{due}",
                      "published": f"{due}.010"}  # fmt: skip
            pipe.xadd(runlog.stream_key(), fields)  # type: ignore[arg-type]
        pipe.execute()


def run(args: argparse.Namespace) -> dict[str, Any]:
    client, synced, middle = set_up(args.redis, args.entries, args.runs)
    urls = {"schedule": ("/", {}), "search": ("/", {"q": middle}), "entry": (f"/entry/{middle}", {})}
    timings: dict[str, list[float]] = {page: [] for page in PAGES}
    for _ in range(args.requests):
        for page, (url, query) in urls.items():
            started = time.perf_counter()
            response = client.get(url, query)
            timings[page].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{page}: HTTP {response.status_code}")
            if page == "search" and response.content.count(b"data-entry=") != 1:
                raise SystemExit(f"the search for {middle} did not find exactly one entry")
            if page == "entry" and response.content.count(b"data-slot=") != 20:
                raise SystemExit(f"the page of {middle} does not show its 20 newest runs")
    common.redis_client(args.redis).flushdb()
    results = {
        page: {"median_ms": round(statistics.median(found), 1), "max_ms": round(max(found), 1)}
        for page, found in timings.items()
    }
    return {"script": "console_render", "entries": args.entries, "runs": args.runs, "requests": args.requests,
            "sync_s": round(synced, 2), "goal_ms": GOAL_MS, "results": results}  # fmt: skip


def report(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str | None]] = [
        ("median_ms", "median (ms)", None),
        ("max_ms", "slowest (ms)", None),
    ]
    title = (f"The console with {summary['entries']:,} entries (synced in {summary['sync_s']} s) and "
             f"{summary.get('runs', 0):,} run-log entries, "
             f"{summary['requests']} requests per page; goal: the schedule page under {GOAL_MS:.0f} ms")  # fmt: skip
    return run_report.table(title, rows, summary["results"])


def main() -> None:
    common.script_main(build_parser, run, report)


if __name__ == "__main__":
    main()
