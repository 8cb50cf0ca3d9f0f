"""The backend's worker programs: the original's process topology (its supervisord template), one row per
``celery worker`` program.

``production`` runs the original's fourteen workers with their concurrency (``celery_worker_service`` sized by
``int(cpu ** 0.6 * 1.85)`` unless ``CELERY_WORKERS``). ``small`` fits one machine: the five crontab workers keep
their own programs (their flags decide behaviour: ``--max-tasks-per-child=1`` on ``celery_cron``, a gevent pool for
the API crons) with one or two processes, and the nine alarm-pipeline workers become one program consuming all of
their queues — every queue keeps a consumer, only parallelism and per-queue recycling differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from config.tools.celery import worker_concurrency

APP = "alarm_backends.service.scheduler.app"
SMALL, PRODUCTION = "small", "production"
PROFILES = (SMALL, PRODUCTION)
# What each profile runs, in a phrase (``render_supervisor --profile``'s help).
PROFILE_DESCRIPTIONS = {SMALL: "1-2 processes per worker, for one machine", PRODUCTION: "the full concurrency"}
# Gossip, mingle and the worker heartbeat only feed `celery inspect`/events between workers; the original turns
# them off on the busy queues to spare the broker.
NOGMH = ("--without-gossip", "--without-mingle", "--without-heartbeat")
FORMULA = 0  # a concurrency of 0 means the sizing formula


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    return profile


@dataclass(frozen=True)
class Sizing:
    """What the concurrency of a worker depends on: the profile, this host's CPUs and ``CELERY_WORKERS``."""

    profile: str = SMALL
    cpu_count: int = 1
    celery_workers: int = 0


@dataclass(frozen=True)
class Worker:
    """One ``celery worker`` program: the original's row, plus the concurrency of the small profile."""

    name: str
    queues: tuple[str, ...]
    concurrency: int  # FORMULA: int(cpu ** 0.6 * 1.85), or CELERY_WORKERS when set
    small_concurrency: int
    max_tasks_per_child: int | None = None
    nogmh: bool = False
    pool: str | None = None

    def concurrency_for(self, sizing: Sizing) -> int:
        if check_profile(sizing.profile) == SMALL:
            return self.small_concurrency
        if self.concurrency == FORMULA:
            return worker_concurrency(sizing.cpu_count, sizing.celery_workers)
        return self.concurrency

    def argv(self, python: str, sizing: Sizing, queue_name: Callable[[str], str] = str) -> list[str]:
        # %%h: supervisor turns it into %h, which Celery expands to the host name; names differ per program.
        args = [python, "-m", "celery", "-A", APP, "worker", "-l", "info", "-n", f"{self.name}@%%h"]
        args += ["-Q", ",".join(queue_name(q) for q in self.queues), "-c", str(self.concurrency_for(sizing))]
        if self.max_tasks_per_child is not None:
            # The original's --maxtasksperchild is Celery 3/4 spelling; Celery 5 accepts only this one.
            args.append(f"--max-tasks-per-child={self.max_tasks_per_child}")
        if self.pool:
            args += ["-P", self.pool]
        if self.nogmh:
            args += NOGMH
        return [*args, "-O", "fair"]


# The crontab queues' workers (the queues this platform's crontab lists publish to).
CRON_WORKERS = (
    # A gevent pool is one process whatever -c says: the small profile only lowers the number of greenlets.
    Worker("celery_worker_api_cron", ("celery_api_cron",), 5, 2, pool="gevent", nogmh=True),
    Worker("celery_worker_report_cron", ("celery_report_cron",), 4, 1, nogmh=True),
    Worker("celery_worker_cron", ("celery_cron",), 8, 2, max_tasks_per_child=1, nogmh=True),
    Worker("celery_worker_action_cron", ("celery_action_cron",), 8, 1, max_tasks_per_child=1000),
    Worker("celery_worker_long_task_cron", ("celery_long_task_cron",), 2, 1, max_tasks_per_child=1000, nogmh=True),
)

# The alarm pipeline's workers, in the original's order (their tasks come from product modules deployed alongside).
PIPELINE_WORKERS = (
    Worker("celery_worker_action", ("celery_running_action",), 8, 1, max_tasks_per_child=200, nogmh=True),
    Worker("celery_worker_webhook_action", ("celery_webhook_action",), 8, 1, max_tasks_per_child=200, nogmh=True),
    Worker("celery_worker_service", ("celery_service",), FORMULA, 1, max_tasks_per_child=1000, nogmh=True),
    Worker("celery_worker_service_access_event", ("celery_service_access_event",), 2, 1, 1000, nogmh=True),
    Worker("celery_worker_alert", ("celery_alert_manager", "celery_alert_builder"), 8, 1, max_tasks_per_child=50),
    Worker("celery_worker_composite", ("celery_composite",), 2, 1, max_tasks_per_child=10000),
    Worker("celery_worker_fta_action", ("celery_action", "celery_interval_action"), 8, 1, max_tasks_per_child=100),
    Worker("celery_worker_converge", ("celery_converge",), 8, 1, max_tasks_per_child=1000),
    Worker("celery_metadata_task_worker", ("celery_metadata_task_worker",), 2, 1, max_tasks_per_child=1, nogmh=True),
)

# The small profile's stand-in for PIPELINE_WORKERS: every one of their queues, one program.
PIPELINE_SMALL = Worker(
    "celery_worker_pipeline",
    tuple(q for w in PIPELINE_WORKERS for q in w.queues),
    2,
    2,
    max_tasks_per_child=1000,
    nogmh=True,
)


def workers(profile: str) -> tuple[Worker, ...]:
    """The worker programs of ``profile``, in the original's order where it has one."""
    if check_profile(profile) == PRODUCTION:
        return (*CRON_WORKERS[:2], *PIPELINE_WORKERS[:4], *CRON_WORKERS[2:3], *PIPELINE_WORKERS[4:8],
                *CRON_WORKERS[3:], PIPELINE_WORKERS[8])  # fmt: skip
    return (*CRON_WORKERS, PIPELINE_SMALL)
