"""Stock RedBeat and the platform's scheduler side by side, in one run: burst dispatch, start-up sync and idle ticks,
failover after kill -9, and the broker's publish limit.

Both variants run the same command line, ``celery -A bench.benchapp beat -S redbeat.RedBeatScheduler``; for
``patched`` the app calls ``patches.redbeat.install()`` first. The default run (< 15 min on 2 cores):

* burst: 1,000 and 10,000 entries due at one minute boundary;
* idle: start-up sync (first start and restart) and idle ticks with 1,000, 10,000 and 100,000 entries;
* failover: two beats, kill -9 the lock holder while it sleeps (``--only failover-stop`` adds a SIGSTOP that lands
  mid-dispatch, where a scheduler without fencing publishes stale slots when it resumes);
* kombu: raw publish rates with and without publisher confirms.

A burst must start a fixed time before a minute boundary, so the other runs fill the wait before each burst when
they fit. Prints one markdown table per measurement (each variant, and the ratio oriented so that > 1 means the
second variant is better) and writes every figure to ``bench/out/<timestamp>.json``. Redis figures come from a
redis-server of the benchmark's own (``--redis``).

Usage: ``python bench/run.py [--only burst,idle,failover,kombu] [--quick] [--variants stock,patched]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import beat_burst, beat_failover, beat_idle, common, kombu_limit

OUT_DIR = Path(__file__).resolve().parent / "out"
PARTS = ("burst", "idle", "failover", "failover-stop", "kombu")
DEFAULT_PARTS = ("burst", "idle", "failover", "kombu")
LOWER, HIGHER = "lower", "higher"
# (key in the script's summary, row label, which way is better: the ratio column is oriented by it)
BURST_ROWS = [
    ("first_published_s", "first published after due (s)", LOWER),
    ("all_published_s", "all published after due (s)", LOWER),
    ("all_queued_s", "all in the queue after due (s)", LOWER),
    ("dispatch_rate_per_s", "dispatch rate (msg/s, publish stamps)", HIGHER),
    ("queue_rate_per_s", "dispatch rate (msg/s, broker view, ±poll)", HIGHER),
    ("lateness_p50_s", "lateness p50 (s)", LOWER),
    ("lateness_p99_s", "lateness p99 (s)", LOWER),
    ("redis_commands_per_entry", "Redis commands per entry, counting those inside scripts", LOWER),
    ("redis_round_trips_per_entry", "Redis round trips per entry", LOWER),
    ("redis_script_calls_per_entry", "Redis script calls per entry", None),
    ("beat_cpu_ms_per_entry", "beat CPU ms per entry", LOWER),
    ("beat_peak_rss_mib", "beat peak RSS (MiB)", LOWER),
    ("missing", "entries not published", None),
    ("repeats", "entries published more than once", None),
    ("published_before_t0", "published at start-up, before due", None),
]
IDLE_ROWS = [
    ("restart_sync_s", "restart: sync (s, app loaded → first tick done)", LOWER),
    ("restart_setup_s", "restart: process start → first tick done (s)", LOWER),
    ("restart_redis_round_trips", "restart: Redis round trips", LOWER),
    ("restart_redis_commands", "restart: Redis commands", LOWER),
    ("first_sync_s", "first start on an empty store: sync (s)", LOWER),
    ("first_redis_round_trips", "first start: Redis round trips", LOWER),
    ("first_published", "first start: messages published", None),
    ("idle_redis_round_trips_per_tick", "idle: Redis round trips per tick", LOWER),
    ("idle_redis_commands_per_tick", "idle: Redis commands per tick", LOWER),
    ("idle_beat_cpu_ms_per_tick", "idle: beat CPU ms per tick", LOWER),
    ("beat_peak_rss_mib", "beat peak RSS (MiB)", LOWER),
]
FAILOVER_ROWS = [
    ("failover_s", "fault → other beat's first dispatch (s)", LOWER),
    ("max_gap_s", "longest silence of an entry (s)", LOWER),
    ("missed_slots", "slots not dispatched on time", LOWER),
    ("duplicates", "duplicate dispatches of a slot", LOWER),
    ("duplicate_task_ids", "… of which with the same task id", None),
    ("stale_dispatches", "… of which by the faulted beat after it resumed", LOWER),
    ("leader_changes", "leadership changes (publishing pid changes)", LOWER),
    ("leader_changes_before_fault", "leadership changes while both beats were healthy", LOWER),
]


@dataclass
class Job:
    part: str
    key: str  # size or scenario
    variant: str
    estimate: float  # seconds, to plan the wait before a burst
    run: Callable[[], dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(DEFAULT_PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="1,000 entries only")
    parser.add_argument("--variants", default=None, help="two of stock,patched (default: stock,patched)")
    parser.add_argument("--broker", default=common.DEFAULT_BROKER)
    parser.add_argument("--redis", default=common.PRIVATE, help="as for the scripts: private (default) or a URL")
    parser.add_argument("--out", default=None, help="JSON results file (default bench/out/<timestamp>.json)")
    args = parser.parse_args()
    args.parts = [p for p in args.only.split(",") if p]
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(unknown)}")
    return args


def patched_available() -> str | None:
    """None if ``patches.redbeat.install()`` makes ``redbeat.RedBeatScheduler`` another class, else why not."""
    probe = "import patches.redbeat, redbeat; patches.redbeat.install(); print(redbeat.RedBeatScheduler.__module__)"
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=common.REPO_ROOT, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        return (res.stderr.strip().splitlines() or ["import failed"])[-1]
    return None if res.stdout.strip() != "redbeat.schedulers" else "install() left the stock class in place"


def variants(args: argparse.Namespace) -> list[str]:
    chosen = (args.variants or "stock,patched").split(",")
    if len(chosen) != 2 or set(chosen) - set(common.VARIANTS):
        raise SystemExit("--variants takes two of stock,patched (stock,stock measures the noise)")
    if "patched" in chosen and (why := patched_available()):
        if args.variants:
            raise SystemExit(f"the patched scheduler is not usable: {why}")
        print(f"bench: the patched scheduler is not usable ({why}); measuring stock only", file=sys.stderr)
        return ["stock"]
    return chosen


def script_args(module: Any, args: argparse.Namespace, variant: str, *extra: str) -> argparse.Namespace:
    argv = ["--variant", variant, "--broker", args.broker, "--redis", args.redis, *extra]
    return module.build_parser().parse_args(argv)


def plan(args: argparse.Namespace, names: list[str]) -> tuple[list[Job], list[Job]]:
    """Bursts (each pinned to a minute boundary) and the other jobs, which fill the waits before bursts."""
    sizes = [1000] if args.quick else [1000, 10000]
    idle_sizes = [1000] if args.quick else [1000, 10000, 100000]
    # Column labels: "stock", "stock#2" when the same variant is measured twice (an A/A run shows the noise).
    pairs = [(v, f"{v}#2" if i and v == names[0] else v) for i, v in enumerate(names)]
    bursts, fillers = [], []

    def job(part: str, key: str, variant: str, label: str, estimate: float, module: Any, *extra: str) -> Job:
        return Job(part, key, label, estimate, lambda: module.run(script_args(module, args, variant, *extra)))

    for n in sizes if "burst" in args.parts else []:
        estimate = beat_burst.default_margin(n) + n / 800 + 10
        bursts += [job("burst", str(n), v, label, estimate, beat_burst, "-n", str(n)) for v, label in pairs]
    if "kombu" in args.parts:
        limit_args = kombu_limit.build_parser().parse_args(["--broker", args.broker])
        fillers.append(Job("kombu", "limits", "-", 8.0, lambda: kombu_limit.run(limit_args)))
    for v, label in pairs:
        if "failover" in args.parts:
            fillers.append(job("failover", "kill -9 while asleep", v, label, 32.0, beat_failover))
        if "failover-stop" in args.parts:
            stop = ("--fault", "stop", "--phase", "dispatch")
            fillers.append(job("failover", "SIGSTOP 8 s mid-dispatch", v, label, 42.0, beat_failover, *stop))
    for n in idle_sizes if "idle" in args.parts else []:
        estimate = beat_idle.estimate_seconds(n)
        fillers += [job("idle", str(n), v, label, estimate, beat_idle, "-n", str(n)) for v, label in pairs]
    return bursts, fillers


def execute(job: Job, t_begin: float) -> None:
    started = time.time()
    print(f"bench: [{started - t_begin:6.0f} s] {job.part} {job.key} {job.variant} …", file=sys.stderr, flush=True)
    try:
        job.summary = job.run()
    except Exception as exc:
        job.summary = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    job.summary["wall_s"] = round(time.time() - started, 1)
    ran = str(job.summary.get("scheduler_class") or "")
    if job.variant.startswith("patched") and ran.startswith("redbeat."):
        job.summary["error"] = "the patched variant ran the stock scheduler class"
    elif job.variant.startswith("stock") and ran.startswith("patches."):
        job.summary["error"] = "the stock variant ran the patched scheduler class"
    note = f"error: {job.summary['error']}" if "error" in job.summary else "done"
    print(f"bench:   {note} in {job.summary['wall_s']:.0f} s", file=sys.stderr, flush=True)


def run_all(bursts: list[Job], fillers: list[Job]) -> None:
    """Each burst waits for ``margin`` seconds before a minute boundary: run other jobs while they fit in the wait."""
    t_begin, pending = time.time(), list(fillers)
    for burst in bursts:
        while pending:
            margin = beat_burst.default_margin(int(burst.key))
            slack = beat_burst.next_t0(time.time(), margin) - margin - time.time()
            fit = next((j for j in pending if j.estimate <= slack - 2), None)
            if fit is None:
                break
            pending.remove(fit)
            execute(fit, t_begin)
        execute(burst, t_begin)
    for job in pending:
        execute(job, t_begin)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"


def ratio(a: Any, b: Any, better: str | None) -> tuple[str, str]:
    """(value, orientation) with > 1 meaning the second variant is better; blank when it does not apply."""
    if better is None or not isinstance(a, int | float) or not isinstance(b, int | float) or not a or not b:
        return "", ""
    return (f"{a / b:.2f}x", "first/second") if better == LOWER else (f"{b / a:.2f}x", "second/first")


def table(title: str, rows: list[tuple[str, str, str | None]], by_variant: dict[str, dict[str, Any]]) -> str:
    names = list(by_variant)
    head = [f"### {title}", "", "| | " + " | ".join(names) + (" | ratio | as |" if len(names) == 2 else " |")]
    head.append("|---" * (len(names) + 1 + (2 if len(names) == 2 else 0)) + "|")
    errors = [f"*{v}: {s['error']}*" for v, s in by_variant.items() if "error" in s]
    for key, label, better in rows:
        values = [by_variant[v].get(key) for v in names]
        cells = [fmt(v) for v in values]
        if len(names) == 2:
            value, how = ratio(values[0], values[1], better)
            cells += [value, how.replace("first", names[0]).replace("second", names[1])]
        head.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(head + (["", *errors] if errors else []) + [""])


def report(jobs: list[Job]) -> str:
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for j in jobs:
        grouped.setdefault((j.part, j.key), {})[j.variant] = j.summary
    out = []
    for (part, key), by_variant in grouped.items():
        if part == "burst":
            out.append(table(f"Burst: {int(key):,} entries due at the same instant", BURST_ROWS, by_variant))
        elif part == "idle":
            out.append(table(f"Start-up sync and idle ticks: {int(key):,} entries", IDLE_ROWS, by_variant))
        elif part == "failover":
            out.append(table(f"Failover: {key} (lock timeout 5 s, 20 entries every 2 s)", FAILOVER_ROWS, by_variant))
    kombu = grouped.get(("kombu", "limits"), {}).get("-")
    if kombu:
        lines = [
            "### Publish limit (one process, RabbitMQ on loopback)",
            "",
            "| path | msg/s | µs/msg |",
            "|---|---|---|",
        ]
        for key, value in kombu.items():
            if isinstance(value, dict) and "rate_per_s" in value:
                lines.append(f"| {key} | {fmt(value['rate_per_s'])} | {fmt(value['us_per_msg'])} |")
        lines += ["", f"Message body: {kombu.get('message_body_bytes')} bytes, {kombu.get('messages')} messages."]
        plain, batched = (kombu.get(k, {}).get("rate_per_s") for k in ("kombu_no_confirm", "kombu_confirm_batch_1000"))
        largest = max((int(k) for p, k in grouped if p == "burst"), default=None)
        for variant, summary in grouped.get(("burst", str(largest)), {}).items():
            if (rate := summary.get("queue_rate_per_s")) and plain and batched:
                lines.append(
                    f"Burst of {largest:,}, {variant}: {fmt(rate)} msg/s into the queue, {rate / plain:.0%} of raw"
                    f" publish without confirms, {rate / batched:.0%} of raw publish with confirms per 1,000."
                )
        lines.append("")
        out.append("\n".join(lines))
    return "\n".join(out)


def main() -> None:
    args = parse_args()
    names = variants(args)
    bursts, fillers = plan(args, names)
    started = time.strftime("%Y%m%d-%H%M%S")
    with common.redis_for(args):
        run_all(bursts, fillers)
    jobs = bursts + fillers
    text = report(jobs)
    print(text)
    out = Path(args.out) if args.out else OUT_DIR / f"{started}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = [{"part": j.part, "key": j.key, "variant": j.variant, **j.summary} for j in jobs]
    out.write_text(
        json.dumps({"started": started, "variants": names, "parts": args.parts, "results": results}, indent=1)
    )
    print(f"bench: results in {out}", file=sys.stderr)
    sys.exit(1 if any("error" in j.summary for j in jobs) else 0)


if __name__ == "__main__":
    main()
