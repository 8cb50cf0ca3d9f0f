"""``beat_schedule backfill``: the slots of a past range published under the scheduler's slot ids, one after
another or all at once, bounded; and on a real worker, run one at a time with a slot that already ran dropped."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab
from django.core.management.base import CommandError

from alarm_backends.core import runlog
from alarm_backends.core.storage.redis import SERVICE, get_client
from alarm_backends.service.scheduler import dedupe
from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.beat_schedule.helpers import QUEUE, as_backend_app, cli
from tests.integration.conftest import Worker, wait_for
from tests.integration.redbeat_helpers import ids, published
from tests.integration.test_overlap import WORKER_ENV, events, most_at_once, outcomes

pytestmark = pytest.mark.redis

SLOW = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_slow_allow"


def minutes_ago(now: float, n: int) -> float:
    return (int(now) // 60 - n) * 60


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def test_a_backfill_publishes_each_slot_once_under_the_scheduler_s_id(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    beat = beats()
    beat.tick()  # the leader syncs the entries into the store
    now = get_client(SERVICE).time()[0]
    start, end = minutes_ago(now, 5), minutes_ago(now, 1)
    every = [f"minutely@{int(start) + 60 * n}" for n in range(5)]  # the slot ids the scheduler gives
    # The run log says the second one ran (its claim long gone): it is left out, the others are published.
    runlog.record_run("t.minutely", QUEUE, "success", 0.1, slot=every[1])
    expected = [every[0], *every[2:]]
    before = len(ids(QUEUE))

    out, _ = cli("backfill", "minutely", "--from", iso(start), "--to", iso(end), "--dry-run")
    assert out.splitlines()[0].startswith("1 slot(s) from ") and out.splitlines()[0].endswith("left out")
    assert [line.split()[-1] for line in out.splitlines()[1:-1]] == expected
    assert "4 slot(s)" in out and len(ids(QUEUE)) == before  # nothing published

    out, _ = cli("backfill", "minutely", "--from", iso(start), "--to", iso(end), "--overlap", "allow")
    assert "published 4 slot(s) of minutely" in out and f"{expected[0]} to {expected[-1]}" in out
    messages = published(QUEUE)[before:]
    assert [m["headers"]["id"] for m in messages] == expected
    # No expiry (a pool that is down runs it when back), and the backfill's own policy over the entry's.
    assert {(m["headers"]["expires"], m["headers"]["bkm_overlap"]) for m in messages} == {(None, "allow")}

    # Sequential: the first run alone is sent; the rest ride in its chain, in slot order.
    before = len(ids(QUEUE))
    cli("backfill", "minutely", "--from", iso(start), "--to", iso(end))
    [first] = published(QUEUE)[before:]
    assert first["headers"]["id"] == expected[0]
    _, _, embed = json.loads(base64.b64decode(first["body"]))
    assert [step["options"]["task_id"] for step in reversed(embed["chain"])] == expected[1:]


def test_an_interval_entry_is_refused(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    with pytest.raises(CommandError, match=r"backfill of hourly: its schedule \(<freq: 1.00 hour>\) is not a crontab"):
        cli("backfill", "hourly", "--from", "2026-01-01T00:00", "--to", "2026-01-02T00:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-01-01T00:00", "--to", "2099-01-01T00:00"), "--to is in the future"),
        (("--from", "2020-01-01T00:00", "--to", "2020-01-02T00:00"), "more than 100 slots of minutely"),
        (("--from", "2020-01-01T00:00", "--to", "2020-01-02T00:00", "--limit", "5000"), "--limit 5000: expected 1"),
        (("--from", "last week", "--to", "2020-01-02T00:00"), "'last week' is not an ISO 8601 time"),
    ],
)
def test_a_backfill_refuses_naming_why(
    app: Celery, beats: Callable[..., RedBeatScheduler], args: tuple[str, ...], message: str
) -> None:
    beats().tick()
    before = len(ids(QUEUE))
    with pytest.raises(CommandError, match=f"backfill of minutely: .*{message}"):
        cli("backfill", "minutely", *args)
    assert len(ids(QUEUE)) == before


@pytest.mark.parametrize(("rule", "most"), [("sequential", 1), ("allow", 4)])
def test_on_a_worker_a_sequential_backfill_runs_one_at_a_time_and_a_slot_that_ran_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
    redis_dbs: None,
    beats: Callable[..., RedBeatScheduler],
    start_worker: Callable[..., Worker],
    tmp_path: Path,
    rule: str,
    most: int,
) -> None:
    # The platform's slow job (one second a run) as a minutely entry on the worker's queue.
    made = as_backend_app(monkeypatch, slow={"task": SLOW, "schedule": crontab(minute="*"),
                                             "options": {"queue": "celery_cron"}})  # fmt: skip
    beats(made).tick()
    start_worker(concurrency=4, **(WORKER_ENV | {"SLOW_JOB_SECONDS": "1"}))
    now = get_client(SERVICE).time()[0]
    start, end = minutes_ago(now, 5), minutes_ago(now, 1)
    slots = [f"slow@{int(start) + 60 * n}" for n in range(5)]
    get_client(SERVICE).set(dedupe.claim_key(slots[2]), dedupe.DONE)  # that slot already ran

    cli("backfill", "slow", "--from", iso(start), "--to", iso(end), "--overlap", rule)
    ran = [slot for n, slot in enumerate(slots) if n != 2]
    wait_for(lambda: all("end" in events().get(slot, {}) for slot in ran), 60, "the backfill's runs")
    seen = events()
    assert slots[2] not in seen
    assert most_at_once(seen, ran, max(s["end"] for s in seen.values())) == most
    if rule == "sequential":
        assert sorted(ran, key=lambda slot: seen[slot]["start"]) == ran  # in slot order
    wait_for(lambda: outcomes().get(slots[2]) == ["duplicate"], 10, "the slot that ran to be dropped")
