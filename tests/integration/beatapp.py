"""A beat app for the failover tests: ``celery -A tests.integration.beatapp beat -S redbeat.RedBeatScheduler``.

Configured by the test through ``BEAT_TEST_QUEUE``, ``BEAT_TEST_ENTRIES`` (entries due every second) and
``BEAT_TEST_LOCK_TIMEOUT``; ``BEAT_TEST_LEADER_GATE=1`` gates it by the Consul ring leader check (Consul, host
address and ring settings come from the environment, as on a host). The patched scheduler is installed exactly as
the backend app installs it.
"""

from __future__ import annotations

import datetime as dt
import os

from celery.schedules import schedule

from alarm_backends.service.scheduler.config import LEADER_GATE
from patches import redbeat
from tests.integration.redbeat_helpers import make_app

redbeat.install()

app = make_app(
    {
        f"e{i:02d}": {"task": "t.every_second", "schedule": schedule(run_every=dt.timedelta(seconds=1))}
        for i in range(int(os.environ.get("BEAT_TEST_ENTRIES", "10")))
    },
    lock_timeout=float(os.environ.get("BEAT_TEST_LOCK_TIMEOUT", "3")),
    task_default_queue=os.environ["BEAT_TEST_QUEUE"],
    beat_max_loop_interval=1,
    redbeat_leader_gate=LEADER_GATE if os.environ.get("BEAT_TEST_LEADER_GATE") == "1" else "",
)
