"""Liveness records in the service DB: one for the scheduler as a whole, one per cluster.

A record is a hash rewritten every minute with a 600 s TTL, so it disappears by itself ten minutes after the last
run: a missing key means no worker has run the job for that long (beat down, queue stuck or no consumer).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from celery import current_task

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.storage.redis import SERVICE, key
from alarm_backends.jobs.records import replace_hash

HEARTBEAT_TTL = 600


@dataclass(frozen=True)
class Heartbeat:
    """The record as written: its key, fields and TTL in seconds."""

    key: str
    fields: dict[str, str]
    ttl: int


def current_task_name() -> str:
    """The name of the Celery task running this code, or "" outside a task."""
    # current_task is a proxy of None outside a task: attribute access then fails rather than returning a value.
    return str(getattr(current_task, "name", None) or "")


def write(record_key: str, extra: dict[str, str] | None = None) -> Heartbeat:
    """Replace the hash at ``record_key`` with this process's identity and the current time, and set its TTL."""
    fields = {
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "ts": str(time.time()),
        "task": current_task_name(),
        **(extra or {}),
    }
    replace_hash(SERVICE, record_key, fields, ttl=HEARTBEAT_TTL)
    return Heartbeat(key=record_key, fields=fields, ttl=HEARTBEAT_TTL)


def main() -> Heartbeat:
    """The scheduler's liveness record: ``key("scheduler", "heartbeat")``."""
    return write(key("scheduler", "heartbeat"))


def cluster_heartbeat() -> Heartbeat:
    """This cluster's liveness record: ``key("cluster", "heartbeat")``, also naming the cluster and its code."""
    cluster = get_cluster()
    return write(key("cluster", "heartbeat"), {"cluster": cluster.name, "code": cluster.code})
