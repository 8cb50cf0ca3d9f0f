"""An entry in a time zone of its own through the real scheduler and store: due at its zone's wall time (the first
fire time the oracle of tests/unit/test_zoned_crontab.py finds after the Redis clock), stored as the plain crontab a
stock beat reads, and listed with its zone."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from redbeat.decoder import RedBeatJSONDecoder

from alarm_backends.management.schedule import view
from alarm_backends.management.schedule.reader import Schedule
from patches.redbeat.schedulers import RedBeatScheduler
from patches.redbeat.zoned import ZonedCrontab
from tests.integration.redbeat_helpers import make_app, store
from tests.unit.test_zoned_crontab import oracle

pytestmark = pytest.mark.redis

ZONE = "America/New_York"


@pytest.mark.usefixtures("redis_dbs")
def test_a_zoned_entry_is_due_at_its_zones_wall_time_and_stored_as_a_plain_crontab() -> None:
    app = make_app({
        "ny": {"task": "t.ny", "schedule": ZonedCrontab("30", "2", zone=ZONE)},
        "utc": {"task": "t.utc", "schedule": crontab("30", "2")},
    })  # fmt: skip
    beat = RedBeatScheduler(app=app)
    try:
        beat.tick()
        seconds, _ = store().time()
        # The first 02:30 after now on each clock, found minute by minute over the next two days.
        [ny_first, *_] = oracle("30 2 * * *", ZONE, seconds, seconds + 2 * 86400)
        [utc_first, *_] = oracle("30 2 * * *", "UTC", seconds, seconds + 2 * 86400)
        assert store().zscore("redbeat::schedule", "redbeat:ny") == ny_first
        assert store().zscore("redbeat::schedule", "redbeat:utc") == utc_first
        assert dt.datetime.fromtimestamp(ny_first, ZoneInfo(ZONE)).strftime("%H:%M") in ("02:30", "03:00")

        # A stock beat reads the stored definition as the plain crontab it is (in its own app's zone).
        stored = json.loads(store().hget("redbeat:ny", "definition"), cls=RedBeatJSONDecoder)
        assert type(stored["schedule"]) is crontab and str(stored["schedule"]) == "<crontab: 30 2 * * * (m/h/dM/MY/d)>"

        # Listed with its zone; the other in the app's.
        _, rows = Schedule(app).listed(Schedule(app).controls.read())
        cells = {row.name: view.cells(row, seconds, dt.UTC) for row in rows}
        assert (cells["ny"]["cron"], cells["utc"]["cron"]) == (f"30 2 * * * ({ZONE})", "30 2 * * *")
    finally:
        beat.close()
