"""The start-up sync of a schedule that takes longer than the lease: the leader renews it between slices.

With 1M entries the sync takes ~40 s here, past the 30 s lease: without renewals the lock expired under it, the
fenced writes of the last slices were refused, and every later tick lost the lock and synced again, for ever. Here a
slow store (each slice's read held back), one entry per slice and a 1 s lease stand in for that size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.schedules import crontab

from patches.redbeat import schedulers
from patches.redbeat.schedulers import RedBeatScheduler
from patches.redbeat.store import Store
from tests.integration.redbeat_helpers import make_app, store

pytestmark = pytest.mark.redis

ENTRIES, LEASE, SLICE_SECONDS = 12, 1.0, 0.15  # the sync takes ~1.8 s: nearly twice the lease


@pytest.fixture(autouse=True)
def clean(redis_dbs: None) -> Iterator[None]:
    yield


def test_a_sync_longer_than_the_lease_renews_it_and_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedulers, "SEED_SLICE", 1)
    read_metas = Store.read_metas

    def slow_read(self: Store, names: Any) -> Any:
        time.sleep(SLICE_SECONDS)  # a slow store: the fault under test, not a wait for something
        return read_metas(self, names)

    monkeypatch.setattr(Store, "read_metas", slow_read)
    hourly = {"task": "t.hourly", "schedule": crontab(minute="0")}
    app = make_app({f"e{i:02d}": hourly for i in range(ENTRIES)}, lock_timeout=LEASE)
    beat = RedBeatScheduler(app=app)
    started = time.monotonic()
    beat.tick()
    took = time.monotonic() - started
    client = store()
    assert took > LEASE, took  # the sync did outlast the lease
    assert client.get("redbeat::lock") == beat.token  # and the lock is still this beat's
    assert client.zcard("redbeat::schedule") == ENTRIES and client.scard("redbeat::statics") == ENTRIES
    assert beat.leading
    beat.close()
