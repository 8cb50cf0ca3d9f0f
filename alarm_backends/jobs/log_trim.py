"""Trims the cron run log (log DB) to its retention window.

``record_run`` caps the stream by length only, which keeps a week of history on a quiet host and minutes of it on
a busy one; trimming by entry id (a millisecond timestamp) keeps a fixed time window instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from alarm_backends.core.runlog import stream_key
from alarm_backends.core.storage.redis import LOG, get_client

DEFAULT_RETENTION = int(timedelta(days=7).total_seconds())


@dataclass(frozen=True)
class Trim:
    """Entries removed, and the oldest entry id kept (``<ms>-0``)."""

    removed: int
    min_id: str


def retention_seconds() -> int:
    """``CRON_RUN_LOG_RETENTION`` in seconds, seven days when unset."""
    retention = int(getattr(settings, "CRON_RUN_LOG_RETENTION", DEFAULT_RETENTION))
    if retention <= 0:
        raise ValueError(f"CRON_RUN_LOG_RETENTION={retention!r} must be a positive number of seconds")
    return retention


def main() -> Trim:
    """Remove the run log entries older than the retention window."""
    min_id = f"{int((time.time() - retention_seconds()) * 1000)}-0"
    # Exact, not "~": an approximate trim only drops whole stream nodes and could keep old entries indefinitely
    # on a small stream; the hourly run removes an hour's worth, which is cheap.
    removed = int(get_client(LOG).xtrim(stream_key(), minid=min_id, approximate=False))
    return Trim(removed=removed, min_id=min_id)
