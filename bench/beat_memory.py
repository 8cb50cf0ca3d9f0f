"""Memory per entry: stock RedBeat and the platform's scheduler side by side, in one run.

For each variant, a beat starts with 0 (the baseline: interpreter, Celery, the app), then each ``--sizes`` count of
static entries (none due in the window: every hour), syncs them into an empty store and ticks ``--ticks`` times;
then its resident set (VmRSS) and its peak (VmHWM, which includes the sync) are read from /proc. Bytes per entry
are the difference from the baseline divided by the count. The ``beat_schedule`` both variants read is the same dict
(what any Celery beat holds), so what differs is what the scheduler itself keeps and what its sync needs.

Prints a markdown table (each variant and the ratio stock / patched: > 1 means the platform uses less) and one JSON
line of every figure. Redis is a redis-server of the benchmark's own unless ``--redis`` names one.

Usage: ``python bench/beat_memory.py [--sizes 1000,10000,100000] [--ticks 3]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench import run as run_report

MIB = 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="entry counts, comma-separated")
    parser.add_argument("--variants", default=",".join(common.VARIANTS), help="schedulers, in table order")
    parser.add_argument("--ticks", type=int, default=3, help="ticks after the first before reading memory")
    parser.add_argument("--setup-timeout", type=float, default=600.0)
    common.add_common_args(parser)
    return parser


def measure(args: argparse.Namespace, entries: int) -> dict[str, Any]:
    """One beat with ``entries`` static entries, after its first tick and ``args.ticks`` more: RSS and peak."""
    env = {
        "BENCH_SCHEDULE": json.dumps({"count": entries, "kind": "interval", "interval": 3600}),
        "BENCH_MAX_INTERVAL": 0.5,
    }
    with common.Run(args, "memory") as ctx:
        beat = ctx.beat(f"n{entries}", env).start()
        beat.wait_ready(args.setup_timeout)
        deadline = time.monotonic() + args.setup_timeout
        while len(beat.marks("tick")) <= args.ticks:
            if time.monotonic() > deadline or not beat.alive():
                raise RuntimeError(f"{beat.name} did not tick {args.ticks + 1} times; see {beat.log_path}")
            time.sleep(0.05)
        figures = beat.stats()
        return {"rss_mib": figures["rss_mib"], "peak_rss_mib": figures["peak_rss_mib"]}


def per_entry(figure: float | None, base: float | None, entries: int) -> float | None:
    if figure is None or base is None or not entries:
        return None
    return round((figure - base) * MIB / entries)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(size) for size in args.sizes.split(",") if size]
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for variant in args.variants.split(","):
        args.variant = variant
        base = measure(args, 0)
        results[variant] = {0: base}
        for entries in sizes:
            found = measure(args, entries)
            found["bytes_per_entry"] = per_entry(found["rss_mib"], base["rss_mib"], entries)
            found["peak_bytes_per_entry"] = per_entry(found["peak_rss_mib"], base["peak_rss_mib"], entries)
            results[variant][entries] = found
    return {"script": "beat_memory", "sizes": sizes, "ticks": args.ticks, "results": results}


ROWS: list[tuple[str, str, str | None]] = [
    ("rss_mib", "RSS after the ticks (MiB)", run_report.LOWER),
    ("peak_rss_mib", "peak RSS, the sync included (MiB)", run_report.LOWER),
    ("bytes_per_entry", "bytes per entry (RSS over the baseline)", run_report.LOWER),
    ("peak_bytes_per_entry", "peak bytes per entry", run_report.LOWER),
]


def report(summary: dict[str, Any]) -> str:
    results = summary["results"]
    sections = []
    for entries in [0, *summary["sizes"]]:
        title = f"Memory: {entries:,} entries" if entries else "Memory: the baseline (no entry)"
        rows = ROWS if entries else ROWS[:2]
        sections.append(run_report.table(title, rows, {v: results[v][entries] for v in results}))
    return "\n".join(sections)


def main() -> None:
    common.script_main(build_parser, run, report)


if __name__ == "__main__":
    main()
