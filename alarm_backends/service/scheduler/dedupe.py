"""Workers run each scheduled slot at most once, even when beat publishes it twice.

The patched beat publishes a slot under the task id ``<entry name>@<due epoch seconds>``; a second publish of the
same slot (a beat that crashed between publishing and recording the run, a failover mid-tick) carries the same id.
Before running, a worker claims the id with ``SET NX`` in the service DB, for as long as the message could still be
valid (the task's expires). A second delivery finds the claim and is dropped and counted — except a redelivery of a
run that never finished (``acks_late``: its worker died mid-task), which may take the claim over and run.
"""

from __future__ import annotations

import logging

import redis
from prometheus_client import Counter

from alarm_backends.core.storage.redis import SERVICE, get_client, key

logger = logging.getLogger("cron")

RUNNING, DONE = "running", "done"
DEFAULT_TTL = 3600

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


def claim(task_name: str, task_id: str, ttl: int | None, redelivered: bool) -> bool:
    """Whether this delivery should run. A service DB that cannot be reached lets the run go ahead: a rare
    duplicate is better than a scheduled job silently not running."""
    slot = claim_key(task_id)
    try:
        client = get_client(SERVICE)
        if client.set(slot, RUNNING, nx=True, ex=claim_ttl(ttl)):
            return True
        if redelivered and client.get(slot) == RUNNING:
            logger.warning("[Cron Task](%s) %s redelivered after an unfinished run: running it", task_name, task_id)
            return True
    except redis.RedisError as exc:
        logger.warning("[Cron Task](%s) %s not deduplicated (service DB unavailable: %s)", task_name, task_id, exc)
        return True
    DUPLICATES_DROPPED.labels(task_name=task_name).inc()
    logger.warning("[Cron Task](%s) %s already ran or is running: duplicate delivery dropped", task_name, task_id)
    return False


def claim_ttl(expires: int | None) -> int:
    """How long a claim lives: a copy of the slot re-published late (after a failover) is still valid for
    ``expires`` from its own publish, so the claim outlives the first run by that plus a margin for the failover."""
    return (expires or DEFAULT_TTL) + DEFAULT_TTL


def finish(task_id: str, ttl: int | None) -> None:
    """Mark the slot done, so even a redelivery of it is dropped from now on."""
    try:
        get_client(SERVICE).set(claim_key(task_id), DONE, ex=claim_ttl(ttl))
    except redis.RedisError as exc:
        logger.warning("slot %s not marked done (service DB unavailable: %s)", task_id, exc)
