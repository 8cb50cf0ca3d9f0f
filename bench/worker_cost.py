"""What a run costs on the worker: the platform's worker against a plain Celery worker, side by side in one run.

For each broker (RabbitMQ on loopback, and the redis-server of the benchmark's own), ``--runs`` no-op runs are
queued, then a worker starts and runs them all:

* platform: ``celery -A alarm_backends.service.scheduler.app worker``, the no-op (bench/noop.py) as a crontab entry,
  its messages as the patched beat sends them (slot ids ``<name>@<n>``, the ``bkm_deadline`` header), so every run
  goes through the platform's wrapper: the slot claim and its release, the run log, the metrics, the ^/$ log lines;
* plain: ``celery -A bench.plainapp worker``, the same function as a bare task, Celery's defaults otherwise;
* plain+delivery: the same plain worker with the platform's delivery settings (``task_acks_late``,
  ``task_reject_on_worker_lost``, ``worker_max_tasks_per_child``: what a killed worker must not lose costs on any
  worker), so that platform / plain+delivery is the wrapper's own cost;

with the same concurrency and prefetch, and the same log level. The rate is taken between the first and the last run
(bench/noop.py counts them in the workers), so start-up is not in it; variants alternate round by round. Prints runs
per second (median), the ratios to the platform (goal: plain ≤ 1.15 times the platform's rate), the cost per run
over each plain variant (the wall time per run over theirs, times the concurrency: the time one pool process
spends), and the CPU the worker (main and pool processes) spends per run, from /proc between 10 % and 90 % of the
runs: steadier than the rates on a machine shared with the brokers.

Usage: ``python bench/worker_cost.py [--runs 20000] [--rounds 2] [--concurrency 2] [--prefetch 4]
[--brokers rabbitmq,redis]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celery import Celery
from kombu import Exchange, Queue

from bench import common
from bench import run as run_report
from bench.noop import read_counts

JOB = "bench.noop.noop"
PLATFORM_TASK = "alarm_backends.service.scheduler.tasks.cron.bench_noop_noop"  # the loader's name for JOB
DEADLINE_HEADER = "bkm_deadline"  # patches/redbeat/publisher.py
VARIANTS = ("platform", "plain", "plain+delivery")
# The platform's delivery settings (alarm_backends/service/scheduler/config.py), for the plain+delivery variant.
DELIVERY = ("task_acks_late", "task_reject_on_worker_lost", "worker_max_tasks_per_child")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20000, help="no-op runs per worker and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant and broker (alternating)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes of each worker")
    parser.add_argument("--prefetch", type=int, default=4, help="worker prefetch multiplier")
    parser.add_argument("--brokers", default="rabbitmq,redis", help="rabbitmq, redis or both")
    parser.add_argument("--rabbitmq", default=common.DEFAULT_BROKER, help="the RabbitMQ broker (loopback only)")
    parser.add_argument("--redis", default=common.PRIVATE, help="'private' (default) or a loopback redis:// URL")
    parser.add_argument("--loglevel", default="info", help="both workers' log level")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for one round's runs")
    return parser


def fill(broker: str, queue: str, task: str, runs: int, tag: str) -> None:
    """Queue ``runs`` messages of ``task`` as the patched beat sends a crontab entry's: task ids ``<tag>@<n>``, a
    deadline an hour ahead, and the task's ``ignore_result`` (True on both sides), which a worker takes from the
    message over the task's own (without it, the platform's worker stored a result per run)."""
    app = Celery("bench-publisher", broker=broker)
    declared = Queue(queue, Exchange(queue, type="direct"), routing_key=queue)
    with app.connection_for_write() as conn:
        producer = app.amqp.Producer(conn)
        producer.declare = None
        declared(conn.default_channel).declare()
        for n in range(runs):
            message = app.amqp.as_task_v2(f"{tag}@{n}", task, (), {}, ignore_result=True)
            headers = dict(message.headers, **{DEADLINE_HEADER: round(time.time() + 3600, 3)})
            producer.publish(message.body, exchange=declared.exchange, routing_key=queue, headers=headers,
                             serializer="json", **message.properties)  # fmt: skip


def worker_command(variant: str, queue: str, args: argparse.Namespace) -> list[str]:
    app = "alarm_backends.service.scheduler.app" if variant == "platform" else "bench.plainapp"
    return [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-c", str(args.concurrency),
            "--prefetch-multiplier", str(args.prefetch), "-l", args.loglevel, "-n", f"bench-{variant}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip


def worker_env(variant: str, broker: str, redis_url: str, workdir: Path) -> dict[str, str]:
    env = {"BENCH_COUNT_DIR": str(workdir / "counts"), "BENCH_BROKER": broker, "PYTHONUNBUFFERED": "1"}
    if variant == "plain+delivery":
        from alarm_backends.service.scheduler.app import app as platform

        env["BENCH_PLAIN_CONF"] = json.dumps({name: platform.conf[name] for name in DELIVERY})
    if variant != "platform":
        return env
    storage = urlparse(redis_url)
    env |= {
        "BKAPP_SETTINGS_DEFAULT_CRONTAB": json.dumps([[JOB, "* * * * *", "global"]]),
        "BK_MONITOR_REDIS_HOST": storage.hostname or "127.0.0.1",
        "BK_MONITOR_REDIS_PORT": str(storage.port or 6379),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
    }
    amqp = urlparse(broker)
    if amqp.scheme == "amqp":
        env |= {"BK_MONITOR_RABBITMQ_HOST": amqp.hostname or "127.0.0.1", "BK_MONITOR_RABBITMQ_PORT": str(amqp.port),
                "BK_MONITOR_RABBITMQ_VHOST": amqp.path[1:] or "/", "BK_MONITOR_RABBITMQ_USERNAME": amqp.username or "",
                "BK_MONITOR_RABBITMQ_PASSWORD": amqp.password or ""}  # fmt: skip
    return env


def one_round(variant: str, broker: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-cost-{variant}-"))
    (workdir / "counts").mkdir()
    (workdir / "metrics").mkdir()
    queue, tag = f"bench.cost.{uuid.uuid4().hex[:10]}", f"noop{uuid.uuid4().hex[:8]}"
    fill(broker, queue, PLATFORM_TASK if variant == "platform" else "bench.noop", args.runs, tag)
    env = os.environ | worker_env(variant, broker, args.redis, workdir)
    with (workdir / "worker.log").open("wb") as log:
        proc = subprocess.Popen(worker_command(variant, queue, args), cwd=common.REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    cpu: list[tuple[int, float]] = []  # (runs so far, the worker's CPU seconds) between 10 % and 90 % of the runs
    try:
        deadline = time.monotonic() + args.timeout
        while (counted := read_counts(str(workdir / "counts")))[0] < args.runs:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{variant} worker ran {counted[0]} of {args.runs}; see {workdir / 'worker.log'}")
            if args.runs * 0.1 <= counted[0] <= args.runs * 0.9:
                cpu.append((counted[0], tree_cpu(proc.pid)))
            time.sleep(0.2)  # polling the workers' counters while they run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    total, first, last = counted
    delete_queue(broker, queue)
    shutil.rmtree(workdir, ignore_errors=True)
    assert first is not None and last is not None
    result: dict[str, Any] = {"runs_per_s": (total - 1) / (last - first), "ran": total}
    if len(cpu) >= 2 and cpu[-1][0] > cpu[0][0]:
        result["cpu_us_per_run"] = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) * 1e6
    return result


def tree_cpu(pid: int) -> float:
    """CPU seconds (user and system) of the worker ``pid`` and its pool processes, live or already replaced (a
    process's reaped children count in its own figures): what a run costs the machine, steadier than the rate on a
    shared one."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat(proc: str) -> list[str]:
        with open(f"/proc/{proc}/stat") as fh:
            text = fh.read()
        return text[text.rindex(")") + 2 :].split()  # after the command name, which may hold spaces

    def own(fields: list[str]) -> float:
        return sum(int(n) for n in fields[11:15]) / ticks  # utime, stime, cutime, cstime

    total = own(stat(str(pid)))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = stat(entry)
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == pid:
                total += own(fields)
    return total


def delete_queue(broker: str, queue: str) -> None:
    app = Celery("bench-cleanup", broker=broker)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


def run(args: argparse.Namespace) -> dict[str, Any]:
    brokers = {"rabbitmq": args.rabbitmq, "redis": args.redis.rsplit("/", 1)[0] + "/9"}
    results: dict[str, dict[str, Any]] = {}
    for name in args.brokers.split(","):
        url = brokers[name]
        common.check_loopback(url)
        rounds: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                rounds[variant].append(one_round(variant, url, args))
        rates = {variant: statistics.median(r["runs_per_s"] for r in found) for variant, found in rounds.items()}
        found_rates: dict[str, Any] = {variant: {"runs_per_s": round(rate, 1)} for variant, rate in rates.items()}
        for variant, found in rounds.items():
            costs = [r["cpu_us_per_run"] for r in found if "cpu_us_per_run" in r]
            if costs:
                found_rates[variant]["cpu_us_per_run"] = round(statistics.median(costs))
        for plain in ("plain", "plain+delivery"):
            found_rates[plain]["platform_per_run_over_us"] = round(
                (1 / rates["platform"] - 1 / rates[plain]) * args.concurrency * 1e6
            )
            found_rates[plain]["ratio_to_platform"] = round(rates[plain] / rates["platform"], 2)
        results[name] = {**found_rates, "rounds": rounds}
    return {"script": "worker_cost", "runs": args.runs, "concurrency": args.concurrency, "prefetch": args.prefetch,
            "results": results}  # fmt: skip


ROWS: list[tuple[str, str, str | None]] = [
    ("runs_per_s", "no-op runs per second (median)", None),
    ("ratio_to_platform", "its rate over the platform's (goal ≤ 1.15)", None),
    ("platform_per_run_over_us", "the platform's cost per run over it (µs of a pool process)", None),
    ("cpu_us_per_run", "worker CPU per run, main and pool processes (µs, median)", None),
]


def report(summary: dict[str, Any]) -> str:
    tables = []
    for broker, found in summary["results"].items():
        title = (f"Worker cost on {broker}: {summary['runs']:,} no-op runs, concurrency {summary['concurrency']}, "
                 f"prefetch multiplier {summary['prefetch']}")  # fmt: skip
        tables.append(run_report.table(title, ROWS, {v: found[v] for v in VARIANTS}))
    return "\n".join(tables)


def main() -> None:
    common.script_main(build_parser, run, report)


if __name__ == "__main__":
    main()
