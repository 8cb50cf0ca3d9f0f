"""A rolling upgrade from the original, run for real: the original's stack (celery 5.4.0, stock celery-redbeat 2.2.0,
kombu 5.5.3, redis-py 4.6.0, in a virtualenv of its own) and this platform share one schedule store and one broker,
with 20 every-minute entries, on a Redis broker and on RabbitMQ at once (two fleets, in lockstep).

Minute by minute (M1 … M4 are the first four slots after the original's beat starts):

* M1  the original's beat leads; the platform's beat is started as a standby (a host upgraded first);
* M1 + 25 s  the original's beat is killed (-9): the platform's takes over within the minute, from a store whose
  scores stock wrote a second before each slot;
* M2  the platform leads; at M2 + 20 s a stock beat starts as a standby, and its start-up (``setup_schedule``)
  rewrites every definition and ZADDs "next slot - 1 s" without holding the lock;
* M3  the platform still leads; at M3 + 20 s it is killed (-9) and the stock standby takes over (a rollback);
* M4  the original's beat leads again, reading the runs the platform recorded.

Every slot of every entry runs exactly once, in its minute (a run fired at ``xx:59`` counts for the next minute,
so an early run and the on-time one show as a duplicate); the first slot is the first minute after the original's
beat started, as for any new entry on either side. With ``CELERY_SERIALIZER=pickle`` each side's worker runs
messages the other side's beat published, and neither refuses one.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.services import CeleryProcess
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT, TEST_DB_PLAN, TEST_REDBEAT_DB
from tests.upgrade import jobs
from tests.upgrade.fleet import CRONTAB, LEASE, ORIGINAL_LOOP, Fleet, Run, redis_url, task_name, wait_ready, wait_until
from tests.upstream import original

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.slow]

SLOTS = 4
# When, after a slot, the test acts: every run of the slot is done by then (20 runs of 0.2 s on two workers).
SETTLED = 25
# The latest second of a minute at which the original's beat may be started, so its start-up (about a second) ends
# inside the minute and its entries' first slot is the next one.
LATEST_START = 45
# A run starts at most this long after its slot (the beat's tick, the broker, the worker's queue); never before it.
LATE = 20.0
ON_TIME = 0.1  # the Redis and the wall clocks are one machine's


@pytest.fixture
def fleets(redis_dbs: None, rabbitmq_vhost: str, tmp_path: Path) -> Iterator[list[Fleet]]:
    # Fleet "redis" keeps the suite's DB plan (broker 13, service 14, store 15); fleet "rabbitmq" has its store in
    # 12 and its service DB (the workers' dedupe claims, named by task id and slot like fleet "redis"'s) in 11.
    on_redis = Fleet("redis", tmp_path, redis_url(TEST_DB_PLAN["queue"]), TEST_REDBEAT_DB, {})
    amqp = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{rabbitmq_vhost}"
    plan = '{"log": 11, "cache": 12, "queue": 13, "service": 11}'
    on_rabbitmq = Fleet(
        "rabbitmq",
        tmp_path,
        amqp,
        TEST_DB_PLAN["cache"],
        {
            "BK_MONITOR_RABBITMQ_HOST": RABBITMQ_HOST,
            "BK_MONITOR_RABBITMQ_PORT": str(RABBITMQ_PORT),
            "BK_MONITOR_RABBITMQ_VHOST": rabbitmq_vhost,
            "BK_MONITOR_RABBITMQ_USERNAME": "guest",
            "BK_MONITOR_RABBITMQ_PASSWORD": "guest",
            "BKAPP_SETTINGS_REDIS_DB_PLAN": plan,
        },
    )
    both = [on_redis, on_rabbitmq]
    try:
        yield both
    finally:
        for fleet in both:
            fleet.stop()


def each(fleets: list[Fleet], side: str, role: str) -> list[CeleryProcess]:
    python = str(original.ensure())
    return [fleet.start(side, role, python) for fleet in fleets]


def describe(fleet: Fleet) -> str:
    return "\n".join(f"--- {name}\n{log[-4000:]}" for name, log in fleet.logs())


@pytest.mark.timeout(600)
def test_leadership_original_platform_original_runs_every_slot_once(fleets: list[Fleet]) -> None:
    for worker in [*each(fleets, "original", "worker"), *each(fleets, "platform", "worker")]:
        wait_ready(worker)
    if time.time() % 60 > LATEST_START:
        wait_until((time.time() // 60 + 1) * 60 + 1, "the next minute")
    first = (time.time() // 60 + 1) * 60
    slots = [first + 60 * i for i in range(SLOTS)]

    # M1: the original leads, an upgraded host's beat stands by.
    stock = each(fleets, "original", "beat")
    for beat in stock:
        beat.wait_logged("beat: Acquired lock", 15)
    upgraded = each(fleets, "platform", "beat")
    for beat in upgraded:
        beat.wait_logged("beat: Starting...", 60)

    # Killed between slots; the platform takes over inside the minute.
    wait_until(slots[0] + SETTLED, "M1's runs")
    for beat in stock:
        beat.kill()
    for beat in upgraded:
        beat.wait_logged("acquired the lock", LEASE + 5)
    assert time.time() < slots[1] - 5, "the take-over was not inside the minute"

    # M2: a stock beat starts as a standby and writes its own scores (a second before M3) while the platform leads.
    wait_until(slots[1] + SETTLED, "M2's runs")
    standby = each(fleets, "original", "beat")
    for fleet in fleets:
        fleet.wait_scores({slots[2] - 1}, 30)
    for beat in standby:
        assert not beat.logged("beat: Acquired lock")

    # M3: the platform is killed; the stock standby takes over (the rollback).
    wait_until(slots[2] + SETTLED, "M3's runs")
    for beat in upgraded:
        beat.kill()
    for beat in standby:
        beat.wait_logged("beat: Acquired lock", LEASE + ORIGINAL_LOOP + 5)
    assert time.time() < slots[3] - 5, "the rollback was not inside the minute"

    # M4: the original leads again. Then every published message runs: the beats stop, the queues empty, and each
    # worker (prefetching one message at a time) finishes the run it holds as it stops.
    wait_until(slots[3] + SETTLED, "M4's runs")
    for beat in standby:
        beat.stop()
    for fleet in fleets:
        fleet.wait_drained(30)
    for fleet in fleets:
        fleet.stop()

    for fleet in fleets:
        check_runs(fleet, slots)


def check_runs(fleet: Fleet, slots: list[float]) -> None:
    runs = fleet.runs()
    context = f"fleet {fleet.name}\n{describe(fleet)}"
    assert fleet.waiting() == 0, context
    counts = collections.Counter((run.job, run.slot) for run in runs)
    expected = {(jobs.name(i), int(slot)) for i in range(jobs.ENTRIES) for slot in slots}
    assert {key for key, n in counts.items() if n > 1} == set(), f"duplicated runs: {context}"
    assert set(counts) - expected == set(), f"runs no slot asked for: {context}"
    assert expected - set(counts) == set(), f"lost runs: {context}"
    late = [run for run in runs if not -ON_TIME <= run.ts - run.slot <= LATE]
    assert late == [], f"runs outside their minute's first {LATE:.0f}s: {context}"

    # Who published each slot: stock beats (uuids) at M1 and M4, the platform (``<task>@<slot>``) at M2 and M3.
    by_slot: dict[int, set[bool]] = collections.defaultdict(set)
    for run in runs:
        by_slot[run.slot].add(run.by_platform)
    assert [by_slot[int(slot)] for slot in slots] == [{False}, {True}, {True}, {False}], context
    assert all(run.id == f"{task_name(path(run))}@{run.slot}" for run in runs if run.by_platform), context

    # Pickle both ways: each side's worker ran messages the other side's beat published, and none was refused.
    assert any(run.side == "original" and run.by_platform for run in runs), "no platform message ran on the original"
    assert any(run.side == "platform" and not run.by_platform for run in runs), "no stock message ran on the platform"
    for name, log in fleet.logs():
        assert "Refusing to deserialize" not in log and "refused a" not in log, f"{name}:\n{log[-4000:]}"


def path(run: Run) -> str:
    return next(entry[0] for entry in CRONTAB if entry[0].rpartition(".")[2] == run.job)
