"""The platform as an operator starts it, against a private redis-server, with one bad value injected.

``Platform`` runs the real entry points — ``manage.py check``/``hash_ring``, ``celery -A
alarm_backends.service.scheduler.app beat -S redbeat.RedBeatScheduler`` and ``… worker`` — with the environment a
host would give them, pointed at a redis-server of the case's own (every DB of the test plan lives there: store,
broker, service, run log). Each process runs in its own process group, logs to its own file and is stopped by PID
when the case ends, however it ends.

``DEFAULT_CRONTAB`` is replaced by ``crontab(bad)``: two good jobs (``tests.integration.jobs``: each appends to the
service DB) around the bad entry, so a case can show that the good ones still run. The other crontab lists are
emptied: their real jobs would only add noise to the logs under test.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from alarm_backends.core.runlog import RunLogEntry, stream_key
from alarm_backends.service.scheduler.crontab import task_name
from tests.chaos.harness import Row
from tests.chaos.services import REPO, CeleryProcess, RedisServer
from tests.integration.conftest import wait_for

APP = "alarm_backends.service.scheduler.app"
GOOD_JOBS = ("tests.integration.jobs.record_effect", "tests.integration.jobmodule")
# A new entry fires once at start (the cases set REDBEAT_FIRST_RUN "now"; the platform's default waits for the
# first slot); this one not again before next New Year's midnight (m h dow dom moy), so a case that crosses a minute
# still expects exactly one run of each.
ONCE_A_YEAR = "0 0 * 1 1"
OTHER_LISTS = ("ACTION_TASK_CRONTAB", "LONG_TASK_CRONTAB", "API_CRONTAB", "REPORT_CRONTAB")
# How much of an error line a row's note quotes, and the log format's prefix it leaves out (config/tools/logging.py).
QUOTE = 150
LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.,+-]+ [A-Z]+ \d+ \S+ ")


def crontab(bad: list[Any] | None) -> str:
    """``DEFAULT_CRONTAB`` as JSON: the bad entry (if any) at index 1, between two good ones."""
    good = [[path, ONCE_A_YEAR, "global"] for path in GOOD_JOBS]
    return json.dumps([good[0], bad, good[1]] if bad is not None else good)


def good_tasks() -> set[str]:
    return {task_name(path) for path in GOOD_JOBS}


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def is_error(line: str) -> bool:
    """A logged error or warning (the platform's format: ``<date> <time> LEVEL pid logger message``), or the one
    line a process prints when it refuses to start."""
    return any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL")) or line.startswith(
        ("bkmonitor:", "CommandError:", "?: (")
    )


def quote(line: str) -> str:
    """A line for a row's note: its message without the log record's date, level, pid and logger; shortened."""
    text = LOG_PREFIX.sub("", line.strip())
    return text if len(text) <= QUOTE else text[: QUOTE - 1] + "…"


class PlatformProcess(CeleryProcess):
    """A platform command (not the chaos app) in its own process group, with CeleryProcess's log and stop."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        # Not CeleryProcess.__init__: that one runs the chaos app; everything else it offers applies as it is.
        self.name, self.log_path = name, log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.pid = self.proc.pid

    def wait_exit(self, timeout: float) -> int:
        """Until it exited; -> its status."""
        wait_for(lambda: not self.alive(), timeout, f"{self.name} to exit")
        return int(self.proc.returncode)


@dataclass
class ErrorRow(Row):
    """A case with nothing to count (the error is the result): ``-`` in the counting columns."""

    def cells(self) -> tuple[str, ...]:
        cells = super().cells()
        return (cells[0], "-", "-", "-", "-", "-", *cells[6:])


class Platform:
    """One case: its redis-server and the platform processes started against it."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name, self.tmp = name, tmp
        self.started_at = time.time()
        self.procs: list[PlatformProcess] = []
        self.redis = RedisServer("platform", tmp)
        self.password = ""  # what the server requires, once `require_password` set one
        try:
            self.redis.start()
        except BaseException:
            self.redis.close()  # the fixture only knows a case that started
            raise

    def env(self, bad_entry: list[Any] | None = None, **extra: str) -> dict[str, str]:
        """A host's environment: the case's Redis for everything, its own run and log dirs, the crontab lists."""
        for sub in ("run", "logs", "metrics"):
            (self.tmp / sub).mkdir(exist_ok=True)
        env = {
            "BK_MONITOR_REDIS_HOST": self.redis.host,
            "BK_MONITOR_REDIS_PORT": str(self.redis.port),
            "BKM_RUN_DIR": str(self.tmp / "run"),
            "BK_LOG_DIR": str(self.tmp / "logs"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "metrics"),
            "PYTHONUNBUFFERED": "1",
            "BKAPP_SETTINGS_DEFAULT_CRONTAB": crontab(bad_entry),
            "BKAPP_SETTINGS_REDBEAT_FIRST_RUN": "now",
            **{f"BKAPP_SETTINGS_{name}": "[]" for name in OTHER_LISTS},
        }
        return env | extra

    # --- processes --------------------------------------------------------------------------------------------

    def start(self, name: str, args: list[str], env: dict[str, str]) -> PlatformProcess:
        # On top of the test process's environment: the test DB plan and single-node defaults (tests/conftest.py).
        proc = PlatformProcess(name, args, os.environ | env, self.tmp)
        self.procs.append(proc)
        return proc

    def manage(self, name: str, command: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
        """``manage.py <command>`` to its end; -> (exit status, what it printed)."""
        proc = self.start(name, ["manage.py", *command], env)
        return proc.wait_exit(timeout), proc.log()

    def beat(self, env: dict[str, str], name: str = "beat") -> PlatformProcess:
        schedule = str(self.tmp / f"{name}.schedule")  # unused by the Redis scheduler; kept out of the repo
        return self.start(name, ["-m", "celery", "-A", APP, "beat", "-S", "redbeat.RedBeatScheduler", "-s", schedule],
                          env)  # fmt: skip

    def worker(self, env: dict[str, str], queues: str = "celery_cron", name: str = "worker") -> PlatformProcess:
        return self.start(name, ["-m", "celery", "-A", APP, "worker", "-Q", queues, "-c", "1", "-n", f"{name}@%h",
                                 "--without-gossip", "--without-mingle", "--without-heartbeat"], env)  # fmt: skip

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.redis.close()

    # --- what happened ----------------------------------------------------------------------------------------

    def client(self, db: int) -> Any:
        return self.redis.client(db, password=self.password or None)

    def require_password(self, password: str) -> None:
        """From now on the server accepts only ``password`` (clients already connected stay authenticated)."""
        self.client(0).config_set("requirepass", password)
        self.password = password

    def runs(self) -> collections.Counter[tuple[str, str, str]]:
        """(task, status, exception) → how many runs the platform's run log holds."""
        entries = self.client(int(settings.REDIS_DB_PLAN["log"])).xrange(stream_key()) or []
        counted = (RunLogEntry.from_fields(fields) for _, fields in entries)
        return collections.Counter((run.task, run.status, run.exception) for run in counted)

    def wait_runs(self, count: int, timeout: float) -> collections.Counter[tuple[str, str, str]]:
        """Until the run log holds ``count`` runs (or every process started exited); -> the runs."""
        wait_for(lambda: sum(self.runs().values()) >= count or not any(p.alive() for p in self.procs), timeout,
                 f"{count} run(s) in the run log")  # fmt: skip
        return self.runs()

    def lock_holder(self) -> str | None:
        return self.client(int(settings.REDBEAT_REDIS_DB)).get(settings.REDBEAT_KEY_PREFIX + ":lock")

    def queued(self, queue: str) -> int:
        return int(self.client(int(settings.REDIS_DB_PLAN["queue"])).llen(queue))

    def row(self, note: str, runs: collections.Counter[tuple[str, str, str]] | None = None) -> Row:
        """The case's row; with ``runs`` (a case that keeps jobs running) counting the good jobs' runs: each is
        expected once (a new entry fires once at start), lost if it never ran, duplicated if it ran twice."""
        seconds = time.time() - self.started_at
        if runs is None:
            return ErrorRow(self.name, 0, 0, 0, 0, 0, None, seconds, note)
        done = {task: sum(n for (name, status, _), n in runs.items() if name == task and status == "success")
                for task in good_tasks()}  # fmt: skip
        executed = sum(1 for n in done.values() if n)
        duplicated = sum(1 for n in done.values() if n > 1)
        return Row(self.name, len(done), executed, len(done) - executed, duplicated, 0, None, seconds, note)
