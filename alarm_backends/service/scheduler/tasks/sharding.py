"""``perform_sharding_task``: the original's helper (its ``service/scheduler/tasks/__init__.py``) that product code
imports to fan a list of targets out to a Celery task, ``num_per_task`` targets per message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def perform_sharding_task(targets: Sequence[Any], sharding_task: Any, num_per_task: int = 10) -> int:
    """Send ``sharding_task`` one message per chunk of ``num_per_task`` targets (``args=(chunk,)``, as the original
    sends them); returns how many were sent.

    The original looped ``len(targets) // num_per_task + 1`` times, so a length that is a multiple of the chunk size
    (zero included) also sent a message with an empty list: a task run for nothing, and for an empty target list a
    run that looks like work. Here only non-empty chunks are sent.
    """
    if num_per_task < 1:
        raise ValueError(f"num_per_task={num_per_task!r} must be at least 1")
    sent = 0
    for start in range(0, len(targets), num_per_task):
        sharding_task.apply_async(args=(list(targets[start : start + num_per_task]),))
        sent += 1
    return sent
