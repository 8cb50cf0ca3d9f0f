"""The cron run log: one stream entry per job run in the log DB (7), read by the report and trim jobs.

Writing it is best-effort: a log DB that is down must not fail the job it describes, so errors are logged and
the run goes on.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from alarm_backends.core.storage.redis import LOG, get_client, key

logger = logging.getLogger("cron")

# An upper bound between trims: the stream never grows past this even if the trim job stops running.
MAX_LEN = 100_000


def stream_key() -> str:
    return key("cron", "runs")


# A delivery a worker did not run (dedupe.claim): logged beside the runs so an entry's page can count them per slot,
# and left out of the report's run totals (cron_report), since nothing ran.
DUPLICATE, EXPIRED = "duplicate", "expired"
# What an entry's overlap policy made of a run that found the previous one still running (scheduler.overlap): not
# run, run later, or the running one terminated (written under that one's slot, whose own entry its end never wrote).
SKIPPED, BUFFERED, REPLACED = "skipped", "buffered", "replaced"
NOT_RUN = frozenset({DUPLICATE, EXPIRED, SKIPPED, BUFFERED, REPLACED})


@dataclass(frozen=True)
class RunLogEntry:
    task: str
    queue: str
    status: str  # success | failed, or a delivery not run: duplicate | expired | skipped | buffered | replaced
    cost: float
    exception: str
    ts: float
    # A scheduled run's task id (``<entry>@<due epoch seconds>``) and when beat published it (epoch seconds on the
    # Redis clock: its deadline header less the task's expires); empty / None for ad-hoc runs and older entries.
    slot: str = ""
    published: float | None = None

    @property
    def started(self) -> float:
        return self.ts - self.cost

    @property
    def lateness(self) -> float | None:
        """From the slot's due time to the run's start (beat, broker and worker together); None without a slot."""
        due = self.due
        return None if due is None else self.started - due

    @property
    def entry(self) -> str:
        """The schedule entry the slot belongs to ('' without a slot): several entries may share one task."""
        return self.slot.rpartition("@")[0]

    @property
    def due(self) -> float | None:
        """The slot's due time, from its id (a run-now request's id counts milliseconds: see controls.run_now_id)."""
        stamp = self.slot.rpartition("@")[2]
        if not stamp.isdigit():
            return None
        return int(stamp) / 1000 if len(stamp) > 11 else float(stamp)

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any] | None) -> RunLogEntry:
        if not fields:
            raise ValueError("a run-log entry without fields")
        return cls(
            task=fields["task"],
            queue=fields.get("queue", ""),
            status=fields["status"],
            cost=float(fields.get("cost", 0)),
            exception=fields.get("exception", ""),
            ts=float(fields.get("ts", 0)),
            slot=fields.get("slot", ""),
            published=float(fields["published"]) if fields.get("published") else None,
        )


# A scheduled run's entry is handed to its slot's release (dedupe.finish), which writes both in one round trip.
_deferred: contextvars.ContextVar[list[dict[FieldT, EncodableT]] | None] = contextvars.ContextVar(
    "bkm_deferred_runs", default=None
)


def defer() -> contextvars.Token[list[dict[FieldT, EncodableT]] | None]:
    """From now on in this context, run-log entries are kept for :func:`collect` instead of written."""
    return _deferred.set([])


def collect(token: contextvars.Token[list[dict[FieldT, EncodableT]] | None]) -> list[dict[FieldT, EncodableT]]:
    """The entries kept since :func:`defer` (whose ``token`` this is); they are the caller's to write now."""
    kept = _deferred.get() or []
    _deferred.reset(token)
    return kept


def record_run(task: str, queue: str, status: str, cost: float, exception: str = "", slot: str = "") -> None:
    fields: dict[FieldT, EncodableT] = {
        "task": task,
        "queue": queue,
        "status": status,
        "cost": f"{cost:.6f}",
        "exception": exception,
        "host": socket.gethostname(),
        "ts": f"{time.time():.6f}",
    }
    if slot:
        fields["slot"] = slot
    deferred = _deferred.get()
    if deferred is not None:
        deferred.append(fields)
        return
    try:
        get_client(LOG).xadd(stream_key(), fields, maxlen=MAX_LEN, approximate=True)
    except redis.RedisError as exc:
        logger.warning("cron run log not written for %s: %s", task, exc)
