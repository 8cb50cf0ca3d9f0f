"""Shared pieces of the beat benchmarks: flags, the beat subprocess, Redis INFO deltas, queue helpers, /proc stats.

Loopback only. Redis figures are server-wide INFO deltas, so by default the benchmarks start a redis-server of their
own (``--redis private``): another client of a shared Redis (a test suite, a running platform) would count as the
scheduler's. Each run records the background command rate before it starts (0 unless shared) and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
PRIVATE = "private"
# On the shared Redis the platform uses DBs 0 and 7-10 and the test suite 11-15; DB 6 belongs to the benchmarks.
SHARED_REDIS = "redis://127.0.0.1:6379/6"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
VARIANTS = ("stock", "patched")
APP_MODULE = "bench.benchapp"
SCHEDULER = "redbeat.RedBeatScheduler"
WARMUP_NAME = "__warmup__"
SCRIPT_COMMANDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=VARIANTS, default="stock", help="scheduler under test")
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="AMQP broker (loopback only)")
    parser.add_argument(
        "--redis",
        default=PRIVATE,
        help=f"schedule store: '{PRIVATE}' (default) starts a redis-server of its own on a free loopback port; "
        f"or a URL such as {SHARED_REDIS} (that DB is flushed before and after every run)",
    )
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=JSON", help="extra Celery setting")
    parser.add_argument("--loglevel", default="INFO", help="beat log level")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (beat logs, markers)")


def check_loopback(url: str) -> None:
    if urlparse(url).hostname not in LOOPBACK:
        raise SystemExit(f"refusing a non-loopback host in {url}")


def emit(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, sort_keys=True, default=str), flush=True)


def script_main(
    build_parser: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace], Any],
    report: Callable[[Any], str] | None = None,
) -> None:
    """The command line of a single benchmark script: parse, run against its Redis, print ``report`` of the summary
    (its tables) if given, then the summary as one JSON line."""
    args = build_parser().parse_args()
    with redis_for(args):
        summary = run(args)
    if report is not None:
        print(report(summary), flush=True)
    emit(summary)


def sleep_until(deadline: float) -> None:
    while (left := deadline - time.time()) > 0:
        time.sleep(min(left, 0.5))


def build_schedule(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A ``beat_schedule`` of ``count`` entries of one kind; every entry passes its own name as its only argument.

    * ``minutely``: ``crontab(minute='*')``, due at every minute boundary.
    * ``cron_minute``: ``crontab(minute=<minute>)``, due once an hour, so entries created at any time in the hour
      before are all due at the same instant (a burst whose set-up may span a minute boundary).
    * ``interval``: ``schedule(<interval> s)``; with a long interval none is due during an idle run.
    """
    from celery.schedules import crontab
    from celery.schedules import schedule as every

    count, kind = int(spec["count"]), spec.get("kind", "minutely")
    if kind == "minutely":
        sched: Any = crontab(minute="*")
    elif kind == "cron_minute":
        sched = crontab(minute=str(int(spec["minute"]) % 60))
    elif kind == "interval":
        sched = every(run_every=float(spec["interval"]))
    else:
        raise ValueError(f"unknown schedule kind {kind!r}")
    width = len(str(max(count - 1, 0)))
    names = (f"{spec.get('prefix', 'e')}{i:0{width}d}" for i in range(count))
    return {name: {"task": spec.get("task", "bench.noop"), "schedule": sched, "args": (name,)} for name in names}


def redis_client(url: str) -> Any:
    import redis

    check_loopback(url)
    return redis.Redis.from_url(url)


@dataclass
class RedisSnapshot:
    ts: float
    reads: int
    calls: dict[str, int]


def redis_snapshot(client: Any) -> RedisSnapshot:
    """One INFO call: per-command call counts (these include commands run inside Lua scripts) and read events."""
    info = client.info("all")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}
    return RedisSnapshot(time.time(), int(info.get("total_reads_processed", 0)), calls)


def redis_delta(before: RedisSnapshot, after: RedisSnapshot) -> dict[str, Any]:
    """Between two snapshots, less our INFO: ``commands`` sums the commandstats deltas (commands a Lua script runs
    count, besides its EVALSHA); ``round_trips`` is the ``total_reads_processed`` delta, one per socket read by the
    server, i.e. about one per request or pipeline."""
    calls = {k: n - before.calls.get(k, 0) for k, n in after.calls.items() if k != "info"}
    calls = {k: n for k, n in sorted(calls.items(), key=lambda kv: -kv[1]) if n}
    return {
        "commands": sum(calls.values()),
        "script_calls": sum(n for k, n in calls.items() if k in SCRIPT_COMMANDS),
        "round_trips": after.reads - before.reads - 1,
        "per_command": calls,
    }


@contextlib.contextmanager
def redis_for(args: argparse.Namespace) -> Iterator[None]:
    """Resolve ``--redis private``: our own redis-server on a free loopback port, no persistence, stopped by pid."""
    if args.redis != PRIVATE:
        check_loopback(args.redis)
        yield
        return
    from alarm_backends.management.supervisor.control import SupervisorError, find_redis_server

    try:
        binary = find_redis_server()
    except SupervisorError as exc:
        raise SystemExit(f"{exc}; or pass --redis {SHARED_REDIS} to use the shared Redis") from None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    cmd = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    args.redis = f"redis://127.0.0.1:{port}/0"
    try:
        client, deadline = redis_client(args.redis), time.time() + 10
        while not _pings(client):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{binary} did not answer on port {port}")
        client.close()
        yield
    finally:
        args.redis = PRIVATE
        stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _pings(client: Any) -> bool:
    with contextlib.suppress(Exception):
        return bool(client.ping())
    time.sleep(0.05)
    return False


def amqp_connection(url: str) -> Any:
    from kombu import Connection

    check_loopback(url)
    conn = Connection(url)
    conn.connect()
    return conn


def new_queue(conn: Any, kind: str) -> str:
    """A fresh queue as Celery declares it for ``task_default_queue``: durable, direct exchange of the same name."""
    from kombu import Exchange, Queue

    name = f"bench.{kind}.{uuid.uuid4().hex[:10]}"
    Queue(name, Exchange(name, type="direct"), routing_key=name)(conn.default_channel).declare()
    return name


def queue_depth(channel: Any, name: str) -> int:
    # A passive declare reads the depth without a consumer competing with the beat for the two CPUs.
    return int(channel.queue_declare(queue=name, passive=True).message_count)


def parse_message(body: Any, headers: dict[str, Any] | None) -> dict[str, Any]:
    """Entry name (args[0]), the app's stamps, and the due slot: ``bench_due_ts`` or the ``<name>@<due>`` task id."""
    headers, name = headers or {}, None
    with contextlib.suppress(ValueError, TypeError, AttributeError, IndexError, KeyError):
        payload = json.loads(body) if isinstance(body, bytes | str) else body
        args = payload[0] if isinstance(payload, list) else payload.get("args")
        name = args[0] if args else None
    due, task_id = headers.get("bench_due_ts"), str(headers.get("id") or "")
    if due is None and "@" in task_id:
        with contextlib.suppress(ValueError):
            due = float(task_id.rsplit("@", 1)[1])
    return {
        "name": name,
        "id": task_id,
        "pub_ts": headers.get("bench_pub_ts"),
        "pid": headers.get("bench_pid"),
        "due_ts": None if due is None else round(float(due), 3),
        "size": len(body) if isinstance(body, bytes | str) else None,
        "recv_ts": time.time(),
    }


Message = dict[str, Any]


def consume(conn: Any, name: str, got: list[Message], done: Callable[[], bool], idle: float | None = 2.0) -> None:
    """Consume (no ack) into ``got`` until ``done()`` or nothing came for ``idle`` seconds (at most 2 minutes)."""
    channel = conn.channel()
    channel.basic_qos(0, 1000, False)
    channel.basic_consume(queue=name, no_ack=True, callback=lambda m: got.append(parse_message(m.body, m.headers)))
    deadline, last = time.time() + 120.0, time.time()
    while time.time() < deadline and not done():
        try:
            conn.connection.drain_events(timeout=0.1)
            last = time.time()
        except TimeoutError:  # socket.timeout is an alias
            if idle is not None and time.time() - last > idle:
                break
    channel.close()


def proc_stats(pid: int) -> dict[str, float | None]:
    """CPU seconds (the threads' schedstat, in ns: fine enough for one idle tick; else utime+stime), RSS and peak RSS
    (VmHWM) in MiB of one process."""
    out: dict[str, float | None] = {"cpu_s": None, "rss_mib": None, "peak_rss_mib": None}
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ns = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                ns += int((task / "schedstat").read_text().split()[0])
        out["cpu_s"] = ns / 1e9 if ns else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"] = int(line.split()[1]) / 1024
    return out


def cpu_delta(before: dict[str, float | None], after: dict[str, float | None]) -> float | None:
    a, b = before.get("cpu_s"), after.get("cpu_s")
    return None if a is None or b is None else b - a


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """SIGTERM (after SIGCONT, in case a fault left it stopped), then SIGKILL: only this PID, which we started."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
    return proc.poll()


class Beat:
    """``python -m celery -A bench.benchapp beat -S redbeat.RedBeatScheduler``, its own process group; the variant
    is only ``BENCH_VARIANT`` in its environment: the command line is the same for both."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, name: str, env: dict[str, Any]) -> None:
        self.name, self.run_dir = name, run_dir
        self.log_path, self.marker = run_dir / f"{name}.log", run_dir / f"{name}.marker"
        self.env = dict(os.environ)
        # With a Django settings module in its environment (importing the platform's `config` package sets one in
        # this process) Celery sets Django up in the beat, and the platform's apps install the patched scheduler:
        # the stock variant would run it too.
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        # The repository root makes both ``bench.benchapp`` and the ``patches`` package importable.
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        self.env.update(BENCH_VARIANT=args.variant, BENCH_BROKER=args.broker, BENCH_REDIS=args.redis)
        self.env.update(BENCH_MARKER=str(self.marker))
        if args.conf:
            pairs = (item.partition("=") for item in args.conf)
            self.env["BENCH_EXTRA_CONF"] = json.dumps({k: json.loads(v) for k, _, v in pairs})
        self.env.update({k: str(v) for k, v in env.items() if v is not None})
        self.cmd = [sys.executable, "-m", "celery", "-A", APP_MODULE, "beat", "-S", SCHEDULER, "-l", args.loglevel]
        self.cmd += ["--logfile", str(self.log_path), "-s", str(run_dir / f"{name}-schedule")]
        self.proc: subprocess.Popen[bytes] | None = None
        self.t_start, self.pid = 0.0, 0

    def start(self) -> Beat:
        self.t_start = time.time()
        with open(self.run_dir / f"{self.name}.stdout", "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=self.run_dir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.proc.pid
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def marks(self, kind: str) -> list[list[str]]:
        """Lines of the app's marker file that start with ``kind`` (``import``, ``ready``, ``tick``), split."""
        lines = self.marker.read_text().splitlines() if self.marker.exists() else []
        return [line.split()[1:] for line in lines if line.split()[:1] == [kind]]

    def wait_ready(self, timeout: float, first_tick: bool = True) -> dict[str, Any]:
        """Until beat_init ran and the first tick ended (a scheduler may write its schedule only once it leads, from a
        tick; a standby stock beat blocks in beat_init: ``first_tick=False``); -> timestamps, scheduler class."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready, ticks = self.marks("ready"), self.marks("tick")
            if ready and (ticks or not first_tick):
                imported = self.marks("import")
                return {
                    "import_ts": float(imported[0][0]) if imported else None,
                    "ready_ts": float(ticks[0][0]) if ticks else float(ready[0][0]),
                    "scheduler_class": ready[0][2] if len(ready[0]) > 2 else None,
                }
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early; see {self.run_dir / (self.name + '.stdout')}")
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")

    def stats(self) -> dict[str, float | None]:
        return proc_stats(self.pid)

    def stop(self) -> int | None:
        return None if self.proc is None else stop_process(self.proc)


class Run:
    """Per-run resources: a temporary directory, a flushed Redis DB and a fresh queue, all cleaned up on exit."""

    def __init__(self, args: argparse.Namespace, kind: str) -> None:
        check_loopback(args.broker)
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
        self.redis = redis_client(args.redis)
        self.redis.flushdb()
        self.conn = amqp_connection(args.broker)
        self.queue = new_queue(self.conn, kind)
        self.beats: list[Beat] = []
        # Commands per second other clients send while nothing of ours runs: 0 unless the Redis is shared.
        before = redis_snapshot(self.redis)
        time.sleep(0.5)
        self.background = 2 * redis_delta(before, redis_snapshot(self.redis))["commands"]

    def beat(self, name: str, env: dict[str, Any]) -> Beat:
        beat = Beat(self.args, self.dir, name, {"BENCH_QUEUE": self.queue, **env})
        self.beats.append(beat)
        return beat

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        for beat in self.beats:
            beat.stop()
        try:
            self.conn.default_channel.queue_delete(self.queue)
            self.conn.default_channel.exchange_delete(self.queue)
        finally:
            self.conn.release()
            self.redis.flushdb()
            self.redis.close()
            if not self.args.keep and exc[0] is None:
                shutil.rmtree(self.dir, ignore_errors=True)

    def base_summary(self, script: str) -> dict[str, Any]:
        return {
            "script": script,
            "variant": self.args.variant,
            "redis": self.args.redis,
            "redis_background_cmds_per_s": self.background,
            "loadavg_1m": os.getloadavg()[0],
        }
