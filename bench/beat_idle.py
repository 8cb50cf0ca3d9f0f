"""Start-up sync and idle cost: N static entries loaded, none due during the idle window.

The entries run every ``--interval`` seconds (an hour by default). Three phases, each on a flushed Redis DB:

* first start: a beat starts on an empty store, from its start to the end of its first tick (a scheduler may write
  its schedule only once it leads, from a tick): seconds, Redis commands and round trips, messages published (a
  scheduler may run a new entry at once rather than one interval after its creation); then it stops (SIGTERM);
* restart: a second beat starts on the schedule the first one left, as after a deployment, same figures;
  ``sync_s`` is measured from the app module's import, without the interpreter's start-up;
* idle: on the restarted beat, after ``--settle`` seconds, over ``--window`` seconds: Redis round trips and commands
  per tick and beat CPU per tick. Ticks are counted by the app (it wraps the scheduler's ``tick``), so the beat runs
  at INFO: DEBUG logging would slow a large stock set-up. ``--max-interval`` is short (2 s) so an idle beat ticks
  often enough to measure.

Each scheduler runs with its own default lock timeout unless ``--lock-timeout`` is given. Prints one JSON line.

Usage: ``python bench/beat_idle.py [-n 1000] [--variant stock|patched] [--window 30]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, stats


def estimate_seconds(entries: int, window: float = 30.0, max_interval: float = 2.0) -> float:
    """Wall time of one run with the stock scheduler (~0.7 ms per entry per sync), for planning a series of runs."""
    return 2 * (3.0 + entries / 1400.0) + 2 * max_interval + 1 + window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", "-n", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3600.0, help="run_every of the entries (s)")
    parser.add_argument("--window", type=float, default=30.0, help="measured idle window (s), over a lease period")
    parser.add_argument("--settle", type=float, default=None, help="wait after start-up (default 2*max-interval+1)")
    parser.add_argument("--setup-timeout", type=float, default=300.0, help="give up on start-up after this (s)")
    parser.add_argument("--max-interval", type=float, default=2.0, help="beat_max_loop_interval (s)")
    parser.add_argument("--lock-timeout", type=float, default=None, help="redbeat_lock_timeout (default: scheduler)")
    common.add_common_args(parser)
    return parser


def start_up(ctx: common.Run, name: str, env: dict[str, Any], timeout: float) -> tuple[common.Beat, dict[str, Any]]:
    """Start one beat and wait for its first tick; -> the beat and its start-up figures."""
    beat = ctx.beat(name, env)
    before = common.redis_snapshot(ctx.redis)
    beat.start()
    ready = beat.wait_ready(timeout)
    delta = common.redis_delta(before, common.redis_snapshot(ctx.redis))
    import_ts = ready["import_ts"]
    return beat, {
        "scheduler_class": ready["scheduler_class"],
        "setup_s": stats.rnd(ready["ready_ts"] - beat.t_start),
        "sync_s": stats.rnd(None if import_ts is None else ready["ready_ts"] - import_ts),
        "redis_commands": delta["commands"],
        "redis_script_calls": delta["script_calls"],
        "redis_round_trips": delta["round_trips"],
        "redis_per_command": delta["per_command"],
        "beat_cpu_s": stats.rnd(beat.stats()["cpu_s"]),
        "published": common.queue_depth(ctx.conn.default_channel, ctx.queue),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.entries
    settle = args.settle if args.settle is not None else 2 * args.max_interval + 1
    env = {
        "BENCH_SCHEDULE": json.dumps({"count": n, "kind": "interval", "interval": args.interval}),
        "BENCH_MAX_INTERVAL": args.max_interval,
        "BENCH_LOCK_TIMEOUT": args.lock_timeout,
    }
    with common.Run(args, "idle") as ctx:
        summary = ctx.base_summary("beat_idle")
        first_beat, first = start_up(ctx, "first", env, args.setup_timeout)
        summary["first_exit_code"] = first_beat.stop()
        ctx.conn.default_channel.queue_purge(ctx.queue)
        beat, restart = start_up(ctx, "restart", env, args.setup_timeout)
        time.sleep(settle)
        st0, rs0, w0 = beat.stats(), common.redis_snapshot(ctx.redis), time.time()
        time.sleep(args.window)
        rs1, st1, w1 = common.redis_snapshot(ctx.redis), beat.stats(), time.time()
        ticks = sum(1 for m in beat.marks("tick") if w0 <= float(m[0]) <= w1)
        published = common.queue_depth(ctx.conn.default_channel, ctx.queue) - restart["published"]
        summary["beat_exit_code"] = beat.stop()
    idle = common.redis_delta(rs0, rs1)
    cpu = common.cpu_delta(st0, st1)
    summary.update(entries=n, max_interval=args.max_interval, window_s=round(w1 - w0, 2))
    summary["scheduler_class"] = restart.pop("scheduler_class")
    summary.update({f"first_{k}": v for k, v in first.items() if k != "scheduler_class"})
    summary.update({f"restart_{k}": v for k, v in restart.items()})
    summary.update(
        ticks=ticks,
        idle_redis_commands_per_tick=stats.per(idle["commands"], ticks, 2),
        idle_redis_script_calls_per_tick=stats.per(idle["script_calls"], ticks, 2),
        idle_redis_round_trips_per_tick=stats.per(idle["round_trips"], ticks, 2),
        idle_redis_per_command=idle["per_command"],
        idle_beat_cpu_ms_per_tick=stats.per(None if cpu is None else cpu * 1000, ticks),
        idle_published=published,
        beat_rss_mib=stats.rnd(st1["rss_mib"], 1),
        beat_peak_rss_mib=stats.rnd(st1["peak_rss_mib"], 1),
    )
    return summary


def main() -> None:
    common.script_main(build_parser, run)


if __name__ == "__main__":
    main()
