"""A plain Celery app and worker for bench/worker_cost.py: the no-op as a bare task, Celery's defaults otherwise.

``celery -A bench.plainapp worker -Q <queue> -c <n> --prefetch-multiplier <m>``, with ``BENCH_BROKER`` the broker
URL (the same broker the platform's worker uses in the same run) and ``BENCH_PLAIN_CONF`` a JSON object of Celery
settings merged last (the platform's delivery settings, for the variant that has them).
"""

from __future__ import annotations

import json
import os

from celery import Celery

from bench.noop import noop

app = Celery("plain", broker=os.environ.get("BENCH_BROKER", ""))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
app.conf.update(json.loads(os.environ.get("BENCH_PLAIN_CONF") or "{}"))


@app.task(name="bench.noop", ignore_result=True)
def noop_task() -> None:
    noop()
