"""The chaos suite's Celery app: ``celery -A tests.chaos.chaosapp beat -S redbeat.RedBeatScheduler`` and
``celery -A tests.chaos.chaosapp worker``, configured by the scenario (tests/chaos/harness.py) through the environment:

``CHAOS_STORE_URL``     the scheduler store (``redbeat_redis_url``)
``CHAOS_BROKER_URL``    the broker (a Redis of the scenario's own)
``CHAOS_EVENTS_URL``    where beats and jobs record what happened (and, through ``BK_MONITOR_REDIS_*``, the service DB
                        the workers' dedupe claims live in)
``CHAOS_ENTRIES``       how many entries (``e00`` …), each due every ``CHAOS_INTERVAL`` seconds on the epoch grid
``CHAOS_LOCK_TIMEOUT``  ``redbeat_lock_timeout``
``CHAOS_JOB_SECONDS``   how long each run sleeps between recording its start and its finish
``CHAOS_OVERLAP``       every entry's overlap policy (``allow``, ``skip``, …), with ``BKAPP_SETTINGS_CRON_RUN_LEASE``
``CHAOS_LEADER_GATE``   ``1``: gate the beat by the platform's Consul ring-leader check (``redbeat_leader_gate``), with
                        Consul, host address and ring settings from the environment, as on a host
``CHAOS_BEAT_FAULT_FILE``, ``CHAOS_WORKER_FAULT_FILE``
                        when its file appears, the process reads ``<ACTION> <n> [seconds]`` from it and, at the n-th
                        message from then on, records a ``fault`` event and: ``SIGSTOP`` stops itself (the test then
                        kills or resumes it), ``PAUSE`` sleeps ``seconds`` (the test restarts the broker). A beat
                        counts the messages it publishes (the fault lands after it fetched its due entries, before
                        it finished publishing and committing them); a worker counts the messages it takes from the
                        Redis broker (the fault lands after it took one, before the worker receives it).
                        Two variables, because the programs of a supervised host (tests/chaos/netns.py) share one
                        environment: with one file, the host's worker could take the fault meant for its beat

What the workers run is the platform's own mechanism: the task class derives from the backend app's
``PeriodicTask``, so every delivery goes through the same dedupe (``alarm_backends/service/scheduler/dedupe.py``),
and the delivery semantics (``task_acks_late``, ``task_reject_on_worker_lost``) are read from the backend app.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import time
from typing import Any

import redis
from celery import Celery, signals
from celery.schedules import schedule

# The platform's app: reading its configuration (its delivery settings, below) sets Django up and installs the
# patched scheduler and the Redis put-back, exactly as the platform's beat and workers do.
from alarm_backends.service.scheduler.app import PeriodicTask
from alarm_backends.service.scheduler.app import app as backend_app
from alarm_backends.service.scheduler.config import LEADER_GATE
from patches.kombu_redis import reliable
from tests.chaos.events import (
    CONSUMER_HEARTBEAT,
    CONSUMER_TIMEOUT,
    DELIVERED,
    FAULT,
    FINISHED,
    PUBLISHED,
    QUEUE,
    STARTED,
    TASK,
)

# Long enough for any message of a scenario to be run; the dedupe claim lives this long plus an hour.
EXPIRES = 600
# The delivery settings that decide what a killed worker loses: the platform's, not this app's own choice.
DELIVERY_SETTINGS = ("task_acks_late", "task_reject_on_worker_lost")

ENTRIES = int(os.environ.get("CHAOS_ENTRIES", "50"))
INTERVAL = float(os.environ.get("CHAOS_INTERVAL", "5"))
JOB_SECONDS = float(os.environ.get("CHAOS_JOB_SECONDS", "0"))
PID = os.getpid()


class every(schedule):  # noqa: N801 (named like Celery's schedule classes)
    """Due every ``run_every`` on the epoch grid — a crontab with a resolution of seconds — so the slots a window
    holds, and their task ids ``<entry>@<slot>``, follow from the schedule alone (Celery's ``schedule`` counts from
    each run, so its slots drift with the beat's lateness). Stored like a ``schedule`` of the same period.

    Slots land ``SLOT_OFFSET`` after the grid point: the scheduler computes a score as ``now + remaining`` in floats,
    and a score a microsecond short of the grid point would give the id ``<entry>@<slot - 1>``."""

    SLOT_OFFSET = 0.01

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        # The first slot after `last_run_at`. Counted from the slots themselves (grid + offset): counted from the
        # grid, a time in [k·period, k·period + offset) skipped the slot k·period + offset, and the scheduler, asking
        # for the slot after "now" in that 10 ms window, lost a whole slot (chaos 8b, once in CI).
        period = self.run_every.total_seconds()
        slot = (math.floor((last_run_at.timestamp() - self.SLOT_OFFSET) / period) + 1) * period + self.SLOT_OFFSET
        return dt.timedelta(seconds=slot - self.now().timestamp())


def entry_names() -> list[str]:
    return [f"e{i:02d}" for i in range(ENTRIES)]


SCHEDULE = {name: {"task": TASK, "schedule": every(run_every=INTERVAL)} for name in entry_names()}


app = Celery("chaos")
app.conf.update(
    broker_url=os.environ.get("CHAOS_BROKER_URL", ""),
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": 3 * 3600,  # the platform's: dead workers are the consumer timeout's business
        "consumer_heartbeat": CONSUMER_HEARTBEAT,
        "consumer_timeout": CONSUMER_TIMEOUT,
    },
    redbeat_redis_url=os.environ.get("CHAOS_STORE_URL", ""),
    redbeat_lock_timeout=float(os.environ.get("CHAOS_LOCK_TIMEOUT", "3")),
    redbeat_missed_run={"policy": os.environ.get("CHAOS_MISSED_RUN", "once")},
    beat_scheduler="redbeat.RedBeatScheduler",
    redbeat_leader_gate=LEADER_GATE if os.environ.get("CHAOS_LEADER_GATE") == "1" else "",
    beat_max_loop_interval=1,
    beat_schedule=dict(SCHEDULE),
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    result_expires=None,  # no result backend, and no celery.backend_cleanup entry
    # One message at a time per process: a prefetched message waiting behind a slow job would look abandoned
    # after the short visibility timeout and be handed out twice.
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    **{name: backend_app.conf[name] for name in DELIVERY_SETTINGS},
)


_events: redis.Redis | None = None


def events() -> redis.Redis:
    global _events
    if _events is None:
        _events = redis.Redis.from_url(os.environ["CHAOS_EVENTS_URL"], socket_timeout=5)
    return _events


def record(kind: str, **fields: Any) -> None:
    events().rpush(kind, json.dumps({"ts": time.time(), "pid": os.getpid(), **fields}))


# --- worker side ----------------------------------------------------------------------------------------------


class ChaosTask(PeriodicTask):
    """The backend's ``PeriodicTask`` (its ``__call__`` is the dedupe under test) for entries defined in
    ``beat_schedule``: the task does not add an entry of its own."""

    run_every = None
    overlap = os.environ.get("CHAOS_OVERLAP", "allow")  # every entry's (the platform's overlap/, as a cron task's)

    @classmethod
    def on_bound(cls, app: Celery) -> None:
        """The entries are in this app's ``beat_schedule``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Every delivery, before the dedupe decides whether it runs: what reached the workers.
        delivery = self.request.delivery_info or {}
        record(DELIVERED, id=self.request.id, host=self.request.hostname, redelivered=bool(delivery.get("redelivered")))
        return super().__call__(*args, **kwargs)


@app.task(bind=True, base=ChaosTask, name=TASK, expires=EXPIRES)
def record_run(self: ChaosTask) -> None:
    record(STARTED, id=self.request.id, host=self.request.hostname)
    if JOB_SECONDS:
        time.sleep(JOB_SECONDS)
    record(FINISHED, id=self.request.id, host=self.request.hostname)


# --- faults ---------------------------------------------------------------------------------------------------

_BEAT_FAULT_FILE = os.environ.get("CHAOS_BEAT_FAULT_FILE") or ""
_WORKER_FAULT_FILE = os.environ.get("CHAOS_WORKER_FAULT_FILE") or ""
_fault: list[str] = []  # the armed fault: action, n, [seconds]
_sent_since_armed = 0


def _maybe_fault(path: str, **fields: Any) -> None:
    global _sent_since_armed
    if not _fault:
        if not os.path.exists(path):
            return
        with open(path) as fh:
            _fault[:] = fh.read().split()
        os.unlink(path)
        _sent_since_armed = 0
    _sent_since_armed += 1
    action, at = _fault[0], int(_fault[1])
    if _sent_since_armed != at:
        return
    record(FAULT, action=action, published_before=at - 1, **fields)
    if action == "SIGSTOP":
        os.kill(PID, signal.SIGSTOP)
    elif action == "PAUSE":
        time.sleep(float(_fault[2]))
    else:
        raise ValueError(f"unknown fault {action!r}")
    _fault.clear()


@signals.before_task_publish.connect(weak=False)
def _before_publish(**_: Any) -> None:
    if _BEAT_FAULT_FILE:
        _maybe_fault(_BEAT_FAULT_FILE)


_deliver_taken = reliable.Channel.deliver_taken


def _take(self: reliable.Channel, key: bytes, payload: bytes, ack: bytes) -> None:
    """A worker's fault point: the message is off the queue and in the worker's records, not yet received."""
    if _WORKER_FAULT_FILE:
        _maybe_fault(_WORKER_FAULT_FILE, id=json.loads(payload).get("headers", {}).get("id"))
    _deliver_taken(self, key, payload, ack)


# The platform's transport (patches.kombu_redis) hands each message it took to the worker through this method.
reliable.Channel.deliver_taken = _take  # type: ignore[method-assign]


@signals.after_task_publish.connect(weak=False)
def _after_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Only reached when the publish returned: on the Redis transport the message is in the broker.
    record(PUBLISHED, id=str((headers or {}).get("id")))
