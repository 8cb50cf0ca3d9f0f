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


@dataclass(frozen=True)
class RunLogEntry:
    task: str
    queue: str
    status: str  # success | failed
    cost: float
    exception: str
    ts: float

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


def record_run(task: str, queue: str, status: str, cost: float, exception: str = "") -> None:
    fields: dict[FieldT, EncodableT] = {
        "task": task,
        "queue": queue,
        "status": status,
        "cost": f"{cost:.6f}",
        "exception": exception,
        "host": socket.gethostname(),
        "ts": f"{time.time():.6f}",
    }
    deferred = _deferred.get()
    if deferred is not None:
        deferred.append(fields)
        return
    try:
        get_client(LOG).xadd(stream_key(), fields, maxlen=MAX_LEN, approximate=True)
    except redis.RedisError as exc:
        logger.warning("cron run log not written for %s: %s", task, exc)
