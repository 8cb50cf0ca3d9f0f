"""Growth: the platform's scheduler with 10k, 100k and 1M static entries, synced and ticking, on this machine.

Each size is one ``beat_idle`` run (bench/beat_idle.py: a first start on an empty store, a restart on what it left,
then an idle window): start-up sync time, idle tick cost (beat CPU and Redis round trips per tick) and the beat's
RSS and peak RSS (the sync included). Stock celery-redbeat runs beside it up to ``--stock-up-to`` entries (100k by
default: its 1M sync alone takes about twenty minutes here). Prints one table per scheduler, sizes as columns, with
the growth per tenfold; and one JSON line of every figure.

Usage: ``python bench/beat_growth.py [--sizes 10000,100000,1000000] [--stock-up-to 100000] [--window 20]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import beat_idle, common

ROWS = [
    ("first_sync_s", "first start: sync into an empty store (s)"),
    ("restart_sync_s", "restart: sync onto the stored schedule (s)"),
    ("idle_beat_cpu_ms_per_tick", "idle tick: beat CPU (ms)"),
    ("idle_redis_round_trips_per_tick", "idle tick: Redis round trips"),
    ("beat_rss_mib", "RSS while idle (MiB)"),
    ("beat_peak_rss_mib", "peak RSS, the sync included (MiB)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = beat_idle.build_parser()
    parser.description = __doc__
    parser.add_argument("--sizes", default="10000,100000,1000000", help="entry counts, comma-separated")
    parser.add_argument("--stock-up-to", type=int, default=100000, help="largest size stock runs at (0: never)")
    parser.set_defaults(window=20.0, setup_timeout=3600.0)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(size) for size in args.sizes.split(",") if size]
    results: dict[str, dict[int, dict[str, Any]]] = {"patched": {}, "stock": {}}
    for entries in sizes:
        for variant in ("patched", "stock"):
            if variant == "stock" and entries > args.stock_up_to:
                continue
            args.variant, args.entries = variant, entries
            results[variant][entries] = beat_idle.run(args)
    return {"script": "beat_growth", "sizes": sizes, "results": results}


def cell(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def report(summary: dict[str, Any]) -> str:
    out = []
    for variant, by_size in summary["results"].items():
        if not by_size:
            continue
        sizes = sorted(by_size)
        head = f"| {variant} | " + " | ".join(f"{size:,}" for size in sizes) + " | growth per 10x |"
        lines = [f"### Growth: {variant}", "", head, "|---" * (len(sizes) + 2) + "|"]
        for key, label in ROWS:
            values = [by_size[size].get(key) for size in sizes]
            growth = ""
            if len(sizes) > 1 and values[0] and values[-1]:
                tenfolds = len(str(sizes[-1])) - len(str(sizes[0]))
                growth = f"{(values[-1] / values[0]) ** (1 / max(tenfolds, 1)):.1f}x"
            lines.append(f"| {label} | " + " | ".join(cell(v) for v in values) + f" | {growth} |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def main() -> None:
    common.script_main(build_parser, run, report)


if __name__ == "__main__":
    main()
