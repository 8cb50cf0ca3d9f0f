"""Workers run each scheduled slot at most once, even when beat publishes it twice.

The patched beat publishes a slot under the task id ``<entry name>@<due epoch seconds>``; a second publish of the
same slot (a beat that crashed between publishing and recording the run, a failover mid-tick) carries the same id.
Before running, a worker claims the id with ``SET NX`` in the service DB (``claim.lua``), for as long as the message
could still be valid (the task's expires), after checking on the Redis server's clock that the run is not past its
deadline. A second delivery finds the claim and is dropped and counted — except a redelivery of a
run that never finished (``acks_late``: its worker died mid-task), which may take the claim over and run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis
from prometheus_client import Counter

from alarm_backends.core import runlog
from alarm_backends.core.storage.redis import LOG, SERVICE, db_of, get_client, key
from alarm_backends.core.storage.script import DirectScript

logger = logging.getLogger("cron")

RUNNING, DONE = "running", "done"
DEFAULT_TTL = 3600

EXPIRED_DROPPED = Counter(
    "bkmonitor_beat_expired_dropped",
    "Scheduled runs a worker did not run because they were past their deadline on the Redis clock",
    ["task_name"],
)
DUPLICATES_DROPPED = Counter(
    "bkmonitor_beat_duplicate_dropped",
    "Second deliveries of a scheduled slot that a worker did not run",
    ["task_name"],
)


def is_scheduled_id(task_id: str | None) -> bool:
    """Only ids the patched beat gives (``name@epoch``) are deduplicated; ad-hoc runs (uuids) always run."""
    return bool(task_id) and "@" in str(task_id) and str(task_id).rpartition("@")[2].isdigit()


def claim_key(task_id: str) -> str:
    return key("beat", "slot", task_id)


def new_marker() -> str:
    """A claim's own marker, so a retry of the script after a lost reply finds its own claim, not a duplicate
    (claim.lua); "running:" first, as a redelivery's takeover looks for. An overlap policy's run lease is held
    under it too (``overlap``)."""
    return f"{RUNNING}:{uuid.uuid4().hex[:16]}"


def claim(
    task_name: str,
    task_id: str,
    ttl: int | None,
    redelivered: bool,
    deadline: float | None = None,
    queue: str = "",
    *,
    marker: str | None = None,
    buffered: bool = False,
    quiet: bool = False,
) -> bool:
    """Whether this delivery should run: not past its ``deadline`` (epoch seconds on the Redis clock, the
    ``bkm_deadline`` header: decided by the server, so a worker whose own clock is off neither drops a timely run nor
    runs a late one) and not a second delivery of its slot. A service DB that cannot be reached lets the run go
    ahead: a rare duplicate is better than a scheduled job silently not running.

    ``buffered``: a start of a run an overlap policy buffered (``overlap``), which may take its slot back from
    'buffered'. ``quiet``: a copy the platform sent again (a buffered run's start or reminder, a takeover's retry):
    one that finds its slot already run is dropped without a word, not counted as a duplicate delivery."""
    try:
        client = get_client(SERVICE)
        limit = "" if deadline is None else repr(float(deadline))
        args: list[str | int] = [marker or new_marker(), claim_ttl(ttl), limit, int(redelivered), int(buffered)]
        outcome, *detail = CLAIM(client, [claim_key(task_id)], args)
    except redis.RedisError as exc:
        logger.warning("[Cron Task](%s) %s not deduplicated (service DB unavailable: %s)", task_name, task_id, exc)
        return True
    if outcome == "claimed":
        return True
    if outcome == "taken_over":
        # A copy the platform re-sent (quiet) says what became of it itself (overlap.guard).
        log = logger.info if quiet else logger.warning
        log("[Cron Task](%s) %s redelivered after an unfinished run: running it", task_name, task_id)
        return True
    if outcome == "expired":
        EXPIRED_DROPPED.labels(task_name=task_name).inc()
        late = float(detail[0]) - float(deadline or 0)
        logger.warning("[Cron Task](%s) %s expired %.1fs ago (on the Redis clock): not run", task_name, task_id, late)
        runlog.record_run(task_name, queue, runlog.EXPIRED, 0.0, slot=task_id)
        return False
    if quiet:
        logger.info("[Cron Task](%s) %s: already run or running (%s): this copy is dropped", task_name, task_id, detail)
        return False
    DUPLICATES_DROPPED.labels(task_name=task_name).inc()
    logger.warning("[Cron Task](%s) %s already ran or is running: duplicate delivery dropped", task_name, task_id)
    runlog.record_run(task_name, queue, runlog.DUPLICATE, 0.0, slot=task_id)
    return False


# Run on every scheduled run: called directly on a connection the process holds (see storage.script).
CLAIM = DirectScript((Path(__file__).parent / "claim.lua").read_text(encoding="utf-8"))
FINISH = DirectScript((Path(__file__).parent / "finish.lua").read_text(encoding="utf-8"))


def claim_ttl(expires: int | None) -> int:
    """How long a claim lives: a copy of the slot re-published late (after a failover) is still valid for
    ``expires`` from its own publish, so the claim outlives the first run by that plus a margin for the failover."""
    return (expires or DEFAULT_TTL) + DEFAULT_TTL


def finish(task_id: str, ttl: int | None, runs: Sequence[Mapping[Any, Any]] = ()) -> None:
    """Mark the slot done, so even a redelivery of it is dropped from now on, and write the run's run-log entries
    (``runs``, kept by ``runlog.defer``) in the same round trip (``finish.lua``)."""
    client = get_client(SERVICE)
    entries: list[Mapping[Any, Any] | None] = [*runs] or [None]  # normally the one entry of the run
    for n, fields in enumerate(entries):
        args: list[Any] = [DONE, claim_ttl(ttl), "" if fields is None else db_of(LOG), runlog.MAX_LEN]
        for field, value in (fields or {}).items():
            args += [field, value]
        try:
            FINISH(client, [claim_key(task_id), runlog.stream_key()], args)
        except redis.RedisError as exc:
            done = "" if n else "not marked done, "
            logger.warning("slot %s %sits run not logged (service DB unavailable: %s)", task_id, done, exc)
