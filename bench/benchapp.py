"""The Celery app the beat benchmarks run: ``celery -A bench.benchapp beat -S redbeat.RedBeatScheduler``.

Configured by environment variables (bench/common.py sets them), so one command line serves both variants:

``BENCH_VARIANT``       ``stock`` or ``patched``; ``patched`` calls ``patches.redbeat.install()`` before anything else,
                        so ``-S redbeat.RedBeatScheduler`` resolves to the platform's scheduler
``BENCH_BROKER``        broker_url
``BENCH_REDIS``         redbeat_redis_url (the schedule store)
``BENCH_QUEUE``         task_default_queue (one fresh queue per run)
``BENCH_MAX_INTERVAL``  beat_max_loop_interval in seconds (unset: the scheduler's default)
``BENCH_LOCK_TIMEOUT``  redbeat_lock_timeout in seconds (unset: the scheduler's default)
``BENCH_SCHEDULE``      JSON spec for ``common.build_schedule``: the static beat_schedule
``BENCH_EXTRA_CONF``    JSON object merged into app.conf last
``BENCH_MARKER``        file this app appends to: ``import <ts>`` when loaded, ``ready <ts> <pid> <scheduler class>``
                        at beat_init (the scheduler exists by then), ``tick <ts>`` when a tick returns
``BENCH_WARMUP``        ``1``: at beat_init publish one ``__warmup__`` message through the scheduler's producer, so the
                        broker connection exists before a measured burst, as in a long-running beat
``BENCH_STAMP_DUE``     ``1``: stamp ``bench_due_ts``, the slot being served, when the task id does not carry it
``BENCH_FAULT_FILE``    when this file exists at a publish, the beat deletes it and sends itself the signal named in
                        it (``SIGSTOP``, ``SIGKILL``): a fault that lands mid-dispatch, after the scheduler loaded its
                        due entries and before it finished dispatching them, which no outside timing hits reliably
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

if os.environ.get("BENCH_VARIANT") == "patched":
    # Before Celery resolves -S, so the same class path names the patched scheduler.
    import patches.redbeat

    patches.redbeat.install()

from celery import Celery, signals

from bench.common import DEFAULT_BROKER, SHARED_REDIS, WARMUP_NAME, build_schedule

PID = os.getpid()
_MARKER = os.environ.get("BENCH_MARKER") or None


def _mark(*parts: object) -> None:
    if _MARKER:
        with open(_MARKER, "a") as fh:
            fh.write(" ".join(str(p) for p in parts) + "\n")


_mark("import", f"{time.time():.6f}", PID)

app = Celery("benchapp")
app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER", DEFAULT_BROKER),
    redbeat_redis_url=os.environ.get("BENCH_REDIS", SHARED_REDIS),
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench"),
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    # No result backend: keeps beat from adding celery.backend_cleanup to the schedule.
    result_expires=None,
    # New entries wait for their first slot, as stock RedBeat's do, so both variants start quiet and the burst at
    # the minute boundary is the only one measured (stock ignores the setting).
    redbeat_first_run="next",
)
if os.environ.get("BENCH_MAX_INTERVAL"):
    app.conf.beat_max_loop_interval = float(os.environ["BENCH_MAX_INTERVAL"])
if os.environ.get("BENCH_LOCK_TIMEOUT"):
    app.conf.redbeat_lock_timeout = float(os.environ["BENCH_LOCK_TIMEOUT"])
if os.environ.get("BENCH_SCHEDULE"):
    app.conf.beat_schedule = build_schedule(json.loads(os.environ["BENCH_SCHEDULE"]))
if os.environ.get("BENCH_EXTRA_CONF"):
    app.conf.update(json.loads(os.environ["BENCH_EXTRA_CONF"]))


@app.task(name="bench.noop")
def noop(*args: Any, **kwargs: Any) -> None:
    return None


_STAMP_DUE = os.environ.get("BENCH_STAMP_DUE") == "1"
_FAULT_FILE = os.environ.get("BENCH_FAULT_FILE") or None


def due_of_entry_on_stack() -> float | None:
    """Due time (epoch s) of the slot a scheduler whose task ids do not carry it is dispatching.

    Celery's and RedBeat's ``tick`` hold the entry as loaded, before ``reserve`` advanced it, in a local called
    ``entry``; the outermost such frame has the previous ``last_run_at``, and the slot being served is the next fire
    time after it. Two dispatches with the same (name, due) serve the same slot twice.
    """
    from celery.beat import ScheduleEntry

    frame: FrameType | None = sys._getframe(2)
    found = None
    while frame is not None:
        entry = frame.f_locals.get("entry") if "entry" in frame.f_code.co_varnames else None
        if isinstance(entry, ScheduleEntry):
            found = entry
        frame = frame.f_back
    if found is None or found.last_run_at is None:
        return None
    remaining = found.schedule.remaining_estimate(found.last_run_at)
    return (found.schedule.now() + remaining).timestamp()


@signals.before_task_publish.connect(weak=False)
def _stamp(sender: Any = None, headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    # Publish time and pid travel in the message, so the harness needs no log parsing and no access to the beat.
    if headers is None:
        return
    headers["bench_pub_ts"] = time.time()
    headers["bench_pid"] = PID
    if _STAMP_DUE and "@" not in str(headers.get("id", "")):
        headers["bench_due_ts"] = due_of_entry_on_stack()
    if _FAULT_FILE and os.path.exists(_FAULT_FILE):
        with open(_FAULT_FILE) as fh:
            sig = signal.Signals[fh.read().strip()]
        os.unlink(_FAULT_FILE)
        _mark("fault", f"{time.time():.6f}", sig.name)
        os.kill(PID, sig)


@signals.beat_init.connect(weak=False)
def _ready(sender: Any = None, **kwargs: Any) -> None:
    # sender is celery.beat.Service; it created its scheduler (setup_schedule ran) before sending beat_init.
    scheduler = sender.scheduler
    if os.environ.get("BENCH_WARMUP") == "1":
        app.send_task("bench.noop", args=(WARMUP_NAME,), producer=scheduler.producer)
    inner_tick = scheduler.tick

    def tick(*args: Any, **kwargs: Any) -> Any:
        result = inner_tick(*args, **kwargs)
        _mark("tick", f"{time.time():.6f}")
        return result

    # Counts ticks without DEBUG logging, which would slow a large schedule's set-up in the stock scheduler.
    scheduler.tick = tick
    cls = type(scheduler)
    _mark("ready", f"{time.time():.6f}", PID, f"{cls.__module__}.{cls.__qualname__}")
