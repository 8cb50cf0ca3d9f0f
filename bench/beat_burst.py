"""Burst dispatch: N static entries all due at the same instant T0, published by one beat.

The entries are ``crontab(minute=<T0's minute>)``: due once an hour, so every entry is due at T0 whenever in the
hour before it was created, even if the beat's set-up spans a minute boundary. The beat starts ``--margin`` seconds
before T0 (set-up must end by then) and publishes one warm-up message through its producer at beat_init, as a
long-running beat already holds its broker connection. From T0 - 1 s the harness polls the queue depth with a passive
declare (no consumer competes for the CPUs), then drains the queue and reads the publish time each message carries.

Reported: first/all published after T0 (message stamps) and first/all queued (broker view), dispatch rate (stamps
and broker view), lateness p50/p99, per entry Redis commands (counting those run inside scripts), script calls and
round trips, beat CPU ms per entry, peak RSS. Prints one JSON line.

Usage: ``python bench/beat_burst.py [-n 1000] [--variant stock|patched]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, stats


def default_margin(entries: int) -> float:
    """Seconds before T0 the beat starts: interpreter start-up plus a stock set-up of ~1 ms per entry, doubled."""
    return 12.0 + entries / 500.0


def next_t0(now: float, margin: float) -> float:
    """The first minute boundary at least ``margin`` seconds away."""
    return math.ceil((now + margin) / 60.0) * 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", "-n", type=int, default=1000)
    parser.add_argument("--margin", type=float, default=None, help="start beat this long before T0 (s)")
    parser.add_argument("--poll", type=float, default=0.02, help="queue depth poll period (s)")
    parser.add_argument("--timeout", type=float, default=150.0, help="give up this long after T0 (s)")
    parser.add_argument("--settle", type=float, default=1.0, help="wait after the last message before the stats (s)")
    parser.add_argument("--max-interval", type=float, default=None, help="beat_max_loop_interval (default: scheduler)")
    parser.add_argument("--lock-timeout", type=float, default=None, help="redbeat_lock_timeout (default: scheduler)")
    common.add_common_args(parser)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.entries
    margin = args.margin if args.margin is not None else default_margin(n)
    t0 = next_t0(time.time(), margin)
    with common.Run(args, "burst") as ctx:
        summary = ctx.base_summary("beat_burst")
        env = {
            "BENCH_SCHEDULE": json.dumps({"count": n, "kind": "cron_minute", "minute": int(t0 // 60) % 60}),
            "BENCH_WARMUP": "1",
            "BENCH_MAX_INTERVAL": args.max_interval,
            "BENCH_LOCK_TIMEOUT": args.lock_timeout,
        }
        beat = ctx.beat("beat", env)
        common.sleep_until(t0 - margin)
        beat.start()
        # Entries created after T0 would wait an hour: a set-up that does not fit the margin is an error.
        ready = beat.wait_ready(timeout=max(1.0, t0 - 0.5 - time.time()))
        summary.update(entries=n, margin_s=margin, scheduler_class=ready["scheduler_class"])
        summary["setup_s"] = stats.rnd(ready["ready_ts"] - beat.t_start)
        common.sleep_until(t0 - 1.0)
        channel = ctx.conn.channel()
        depth0 = common.queue_depth(channel, ctx.queue)  # the warm-up message
        st0, rs0 = beat.stats(), common.redis_snapshot(ctx.redis)
        t_first = t_all = None
        while time.time() < t0 + args.timeout and beat.alive():
            depth = common.queue_depth(channel, ctx.queue) - depth0
            now = time.time()
            if t_first is None and depth > 0:
                t_first = now
            if depth >= n:
                t_all = now
                break
            time.sleep(args.poll)
        time.sleep(args.settle)
        rs1, st1 = common.redis_snapshot(ctx.redis), beat.stats()
        ticks = [float(m[0]) for m in beat.marks("tick") if float(m[0]) >= t0 - 1.0]
        summary["beat_exit_code"] = beat.stop()
        queued = common.queue_depth(channel, ctx.queue)  # everything the beat published, repeats included
        channel.close()
        got: list[common.Message] = []
        common.consume(ctx.conn, ctx.queue, got, lambda: len(got) >= queued)
        msgs = [m for m in got if m["name"] != common.WARMUP_NAME]
    # A scheduler may run a new entry once at start-up, before T0: those messages are not part of the burst.
    early = sum(1 for m in msgs if m["pub_ts"] is not None and m["pub_ts"] < t0 - 1.0)
    msgs = [m for m in msgs if m["pub_ts"] is None or m["pub_ts"] >= t0 - 1.0]
    summary.update(published_before_t0=early)
    summary.update(t0=t0, first_queued_s=stats.rnd(t_first and t_first - t0), complete=t_all is not None)
    summary["all_queued_s"] = stats.rnd(t_all and t_all - t0)
    # The broker's view includes what stamps cannot show, e.g. waiting for publisher confirms after a batch.
    span = t_all - t_first if t_all and t_first else 0.0
    summary["queue_rate_per_s"] = round(n / span, 1) if span > 0 else None
    summary.update(burst_figures(msgs, t0, n))
    rd = common.redis_delta(rs0, rs1)
    cpu = common.cpu_delta(st0, st1)
    summary.update(
        ticks=len(ticks),
        redis_commands=rd["commands"],
        redis_script_calls=rd["script_calls"],
        redis_round_trips=rd["round_trips"],
        redis_commands_per_entry=stats.per(rd["commands"], n),
        redis_script_calls_per_entry=stats.per(rd["script_calls"], n),
        redis_round_trips_per_entry=stats.per(rd["round_trips"], n),
        redis_per_command=rd["per_command"],
        beat_cpu_s=stats.rnd(cpu),
        beat_cpu_ms_per_entry=stats.per(None if cpu is None else cpu * 1000, n),
        beat_rss_before_mib=stats.rnd(st0["rss_mib"], 1),
        beat_rss_after_mib=stats.rnd(st1["rss_mib"], 1),
        beat_peak_rss_mib=stats.rnd(st1["peak_rss_mib"], 1),
    )
    return summary


def burst_figures(msgs: list[dict[str, Any]], t0: float, n: int) -> dict[str, Any]:
    """Figures from the received messages' publish stamps, relative to the due instant T0."""
    pubs = sorted(m["pub_ts"] for m in msgs if m["pub_ts"] is not None)
    late = [p - t0 for p in pubs]
    span = pubs[-1] - pubs[0] if len(pubs) > 1 else 0.0
    sizes = [m["size"] for m in msgs if m["size"] is not None]
    return {
        "received": len(msgs),
        "unique_entries": len({m["name"] for m in msgs}),
        "missing": n - len({m["name"] for m in msgs}),
        "repeats": len(msgs) - len({m["name"] for m in msgs}),
        "first_published_s": stats.rnd(late[0] if late else None),
        "all_published_s": stats.rnd(late[-1] if late else None),
        "lateness_p50_s": stats.rnd(stats.percentile(late, 50)),
        "lateness_p99_s": stats.rnd(stats.percentile(late, 99)),
        "dispatch_rate_per_s": round((len(pubs) - 1) / span, 1) if span > 0 else None,
        "message_body_bytes": statistics.median(sizes) if sizes else None,
    }


def main() -> None:
    common.script_main(build_parser, run)


if __name__ == "__main__":
    main()
