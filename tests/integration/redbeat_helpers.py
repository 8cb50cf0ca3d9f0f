"""A test Celery app for the patched scheduler, and reading what it published from the Redis broker."""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_DB_PLAN, TEST_REDBEAT_DB

BROKER_DB = TEST_DB_PLAN["queue"]


def make_app(schedule: dict[str, Any], prefix: str = "redbeat:", lock_timeout: float = 3, **conf: Any) -> Celery:
    queue = conf.pop("task_default_queue", None) or f"bkm-test-beat-{uuid.uuid4().hex[:8]}"
    app = Celery("beat-test", set_as_current=False)
    broker_url = conf.pop("broker_url", None) or f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"
    app.conf.update(
        broker_url=broker_url,
        redbeat_redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_REDBEAT_DB}",
        redbeat_key_prefix=prefix,
        redbeat_lock_timeout=lock_timeout,
        beat_schedule=schedule,
        timezone="UTC",
        task_default_queue=queue,
        result_expires=None,
        # New entries fire on the first tick: most tests watch what a tick does with due entries. The default
        # ("next": wait for the first slot) has tests of its own.
        **{"beat_max_loop_interval": 5, "redbeat_first_run": "now", **conf},
    )
    return app


# Clients decode responses to str; typed Any because redis-py's stubs say bytes | str whatever the option.
def broker() -> Any:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB, decode_responses=True)


def store() -> Any:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_REDBEAT_DB, decode_responses=True)


def drive(beat: Any, seconds: float, until: Callable[[], Any] | None = None, pace: float = 0.2) -> bool:
    """Run ``beat`` as ``celery beat`` does, for ``seconds`` or until ``until()`` is true (-> whether it became
    true; True when there is no ``until``). celery beat's loop ticks, then sleeps what the tick returned: that sleep
    is the scheduler's own pacing, under test here, not a wait for something (capped at ``pace``, so ``until`` is
    polled often)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if until is not None and until():
            return True
        time.sleep(min(beat.tick(), pace))
    return until is None or bool(until())  # what the last tick did


def published(queue: str) -> list[dict[str, Any]]:
    """The messages waiting in ``queue`` (kombu's Redis transport: a list, newest first), oldest first."""
    return [json.loads(raw) for raw in reversed(broker().lrange(queue, 0, -1))]


def ids(queue: str) -> list[str]:
    return [message["headers"]["id"] for message in published(queue)]


def duplicates(queue: str) -> list[str]:
    """The task ids published to ``queue`` more than once."""
    return [task_id for task_id, n in collections.Counter(ids(queue)).items() if n > 1]


def snapshot() -> dict[str, Any]:
    """Everything in the schedule store, to show that a fenced-out beat changed nothing."""
    client = store()
    out: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))
        else:
            out[key] = client.get(key)
    return out
