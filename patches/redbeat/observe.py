"""What the scheduler reports: one log line per decision and the beat's Prometheus metrics.

Every decision is logged once, by the beat that made it: the lock taken, kept or lost; the due entries a tick
claimed (one line per tick); each run sent and committed, with its id (``<entry name>@<slot>``), task and due time
(one line per run, as Celery's own "Sending due task" line); runs sent but not committed, which the next leader
sends again under the same ids.

Metrics live in ``PROMETHEUS_MULTIPROC_DIR`` when it is set (supervisord sets it for every program and
``manage.py metrics_exporter`` serves them); otherwise in this process's default registry.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger("celery.beat")

# From a healthy beat's milliseconds to a run missed by minutes.
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))
DUE_BUCKETS = (0, 1, 10, 100, 1000, 10_000, 100_000, float("inf"))
TICK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, float("inf"))


@dataclass(frozen=True)
class BeatMetrics:
    dispatch_lateness: Histogram
    due_per_tick: Histogram
    tick_duration: Histogram
    leader: Gauge
    renew_failures: Counter
    failovers: Counter
    dispatched: Counter


@functools.cache
def beat_metrics() -> BeatMetrics:
    """The beat's metrics, created by the first scheduler of the process rather than at import: in multi-process
    mode an unlabelled metric opens its sample file when created, and a process that only imports the scheduler
    (a CLI command, the exporter) should leave no files behind."""
    return BeatMetrics(
        dispatch_lateness=Histogram(
            "bkmonitor_beat_dispatch_lateness_seconds",
            "Publish time minus due time of each scheduled run (the Redis server's clock)",
            buckets=LATENESS_BUCKETS,
        ),
        due_per_tick=Histogram(
            "bkmonitor_beat_due_entries",
            "Entries due (or asked to run now) per tick of the leading beat",
            buckets=DUE_BUCKETS,
        ),
        tick_duration=Histogram(
            "bkmonitor_beat_tick_duration_seconds", "Duration of one beat tick", buckets=TICK_BUCKETS
        ),
        # livesum: the sum over beats still running, so a host reads 1 while one of its beats leads (the exporter
        # forgets the samples of processes that died).
        leader=Gauge("bkmonitor_beat_leader", "1 while this beat holds the schedule lock", multiprocess_mode="livesum"),
        renew_failures=Counter(
            "bkmonitor_beat_lock_renew_failures",
            "Lock renewals that failed (the lock was another beat's, or Redis erred)",
        ),
        failovers=Counter(
            "bkmonitor_beat_failovers",
            "Times this beat took the lock from another beat whose lease ran out (not released)",
        ),
        dispatched=Counter("bkmonitor_beat_dispatched", "Runs published and committed by this beat", ["kind"]),
    )


@dataclass(frozen=True)
class PlannedRun:
    """One message a tick publishes: a slot of an entry's schedule, or an operator's run-now request."""

    entry: str
    id: str  # the task id: ``<entry>@<slot epoch s>`` or ``<entry>@<request epoch ms>``
    due: float  # epoch seconds: the slot, or when the run was requested
    requested: bool = False
    offset: float = 0.0  # the slot's jitter: published this long after it on purpose, not late

    @property
    def publish_at(self) -> float:
        return self.due + self.offset


@dataclass(frozen=True, slots=True)
class SentRun:
    """A run that went out: its task's name, and when its chunk was sent (the Redis server's clock)."""

    run: PlannedRun
    task: str
    at: float


@functools.lru_cache(maxsize=256)
def _at(epoch: float) -> str:
    # A burst's runs share a handful of due times: format each once.
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat(timespec="milliseconds")


class Observer:
    """The scheduler's log lines and metrics, in one place so each decision is reported exactly once."""

    def __init__(self, lock_key: str) -> None:
        self.lock_key = lock_key
        self.metrics = beat_metrics()
        self.metrics.leader.set(0)

    # --- leadership -------------------------------------------------------------------------------------------

    def acquired(self, ttl: float, took_over: bool, kept: bool = False) -> None:
        """The lock is this beat's: taken over from a beat whose lease ran out, taken free, or ``kept`` (still its
        own after it stood by on an error)."""
        self.metrics.leader.set(1)
        if took_over:
            self.metrics.failovers.inc()
        how = "failover: the last leader's lease ran out" if took_over else "still this beat's" if kept else "free"
        logger.info("beat: acquired the lock %s (%s, ttl %.0fs): leading", self.lock_key, how, ttl)

    def renew_failed(self) -> None:
        self.metrics.renew_failures.inc()

    def stepped_down(self, why: str, was_leading: bool) -> None:
        self.metrics.leader.set(0)
        if was_leading:
            logger.warning("beat: lost leadership (%s): standing by", why)

    def closed(self) -> None:
        self.metrics.leader.set(0)

    # --- a tick -----------------------------------------------------------------------------------------------

    def tick(self, seconds: float) -> None:
        self.metrics.tick_duration.observe(seconds)

    def claimed(self, entries: int, due: int, requested: int, oldest: float | None) -> None:
        """A tick's fetch: ``entries`` (due, asked to run now, or both), ``oldest`` the earliest due score."""
        self.metrics.due_per_tick.observe(entries)
        if entries:
            since = f", the oldest due {_at(oldest)}" if oldest is not None else ""
            logger.info("beat: claimed %d due entr%s and %d run-now request(s)%s", due,
                        "y" if due == 1 else "ies", requested, since)  # fmt: skip

    def committed(self, sent: list[SentRun]) -> None:
        """The runs published and committed: no beat sends them again, so each is counted once here. Lateness is
        publish time minus due time on the server's clock; a chunk's messages share the time its last one was sent,
        an upper bound off by at most one chunk's publish time (~10 ms per 1000)."""
        for one in sent:
            if not one.run.requested:
                self.metrics.dispatch_lateness.observe(max(one.at - one.run.publish_at, 0.0))
        slots = sum(1 for one in sent if not one.run.requested)
        if slots:
            self.metrics.dispatched.labels(kind="slot").inc(slots)
        if len(sent) > slots:
            self.metrics.dispatched.labels(kind="run_now").inc(len(sent) - slots)
        if not logger.isEnabledFor(logging.INFO):
            return
        for run, task, at in ((one.run, one.task, one.at) for one in sent):
            # The id starts with the entry's name; the task is named too where it differs (crontab entries are
            # named after their task).
            what = run.id if task == run.entry else f"{run.id} ({task})"
            if run.requested:
                logger.info("Scheduler: Sent due task %s: run now, requested %s", what, _at(run.due))
            else:
                late = max(at - run.publish_at, 0)
                if run.offset:
                    logger.info("Scheduler: Sent due task %s: due %s, jitter %.3fs, late %.3fs", what, _at(run.due),
                                run.offset, late)  # fmt: skip
                else:
                    logger.info("Scheduler: Sent due task %s: due %s, late %.3fs", what, _at(run.due), late)

    def uncommitted(self, sent: list[SentRun], why: str) -> None:
        """Runs published whose commit did not happen: the next leader publishes them again, under the same ids."""
        for one in sent:
            logger.warning("beat: %s (%s) was sent but not committed (%s): it goes out again under the same id",
                           one.run.id, _at(one.run.due), why)  # fmt: skip
