"""The no-op job of bench/worker_cost.py, run by both workers (the platform's, as a crontab entry, and plain Celery's).

It counts its runs in a file per process, ``$BENCH_COUNT_DIR/<pid>``: one ``pwrite`` of ``count first last`` (epoch
seconds of its first and latest run) per run, the same cost on both sides, so the benchmark reads how many ran and
when without a broker or result backend in the way.
"""

from __future__ import annotations

import os
import time

RECORD = 64  # bytes: each run overwrites the process's record in place


class _Counter:
    fd = -1
    count = 0
    first = 0.0


def noop() -> None:
    now = time.time()
    counter = _Counter
    if counter.fd < 0:
        path = os.path.join(os.environ["BENCH_COUNT_DIR"], str(os.getpid()))
        counter.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        counter.first = now
    counter.count += 1
    os.pwrite(counter.fd, f"{counter.count} {counter.first:.6f} {now:.6f}".ljust(RECORD).encode(), 0)


def read_counts(directory: str) -> tuple[int, float | None, float | None]:
    """Runs counted in ``directory``: total, first and last run (epoch seconds)."""
    total, first, last = 0, None, None
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as fh:
            fields = fh.read().split()
        if len(fields) != 3:
            continue
        count, started, latest = int(fields[0]), float(fields[1]), float(fields[2])
        total += count
        first = started if first is None else min(first, started)
        last = latest if last is None else max(last, latest)
    return total, first, last
