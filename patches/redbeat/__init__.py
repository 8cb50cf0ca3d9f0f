"""The patched RedBeat scheduler.

One tick of the leader (``schedulers.RedBeatScheduler.tick``), file by file:

  store.fetch_due (lua/fetch_due.lua: clock, lock, due entries)  →  planner / policy (which runs, under which ids)
  →  dispatch, chunk by chunk: publisher.send, then the broker's confirms (stall bounds a stalled link)
  →  store.commit (lua/commit.lua, fenced: only confirmed chunks, only if the lock is still this beat's)
  observe reports each step (logs, metrics); controls serves the operator's pause / run-now; client builds Redis.

``install()`` makes ``redbeat.RedBeatScheduler`` — the name on the original's beat command line
(``celery -A alarm_backends.service.scheduler.app beat -S redbeat.RedBeatScheduler``) — resolve to
``patches.redbeat.schedulers.RedBeatScheduler``. The backend app calls it when its configuration is first read,
before beat looks the name up; the original switched its patch on only when that string appeared in ``sys.argv``.
"""

from __future__ import annotations

import redbeat
import redbeat.schedulers as stock
from celery.signals import beat_init

from patches.redbeat.client import get_redis
from patches.redbeat.schedulers import RedBeatScheduler


def install() -> None:
    """Point ``redbeat.RedBeatScheduler`` at the patched scheduler, and stock's client builder at the patched one
    (idempotent)."""
    redbeat.RedBeatScheduler = RedBeatScheduler
    stock.RedBeatScheduler = RedBeatScheduler
    # Stock's entries (save, from_key, delete, ...) look get_redis up in their module at each call: pointed here,
    # they use the scheduler's client (built from the lowercase settings), not a second one of stock's making.
    stock.get_redis = get_redis
    # Stock redbeat blocks in beat_init until it holds its lock; the patched scheduler leads from its ticks.
    beat_init.disconnect(stock.acquire_distributed_beat_lock)


__all__ = ["RedBeatScheduler", "install"]
