"""Start-up cost of the cron loader's expires computation, side by side with the original's sampling method.

The original computed expires at import by asking Celery for the next two fire times from *now*
(``remaining_estimate`` twice); this platform computes the shortest gap over the whole schedule from the expanded
crontab sets. Both run here on the same generated entries, in one process, and the script prints the time per
entry of each, the ratio, and how many entries got a start-time-dependent value under the sampling method.

Usage: ``python bench/expires_bench.py [--entries N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celery.schedules import crontab

from alarm_backends.service.scheduler.crontab import MAX_EXPIRES, MIN_EXPIRES, expires_for


def sampled_expires(cron: str, now: dt.datetime) -> int:
    """The original's method: the gap between the next two fire times as seen from ``now``, less one second."""
    schedule = crontab(*cron.split(), nowfun=lambda: now)
    first = now + schedule.remaining_estimate(now)
    second = first + schedule.remaining_estimate(first)
    gap = int((second - first).total_seconds())
    return min(MAX_EXPIRES, max(gap - 1, MIN_EXPIRES))


def generate(n: int, rng: random.Random) -> list[str]:
    minutes = ["*", "*/5", "*/6", "*/10", "*/25", "*/7", "0", "15", "*/24"]
    hours = ["*", "*/2", "*/6", "3", "*/5"]
    return [f"{rng.choice(minutes)} {rng.choice(hours)} * * *" for _ in range(n)]


def timed(fn: Callable[[str], object], items: list[str]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    crons = generate(args.entries, random.Random(7))
    now = dt.datetime(2026, 1, 1, 0, 7, tzinfo=dt.UTC)

    # Uncached: the loader caches per cron string, which would make the repeats measure a dict lookup.
    ours = min(timed(expires_for.__wrapped__, crons) for _ in range(args.repeats))
    sampled = min(timed(lambda c: sampled_expires(c, now), crons) for _ in range(args.repeats))
    # How many entries would get a different expires depending on the minute the process started.
    starts = [now + dt.timedelta(minutes=m) for m in range(0, 120, 7)]
    unstable = sum(len({sampled_expires(c, s) for s in starts}) > 1 for c in crons)
    result = {
        "entries": args.entries,
        "deterministic_us_per_entry": round(ours / args.entries * 1e6, 1),
        "sampled_us_per_entry": round(sampled / args.entries * 1e6, 1),
        "ratio_deterministic_over_sampled": round(ours / sampled, 3),
        "entries_unstable_under_sampling": unstable,
        "entries_unstable_deterministic": 0,
        "pid": os.getpid(),
    }
    print(
        f"expires for {args.entries} entries: deterministic {result['deterministic_us_per_entry']} µs/entry, "
        f"sampled {result['sampled_us_per_entry']} µs/entry, ratio {result['ratio_deterministic_over_sampled']}; "
        f"start-time-dependent values: sampled {unstable}, deterministic 0"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
