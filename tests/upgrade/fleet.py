"""A deployment in the middle of a rolling upgrade: beats and workers of the original (its own virtualenv, see
tests/upstream/original.py and original_app.py) and of this platform, on one schedule store and one broker.

Both sides get the same crontab list (``CRONTAB``: every job of tests/upgrade/jobs.py, every minute, on
``celery_cron``), the original's names and the upgrade setting ``CELERY_SERIALIZER=pickle`` on the platform's side.
Every run a job records (:class:`Run`) says which side's worker ran it and under which task id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis
from kombu import Connection
from kombu.exceptions import ChannelError

from tests.chaos.services import CeleryProcess
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN
from tests.integration.conftest import wait_for
from tests.upgrade import jobs

PLATFORM_APP = "alarm_backends.service.scheduler.app"
ORIGINAL_APP = "tests.upgrade.original_app"
QUEUE = "celery_cron"
CRONTAB = [[f"tests.upgrade.jobs.{jobs.name(i)}", "* * * * *", "global"] for i in range(jobs.ENTRIES)]
TASK_PREFIX = "alarm_backends.service.scheduler.tasks.cron."
# The platform's other lists, emptied: in a mixed fleet every host must declare the same entries, or each side's
# start-up prunes the other's (stock redbeat removes statics its beat_schedule lacks).
OTHER_LISTS = ("ACTION_TASK_CRONTAB", "LONG_TASK_CRONTAB", "API_CRONTAB", "REPORT_CRONTAB")
# Both sides' leases, shortened from the original's 300 s and the platform's 30 s so a failover takes seconds.
LEASE = 10
# The original beat's loop (60 s there): also how often a stock standby retries the lock.
ORIGINAL_LOOP = 5
RUNS_DB = TEST_DB_PLAN["log"]
BEAT = ["beat", "-l", "info", "-S", "redbeat.RedBeatScheduler"]
# One message at a time (prefetch 1, one process): a message not waiting on the queue is running or done, so an
# empty queue and stopped workers mean every published message ran.
WORKER = ["worker", "-Q", QUEUE, "-c", "1", "-l", "info", "--prefetch-multiplier", "1", "--without-gossip",
          "--without-mingle"]  # fmt: skip


def task_name(path: str) -> str:
    return TASK_PREFIX + path.replace(".", "_")


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


@dataclass(frozen=True)
class Run:
    job: str
    ts: float
    id: str
    side: str

    @property
    def slot(self) -> int:
        """The minute the run belongs to: the nearest, so a run fired before its minute counts for that minute."""
        return round(self.ts / 60) * 60

    @property
    def by_platform(self) -> bool:
        """Published by this platform's beat, whose ids are ``<task>@<slot>`` (a stock beat's are uuids)."""
        return "@" in self.id


@dataclass
class Fleet:
    """``name`` keys its runs; ``broker_url`` is the broker both sides use; ``platform_env`` the settings that put
    the platform's processes on that broker, store ``store_db`` and their own service DB."""

    name: str
    log_dir: Path
    broker_url: str
    store_db: int
    platform_env: Mapping[str, str]
    processes: list[CeleryProcess] = field(default_factory=list)

    @property
    def runs_key(self) -> str:
        return f"upgrade:runs:{self.name}"

    def _env(self, side: str, label: str) -> dict[str, str]:
        common = {
            "UPGRADE_SIDE": side,
            "UPGRADE_RUNS_URL": redis_url(RUNS_DB),
            "UPGRADE_RUNS_KEY": self.runs_key,
            "PYTHONUNBUFFERED": "1",
            "C_FORCE_ROOT": "1",  # a pickle-accepting worker run as root, as the original's supervisord config allows
        }
        if side == "original":
            return common | {
                "ORIGINAL_BROKER_URL": self.broker_url,
                "ORIGINAL_RESULT_BACKEND": redis_url(TEST_DB_PLAN["queue"]),
                "ORIGINAL_REDBEAT_URL": redis_url(self.store_db),
                "ORIGINAL_LOOP_INTERVAL": str(ORIGINAL_LOOP),
                "ORIGINAL_LOCK_TIMEOUT": str(LEASE),
                "ORIGINAL_CRONTABS": json.dumps({QUEUE: CRONTAB}),
            }
        metrics = self.log_dir / f"{label}-metrics"
        metrics.mkdir()
        return (
            common
            | {f"BKAPP_SETTINGS_{name}": "[]" for name in OTHER_LISTS}
            | {
                "BKAPP_SETTINGS_DEFAULT_CRONTAB": json.dumps(CRONTAB),
                "BKAPP_SETTINGS_CELERY_SERIALIZER": "pickle",
                "BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT": str(LEASE),
                "BKAPP_SETTINGS_REDBEAT_REDIS_DB": str(self.store_db),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            }
            | dict(self.platform_env)
        )

    def start(self, side: str, role: str, python: str) -> CeleryProcess:
        """A beat or worker of ``side`` ("original": run by ``python``, the original venv's; "platform")."""
        label = f"{self.name}-{side}-{role}-{len(self.processes)}"
        args = BEAT if role == "beat" else [*WORKER, "-n", f"{label}@%h"]
        if side == "original":
            process = CeleryProcess(label, args, self._env(side, label), self.log_dir, app=ORIGINAL_APP, python=python)
        else:
            process = CeleryProcess(label, args, self._env(side, label), self.log_dir, app=PLATFORM_APP)
        self.processes.append(process)
        return process

    def store(self) -> redis.Redis:
        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.store_db, decode_responses=True)

    def scores(self) -> dict[str, float]:
        with self.store() as store:
            return {key.removeprefix("redbeat:"): score for key, score in store.zrange("redbeat::schedule", 0, -1,
                                                                                       withscores=True)}  # fmt: skip

    def waiting(self) -> int:
        """Messages on the crontab queue not yet taken by a worker."""
        with Connection(self.broker_url) as connection, connection.channel() as channel:
            try:
                return int(channel.queue_declare(QUEUE, passive=True).message_count)
            except ChannelError:
                # Redis drops an emptied list, and kombu's Redis transport then answers "no queue".
                if connection.transport.driver_type == "redis":
                    return 0
                raise

    def wait_scores(self, scores: set[float], timeout: float) -> None:
        """Until the entries' scores are exactly ``scores``."""
        wait_for(lambda: set(self.scores().values()) == scores, timeout, f"{self.name}: the scores {sorted(scores)}")

    def wait_drained(self, timeout: float) -> None:
        wait_for(lambda: self.waiting() == 0, timeout, f"{self.name}: the queue to empty")

    def runs(self) -> list[Run]:
        with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=RUNS_DB) as client:
            return [Run(**json.loads(raw)) for raw in client.lrange(self.runs_key, 0, -1)]

    def logs(self) -> Iterator[tuple[str, str]]:
        for process in self.processes:
            yield process.name, process.log()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def wait_ready(worker: CeleryProcess) -> None:
    worker.wait_logged("ready.", 90)


def wait_until(ts: float, what: str) -> None:
    """Until the wall clock reads ``ts``: the schedule's own minutes are what the test waits for."""
    wait_for(lambda: time.time() >= ts, max(ts - time.time(), 0) + 5, what)
