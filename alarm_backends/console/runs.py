"""What the console reads from the run log: an entry's recent runs, one row per slot (due, published, started,
finished, lateness, duration, worker, outcome, and the second deliveries workers dropped), and the lateness of each
entry's last run for the schedule page.

The stream holds every job's runs (up to ``runlog.MAX_LEN``); a page reads only its newest ``WINDOW`` entries, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from alarm_backends.core.runlog import BUFFERED, DUPLICATE, EXPIRED, NOT_RUN, REPLACED, SKIPPED, RunLogEntry, stream_key
from alarm_backends.core.storage.redis import LOG, describe_role, get_client
from alarm_backends.management.schedule import view

# The newest run-log entries searched: the stream holds every job's runs, up to 100k.
WINDOW = 5000
RECENT = 20


@dataclass
class SlotRuns:
    """Everything the run log says of one slot of an entry: its run (None: no worker ran it) and the deliveries a
    worker dropped."""

    slot: str
    run: RunLogEntry | None = None
    worker: str = ""
    dropped: dict[str, int] = field(default_factory=dict)  # duplicate / expired → count

    def lateness(self) -> float | None:
        """From the slot's due time to the start of its run: beat's dispatch, the queue and the worker together."""
        return self.run.lateness if self.run is not None else None


def read_window() -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """The newest WINDOW entries of the run log, newest first, and what went wrong reading it."""
    try:
        found: Any = get_client(LOG).xrevrange(stream_key(), count=WINDOW)  # decoded replies
        return found or [], ""
    except redis.RedisError as exc:
        return [], f"the run log ({describe_role(LOG)}) cannot be read: {exc}"


def parsed(window: Iterable[tuple[str, dict[str, Any]]], name: str, task: str) -> Iterable[tuple[RunLogEntry, str]]:
    """The entries of the schedule entry ``name`` (by its slot id; an entry without one, by its task, which other
    entries may share), with the worker host that wrote each; one someone else wrote is skipped."""
    for _, fields in window:
        if not fields or fields.get("task") not in (name, task):
            continue
        try:
            entry = RunLogEntry.from_fields(fields)
        except (KeyError, ValueError):
            continue
        if not entry.slot or entry.entry == name:
            yield entry, str(fields.get("host", "?"))


def slots(window: Iterable[tuple[str, dict[str, Any]]], name: str, task: str, limit: int = RECENT) -> list[SlotRuns]:
    """The entry's newest ``limit`` slots, newest first. A run without a slot id (an ad-hoc run, or an entry written
    before slots were logged) is a row of its own."""
    rows: dict[str, SlotRuns] = {}
    for n, (entry, host) in enumerate(parsed(window, name, task)):
        key = entry.slot or f"#{n}"
        row = rows.get(key)
        if row is None:
            if len(rows) == limit:
                continue  # older slots: only their drops could still add to a shown row
            row = rows[key] = SlotRuns(entry.slot)
        if entry.status in NOT_RUN:
            row.dropped[entry.status] = row.dropped.get(entry.status, 0) + 1
        elif row.run is None:
            row.run, row.worker = entry, host
    return list(rows.values())


def table(found: list[SlotRuns], tz: dt.tzinfo) -> list[dict[str, str]]:
    """The recent-runs table's cells."""
    cells = []
    for row in found:
        run = row.run
        due = run.due if run is not None else None
        late = row.lateness()
        cells.append({
            "slot": row.slot or "-",
            "due": view.stamp(due, tz) if due is not None else "-",
            "published": view.stamp(run.published, tz) if run is not None and run.published else "-",
            "started": view.stamp(run.started, tz) if run is not None else "-",
            "finished": view.stamp(run.ts, tz) if run is not None else "-",
            "late": f"{late:+.3f}s" if late is not None else "-",
            "duration": _duration(run.cost) if run is not None else "-",
            "worker": row.worker or "-",
            "outcome": _outcome(row),
            "duplicates": str(row.dropped.get(DUPLICATE, 0)),
        })  # fmt: skip
    return cells


def last_lateness(window: Iterable[tuple[str, dict[str, Any]]], names: set[str]) -> dict[str, float]:
    """The lateness of the last run of each entry of ``names`` that has one with a slot in the window."""
    late: dict[str, float] = {}
    for _, fields in window:
        slot = str((fields or {}).get("slot") or "")
        name = slot.rpartition("@")[0]
        if name not in names or name in late or fields.get("status") in NOT_RUN:
            continue
        try:
            entry = RunLogEntry.from_fields(fields)
        except (KeyError, ValueError):
            continue
        if entry.lateness is not None:
            late[name] = entry.lateness
    return late


def _duration(cost: float) -> str:
    return f"{cost:.3f}s" if cost < 60 else view.duration(cost)


# A slot without a run of its own, by what was logged of it (the first that applies).
_NOT_RUN_OUTCOMES = (
    (REPLACED, "replaced: terminated for a newer run (overlap)"),
    (SKIPPED, "not run: skipped, the previous run still running (overlap)"),
    (BUFFERED, "waiting: buffered until the previous run ends (overlap)"),
    (EXPIRED, "not run: expired"),
)


def _outcome(row: SlotRuns) -> str:
    if row.run is None or row.dropped.get(REPLACED):  # a replaced run's own end is its stop (SystemExit)
        said = (text for status, text in _NOT_RUN_OUTCOMES if row.dropped.get(status))
        return next(said, "not run: only duplicate deliveries logged")
    waited = ", after waiting (buffered)" if row.dropped.get(BUFFERED) else ""
    return row.run.status + (f" ({row.run.exception})" if row.run.exception else "") + waited
