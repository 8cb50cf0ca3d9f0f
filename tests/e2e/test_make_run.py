"""`make run` starts beat, the workers and the metrics exporter under supervisord, every queue has a consumer, a
`* * * * *` job runs on a worker and shows in the scraped metrics, a worker killed with SIGKILL is restarted, a
real Prometheus scraping the exporter has series for every query of the dashboard and the alert rules
(tests/e2e/observability.py), and `make stop` leaves no process and no socket behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

from alarm_backends.management.supervisor.control import Supervisor, pid_alive
from alarm_backends.management.supervisor.programs import BEAT, CONSOLE, EXPORTER, HEALTHZ
from alarm_backends.management.supervisor.workers import SMALL, workers
from tests.e2e import first_run, observability
from tests.integration.conftest import wait_for
from tests.metrics import scrape, total, value
from tests.net import free_port
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT_WAIT = 90.0
MAKE_TIMEOUT = 600  # `make run` may first install the project into the venv


def run_make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", target], cwd=REPO, env=env, capture_output=True, text=True, timeout=MAKE_TIMEOUT, check=False
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Celery's pool children are grandchildren of supervisord)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({path}: {exc.strerror})"


def console_programs(socket: Path) -> dict[str, str]:
    """Program → state, as the console's workers page shows them for the supervisord on ``socket``."""
    call_command("migrate", verbosity=0, interactive=False)
    user, _ = User.objects.get_or_create(username="e2e-reader")
    client = Client()
    client.force_login(user)
    with override_settings(SUPERVISOR_SERVER=f"unix://{socket}"):
        page = client.get("/workers/").content.decode()
    rows = re.findall(r'data-program="([^"]+)"><td>[^<]*</td>\s*<td class="[^"]*">([A-Z]+)</td>', page)
    return dict(rows)


def active_queues(env: dict[str, str]) -> set[str]:
    """The queues the running workers consume, as they answer `celery inspect active_queues`."""
    cmd = [sys.executable, "-m", "celery", "-A", "alarm_backends.service.scheduler.app", "inspect", "active_queues",
           "--json", "-t", "10"]  # fmt: skip
    deadline = time.monotonic() + 60
    queues: set[str] = set()
    while time.monotonic() < deadline:
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode == 0:
            replies = json.loads(out.stdout.strip().splitlines()[-1])
            queues = {q["name"] for reply in replies.values() for q in reply}
            # Every worker answers once it has started consuming; the gevent one can be last.
            if len(replies) == len(workers(SMALL)):
                return queues
        time.sleep(2)
    return queues


@pytest.fixture
def platform_env(tmp_path: Path, redis_dbs: None) -> Iterator[dict[str, str]]:
    env = {**os.environ, "BKM_RUN_DIR": str(tmp_path / "run"), "VENV": sys.prefix}
    env["BKAPP_SETTINGS_METRICS_EXPORTER_PORT"] = str(free_port())
    env["BKAPP_SETTINGS_CONSOLE_PORT"] = str(free_port())
    env.pop("BK_LOG_DIR", None)  # logs under this run dir
    yield env


def test_make_run_runs_the_crontab_and_make_stop_stops_everything(platform_env: dict[str, str]) -> None:
    from alarm_backends.core.storage.redis import SERVICE, get_client, key
    from alarm_backends.service.scheduler.app import app

    run_dir = Path(platform_env["BKM_RUN_DIR"])
    log_dir = run_dir / "logs"
    supervisor = Supervisor(str(run_dir / "supervisor.sock"))
    # The original's groups: beat and the workers in `scheduler`, the self-monitoring daemon in `selfmonitor`.
    expected = {f"scheduler:{name}" for name in [BEAT, *(w.name for w in workers(SMALL)), EXPORTER]}
    expected.add(f"selfmonitor:{HEALTHZ}")
    expected.add(CONSOLE)  # the operators' console, a group of its own
    test_start = time.time()
    pids: set[int] = set()
    timings: dict[str, float] = {}
    stopped: subprocess.CompletedProcess[str] | None = None
    stack = contextlib.ExitStack()
    try:
        started = run_make("run", platform_env)
        timings["make run"] = time.time() - test_start
        assert started.returncode == 0, describe(started)

        console = f"http://127.0.0.1:{platform_env['BKAPP_SETTINGS_CONSOLE_PORT']}/"
        assert f"console: {console}" in started.stdout and "manage.py createsuperuser" in started.stdout
        processes = supervisor.processes()
        assert {p.name for p in processes} == expected
        assert all(p.state == "RUNNING" for p in processes), processes
        ctl = subprocess.run(
            [str(Path(sys.prefix) / "bin" / "supervisorctl"), "-c", str(run_dir / "supervisord.conf"), "status"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        assert ctl.stdout.count("RUNNING") == len(expected), ctl.stdout
        assert first_run.console(console, 60) == 0  # answers, and asks to sign in
        # The console's workers page lists every program as supervisord runs them (read over its socket).
        assert set(console_programs(run_dir / "supervisor.sock")) == expected
        assert set(console_programs(run_dir / "supervisor.sock").values()) == {"RUNNING"}

        supervisord_pid = supervisor.pid()
        pids = {supervisord_pid, *(p.pid for p in processes), *descendants(supervisord_pid)}

        heartbeat_key = key("scheduler", "heartbeat")
        client = get_client(SERVICE)
        deadline = time.monotonic() + HEARTBEAT_WAIT
        ts = None
        while time.monotonic() < deadline:
            ts = client.hget(heartbeat_key, "ts")
            if ts is not None and float(ts) > test_start:
                break
            time.sleep(1)
        timings["heartbeat seen"] = time.time() - test_start
        assert ts is not None and float(ts) > test_start, (
            f"no fresh {heartbeat_key} in the service DB after {HEARTBEAT_WAIT:.0f} s\n"
            f"--- beat\n{tail(log_dir / 'celery_beat.log')}\n"
            f"--- celery_worker_cron\n{tail(log_dir / 'celery_worker_cron.log')}"
        )
        pids |= descendants(supervisord_pid)

        # The exporter serves what beat and the workers' pool processes wrote: the dispatch and the job's run.
        # (The heartbeat is written during the job; its run is counted when it returns.)
        port = int(platform_env["BKAPP_SETTINGS_METRICS_EXPORTER_PORT"])
        runs = "bkmonitor_cron_task_execute_count_total"
        wait_for(lambda: total(scrape(port), runs, status="success"), 30, "a counted run")
        samples = scrape(port)
        assert value(samples, "bkmonitor_beat_leader") == 1
        assert value(samples, "bkmonitor_beat_dispatch_lateness_seconds_count") > 0
        assert value(samples, "bkmonitor_beat_dispatched_total", kind="slot") > 0
        assert total(samples, "bkmonitor_cron_task_execute_time_count", queue="celery_cron") > 0
        assert total(samples, "bkmonitor_celery_task_execute_time_count") > 0
        timings["metrics scraped"] = time.time() - test_start

        # A real Prometheus scrapes the exporter, with the alert rules loaded; the drops only a fault makes, made.
        (run_dir / "prometheus").mkdir()
        prometheus = stack.enter_context(PrometheusServer(run_dir / "prometheus", [f"127.0.0.1:{port}"]))
        prometheus.wait_scraped()
        seconds, micros = client.time()
        observability.make_drops(app, seconds + micros / 1e6)
        observability.make_overlap(app, seconds + micros / 1e6)

        consumed = active_queues(platform_env)
        timings["queues inspected"] = time.time() - test_start
        assert consumed == {q for w in workers(SMALL) for q in w.queues}

        # supervisord brings back a worker that dies: SIGKILL (no clean shutdown) its main process.
        [cron] = [p for p in processes if p.name == "scheduler:celery_worker_cron"]
        os.kill(cron.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [now] = [p for p in supervisor.processes() if p.name == "scheduler:celery_worker_cron"]
            if now.state == "RUNNING" and now.pid != cron.pid:
                break
            time.sleep(0.5)
        assert now.state == "RUNNING" and now.pid != cron.pid, now
        timings["worker restarted"] = time.time() - test_start
        pids |= {now.pid, *descendants(supervisord_pid)}

        # The restart, as Prometheus sees it (the flapping alert's and the restarts panel's query); then every
        # series the dashboard and the rules use.
        worker = "scheduler:celery_worker_cron"
        wait_for(lambda: observability.restarted(prometheus, worker), 30, "Prometheus to see the worker's restart")
        series = observability.check(prometheus)
        timings["prometheus checked"] = time.time() - test_start
        print(f"prometheus: {len(series)} metrics with series: {series}")
    finally:
        stack.close()
        stop_start = time.time()
        stopped = run_make("stop", platform_env)
        timings["make stop"] = time.time() - stop_start
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))

    assert stopped.returncode == 0, describe(stopped)
    left = sorted(pid for pid in pids if pid_alive(pid))
    assert not left, f"processes of the run still alive after make stop: {left}"
    assert not supervisor.answers()
    assert not (run_dir / "supervisor.sock").exists()
