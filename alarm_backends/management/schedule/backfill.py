"""``beat_schedule backfill``: every slot of an entry in a past range, published once, under the slot ids the scheduler
gives them (``<entry>@<due epoch seconds>``). A slot the run log says already ran is left out, and one that ran
within its claim's life is dropped by the workers' dedupe; one older than both (the run log's retention) runs again.
Crontab entries only: an interval's slots follow its last run, and their ids cannot be named again.

Its own overlap rule, not the entry's:

* ``sequential`` (the default; Temporal's BufferAll for backfills): one after another in slot order, each sent when
  the one before has ended (a Celery chain, so a worker dying mid-run is redelivered as any run is); a run that
  fails stops the rest, as a chain does, and the run log says where to go on from;
* ``allow``: all at once, as many side by side as the workers run;
* ``skip``: all at once, and a slot that finds a run of the entry running is skipped (the entry's run lease).

The entry's own overlap policy does not apply to a backfill's runs (their message says ``bkm_overlap``): under
``buffer_one`` a chained run would be buffered and the chain go on without it.

A backfill has no expiry (a worker pool that is down runs it when it is back) and is bounded: at most ``limit``
slots, never more than ``MAX_SLOTS``, and only slots already due on the Redis clock.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from celery import Celery, chain
from celery.schedules import crontab

from alarm_backends.core.runlog import NOT_RUN, stream_key
from alarm_backends.core.storage.redis import LOG, get_client
from alarm_backends.service.scheduler.overlap import ALLOW, OVERLAP_HEADER, SKIP
from patches.redbeat.policy import NEVER, bind_clock, from_epoch, next_due, task_id

SEQUENTIAL = "sequential"
RULES = (SEQUENTIAL, ALLOW, SKIP)
DEFAULT_LIMIT, MAX_SLOTS = 100, 1000


def add_parser(actions: Any, name_help: str) -> None:
    """``beat_schedule backfill``'s arguments, under the command's ``actions``."""
    parser = actions.add_parser("backfill", help="publish every slot of an entry in a past range, once")
    parser.add_argument("name", help=name_help)
    time_help = "ISO 8601 (without an offset: in TIME_ZONE)"
    parser.add_argument("--from", dest="start", required=True, metavar="TIME", help=f"the range's start, {time_help}")
    parser.add_argument("--to", dest="end", required=True, metavar="TIME", help=f"its end, at most now, {time_help}")
    parser.add_argument("--overlap", choices=RULES, default=SEQUENTIAL,
                        help="one after another (default), all at once, or all at once skipping a slot while a run "
                             "of the entry runs")  # fmt: skip
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help=f"refuse more slots than this (default {DEFAULT_LIMIT}, at most {MAX_SLOTS})")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the slots, publish nothing")


class BackfillError(ValueError):
    """A range or a bound the backfill refuses; the message says which and why."""


@dataclass(frozen=True)
class Backfill:
    name: str  # the entry
    task: str  # its task
    slots: tuple[float, ...]  # due times (epoch seconds), oldest first
    rule: str
    # What each run sends, as the scheduler sends the entry: its arguments, and its options (queue, …).
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [task_id(self.name, slot) for slot in self.slots]


def parse_time(value: str, tz: dt.tzinfo) -> float:
    """An ISO 8601 time (``2026-12-01T03:00``, ``2026-12-01 03:00+08:00``) → epoch seconds; one without an offset is
    in ``tz``."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BackfillError(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T03:00 or 2026-12-01T03:00+08:00)"
        ) from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=tz)).timestamp()


def on_app(schedule: Any, app: Celery) -> Any:
    """A copy of ``schedule`` evaluated in ``app``'s zone, as its beat evaluates it (a crontab made without an app
    reads the current app's, which in a process with more than one app need not be the backend's)."""
    bound = copy.copy(schedule)
    bound.app = app
    return bound


def slots_between(schedule: Any, start: float, end: float, limit: int) -> list[float]:
    """The schedule's fire times in ``[start, end]``, oldest first, as the scheduler computes them; at most
    ``limit + 1`` (one more says the range holds more than the limit)."""
    found: list[float] = []
    at = start - 1e-6  # a fire time at `start` itself is in the range
    while len(found) <= limit:
        # The schedule's own computation on a copy whose clock reads `at` (Celery measures from its now()). A copy
        # of a crontab is rebuilt from its fields alone (its __reduce__): its app is given back.
        fixed = bind_clock(copy.copy(schedule), _clock(at))
        fixed._app = getattr(schedule, "_app", None)
        due = next_due(fixed, from_epoch(at), at)
        if due == NEVER or due > end:
            break
        due = float(round(due, 6))
        if found and due <= found[-1]:
            raise BackfillError(f"the schedule answered {due} again after {found[-1]}: its slots cannot be listed")
        found.append(due)
        at = due
    return found


def _clock(at: float) -> Callable[[], dt.datetime]:
    return lambda: from_epoch(at)


def plan(
    name: str, task: str, schedule: Any, start: float, end: float, now: float, rule: str, limit: int, **sent: Any
) -> Backfill:
    """The slots to publish, or BackfillError naming what is refused; ``sent``: the entry's args, kwargs, options."""
    if not isinstance(schedule, crontab):
        # An interval's slots follow its last run, not a grid: ids made here would match none the scheduler gave.
        raise BackfillError(f"its schedule ({schedule!r}) is not a crontab: only a crontab's slots can be named again")
    if rule not in RULES:
        raise BackfillError(f"overlap {rule!r}: expected one of {', '.join(RULES)}")
    if not 1 <= limit <= MAX_SLOTS:
        raise BackfillError(f"--limit {limit}: expected 1 to {MAX_SLOTS} slots")
    if start > end:
        raise BackfillError("--from is after --to")
    if end > now:
        raise BackfillError("--to is in the future (on the Redis clock): a backfill publishes slots already due")
    found = slots_between(schedule, start, end, limit)
    if len(found) > limit:
        raise BackfillError(
            f"the range holds more than {limit} slots of {name} (the bound, --limit; at most {MAX_SLOTS}): narrow it"
        )
    return Backfill(name, task, tuple(found), rule, **sent)


def without_runs(backfill: Backfill, logged: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[Backfill, int]:
    """``backfill`` without the slots the run log (``logged``: its entries) says already ran, and how many those
    were. The workers' dedupe drops a slot run within its claim's life (the task's expires plus an hour); the run log
    remembers longer (its retention), so a backfill of last week does not run again what ran then."""
    ran = {str(fields.get("slot")) for _, fields in logged if fields.get("status") not in NOT_RUN}
    kept = tuple(slot for slot, run_id in zip(backfill.slots, backfill.ids, strict=True) if run_id not in ran)
    return replace(backfill, slots=kept), len(backfill.slots) - len(kept)


def logged_since(start: float) -> list[tuple[str, dict[str, Any]]]:
    """The run log's entries written since ``start`` (the stream's ids are the Redis clock's milliseconds): a slot's
    run is written when it ends, which can be long after ``end`` (a long job, a buffered run, a catch-up)."""
    try:
        entries = get_client(LOG).xrange(stream_key(), min=f"{int(start * 1000)}", max="+")
    except redis.RedisError as exc:
        raise BackfillError(f"the run log cannot be read to leave out the slots that ran ({exc})") from None
    return [(str(entry_id), {str(k): v for k, v in (fields or {}).items()}) for entry_id, fields in entries or []]


def publish(app: Celery, backfill: Backfill) -> None:
    """Send the backfill's runs (see the module's docstring). Celery's own errors when the broker refuses."""
    headers = {OVERLAP_HEADER: SKIP} if backfill.rule == SKIP else {OVERLAP_HEADER: ALLOW}
    run = app.signature(backfill.task, backfill.args, backfill.kwargs, backfill.options, immutable=True)
    runs = [run.clone().set(task_id=run_id, expires=None, headers=headers) for run_id in backfill.ids]
    if not runs:
        return
    if backfill.rule == SEQUENTIAL:
        chain(*runs).apply_async()
        return
    for each in runs:
        each.apply_async()
