"""Overlap policies on a real worker, on the Redis broker and on RabbitMQ: a job that runs 2.5 times its period under
each policy, slots published as the patched beat publishes them (``<entry>@<due>``, the deadline header), and a worker
killed mid-run (its entry runs again within one lease)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

from alarm_backends.core.runlog import RunLogEntry, stream_key
from alarm_backends.core.storage.redis import LOG, SERVICE, get_client
from alarm_backends.service.scheduler.overlap.lease import lease_key, totals_key
from config.tools.rabbitmq import RabbitMQSettings
from tests.integration.conftest import TEST_CRONTAB, Worker, wait_for
from tests.integration.jobs import SLOW_KEY
from tests.metrics import metric_samples

PREFIX = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_"
PERIOD, JOB, LEASE = 2, 5.0, 3  # the job runs 2.5 periods; a lease of 3 s is renewed every second
SLOTS = 4
POLICIES = {"allow": "slow_allow", "skip": "slow_skip", "buffer_one": "slow_buffer", "replace": "slow_replace"}
TASKS = {policy: PREFIX + job for policy, job in POLICIES.items()}
CRONTAB = [*TEST_CRONTAB] + [
    [f"tests.integration.jobs.{job}", "* * * * *", "global", {"overlap": policy}] for policy, job in POLICIES.items()
]
WORKER_ENV = {
    "BKAPP_SETTINGS_DEFAULT_CRONTAB": json.dumps(CRONTAB),
    "BKAPP_SETTINGS_CRON_RUN_LEASE": str(LEASE),
    "SLOW_JOB_SECONDS": str(JOB),
}


@dataclass
class Broker:
    sender: Celery
    env: dict[str, str]


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request: pytest.FixtureRequest, redis_dbs: None) -> Iterator[Broker]:
    if request.param == "redis":
        from alarm_backends.service.scheduler.app import app

        yield Broker(app, {})
        return
    vhost = request.getfixturevalue("rabbitmq_vhost")
    sender = Celery("sender", broker=RabbitMQSettings("127.0.0.1", 5672, vhost, "guest", "guest").broker_url())
    sender.conf.task_serializer = "json"
    env = {
        "BK_MONITOR_RABBITMQ_HOST": "127.0.0.1",
        "BK_MONITOR_RABBITMQ_PORT": "5672",
        "BK_MONITOR_RABBITMQ_VHOST": vhost,
        "BK_MONITOR_RABBITMQ_USERNAME": "guest",
        "BK_MONITOR_RABBITMQ_PASSWORD": "guest",
    }
    try:
        yield Broker(sender, env)
    finally:
        sender.close()


def publish(sender: Celery, task: str, due: int, valid: float = 300.0) -> str:
    """One slot as the patched beat publishes it: its id, and its deadline on the Redis clock."""
    slot = f"{task}@{due}"
    seconds, micros = get_client(SERVICE).time()
    deadline = round(seconds + micros / 1e6 + valid, 3)
    sender.send_task(task, queue="celery_cron", task_id=slot, headers={"bkm_deadline": deadline})
    return slot


def pace(start: float, k: int) -> None:
    """Until the k-th period after ``start``: the slots' own timing (a beat's clock), not a synchronisation."""
    time.sleep(max(0.0, start + k * PERIOD - time.monotonic()))


def events() -> dict[str, dict[str, float]]:
    """Each slot's job events: ``{slot: {"start": t, "end": t}}``."""
    seen: dict[str, dict[str, float]] = {}
    for line in get_client(SERVICE).lrange(SLOW_KEY, 0, -1):
        event, slot, at = str(line).split()
        seen.setdefault(slot, {})[event] = float(at)
    return seen


def most_at_once(seen: dict[str, dict[str, float]], slots: list[str], until: float) -> int:
    """The most runs of ``slots`` running at one time (an unfinished run runs until ``until``)."""
    edges = []
    for slot in slots:
        if "start" in seen.get(slot, {}):
            edges += [(seen[slot]["start"], 1), (seen[slot].get("end", until), -1)]
    running = most = 0
    for _, step in sorted(edges):
        running += step
        most = max(most, running)
    return most


def outcomes() -> dict[str, list[str]]:
    """What the run log says of each slot, in order."""
    said: dict[str, list[str]] = {}
    for _, fields in get_client(LOG).xrange(stream_key()) or []:
        entry = RunLogEntry.from_fields(fields)
        if entry.slot:
            said.setdefault(entry.slot, []).append(entry.status)
    return said


def test_each_policy_with_a_job_running_two_and_a_half_periods(
    broker: Broker, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    worker = start_worker(concurrency=8, **WORKER_ENV, **broker.env)
    base = 1_795_000_000 + random.randrange(1_000_000) * 10
    slots: dict[str, list[str]] = {policy: [] for policy in POLICIES}
    start = time.monotonic()
    for k in range(SLOTS):  # at 0, 2, 4 and 6 s; each run takes 5 s
        pace(start, k)
        for policy, task in TASKS.items():
            slots[policy].append(publish(broker.sender, task, base + k * PERIOD))
    s0, s1, s2, s3 = slots["buffer_one"]
    expected = {
        # allow: every slot runs, three at once.
        **{slot: ["success"] for slot in slots["allow"]},
        # skip: the two slots published while the first runs are not run; the fourth comes after it ended.
        **dict(zip(slots["skip"], [["success"], ["skipped"], ["skipped"], ["success"]], strict=True)),
        # buffer_one: the second waits and runs when the first ends; the third finds one waiting already and is
        # skipped; the fourth waits for the second (which runs until 10 s) and runs after it.
        s0: ["success"], s1: ["buffered", "success"], s2: ["skipped"], s3: ["buffered", "success"],
        # replace: each slot terminates the one before (logged replaced, then its stopped run failed); the last runs
        # to its end.
        **dict(zip(slots["replace"], [["replaced", "failed"]] * 3 + [["success"]], strict=True)),
    }  # fmt: skip

    def settled() -> bool:
        said = outcomes()
        return all(said.get(slot) == statuses for slot, statuses in expected.items())

    try:
        wait_for(settled, 60, "every slot's outcome in the run log")
    except AssertionError:
        raise AssertionError(f"{outcomes()}\n{worker.log()[-6000:]}") from None
    seen = events()
    until = time.time()
    assert most_at_once(seen, slots["allow"], until) == 3  # the job does overlap itself when allowed
    for policy in ("skip", "buffer_one"):
        assert most_at_once(seen, slots[policy], until) == 1, (policy, seen)
    # Buffered runs start as the run they waited for ends (its hand-off), not a lease later (the reminder).
    assert seen[s1]["start"] - seen[s0]["end"] < 1.0
    assert seen[s3]["start"] - seen[s1]["end"] < 1.0
    # Replaced runs were terminated: started, never ended, and each start is after the one before was stopped.
    replaced = slots["replace"]
    assert [("start" in seen[slot], "end" in seen[slot]) for slot in replaced] == [(True, False)] * 3 + [(True, True)]
    assert f"Terminating {replaced[0]}" in worker.log()
    samples = metric_samples(tmp_path / "metrics")

    def counted(policy: str, outcome: str) -> float:
        labels = (("outcome", outcome), ("policy", policy), ("task_name", TASKS[policy]))
        return samples.get(("bkmonitor_cron_overlap_total", labels), 0)

    assert [counted("skip", "skipped"), counted("buffer_one", "buffered"), counted("buffer_one", "skipped"),
            counted("replace", "replaced")] == [2, 2, 1, 3]  # fmt: skip
    assert not any(key[0] == "bkmonitor_cron_overlap_total" and ("policy", "allow") in key[1] for key in samples)
    # The schedule view's totals, kept beside the lease; the lease is free once the last run ended.
    totals = {policy: get_client(SERVICE).hgetall(totals_key(TASKS[policy])) for policy in POLICIES}
    assert totals == {"allow": {}, "skip": {"skipped": "2"}, "buffer_one": {"buffered": "2", "skipped": "1"},
                      "replace": {"replaced": "3"}}  # fmt: skip
    assert not any(get_client(SERVICE).exists(lease_key(TASKS[policy])) for policy in POLICIES)


def test_a_worker_killed_mid_run_frees_its_entry_within_one_lease(
    broker: Broker, start_worker: Callable[..., Worker]
) -> None:
    """The dead run's lease keeps the entry for at most one lease: the slots published meanwhile are skipped, and the
    entry runs again (a newer slot, or the killed slot's redelivery, retried when the lease ran out) within one lease
    of the kill and a slot's wait — never two runs at once, never stuck."""
    task = TASKS["skip"]
    first = start_worker(concurrency=2, **WORKER_ENV, **broker.env)
    base = 1_796_000_000 + random.randrange(1_000_000) * 10
    killed_slot = publish(broker.sender, task, base)
    wait_for(lambda: "start" in events().get(killed_slot, {}), 30, "the first run to start")
    wait_for(lambda: get_client(SERVICE).pttl(lease_key(task)) > 0, 10, "its lease")
    os.killpg(first.proc.pid, signal.SIGKILL)  # the worker and its pool, mid-run: no release
    first.proc.wait(10)
    killed, killed_at = time.monotonic(), time.time()
    first_start = events()[killed_slot]["start"]
    start_worker(concurrency=2, **WORKER_ENV, **broker.env)
    # A slot a second, as a beat of a one-second entry would publish, until a run starts after the kill.
    sent: list[str] = []

    def restarted() -> list[str]:
        seen = events()
        return [slot for slot in [killed_slot, *sent] if seen.get(slot, {}).get("start", 0) > killed_at]

    while not restarted() and time.monotonic() - killed < 3 * LEASE:
        sent.append(publish(broker.sender, task, base + 10 * (len(sent) + 1)))
        time.sleep(max(0.0, killed + len(sent) - time.monotonic()))  # the slots' own pace, as above
    found = restarted()
    assert found, f"no run in {3 * LEASE}s after the kill: {outcomes()}"
    again = found[0]
    # Within one lease of the kill (its last renewal was at most a third of a lease before it), plus a slot's wait.
    started = events()[again]["start"]
    assert started - killed_at < LEASE + 1.5
    # Until then the dead run's lease held: every slot published before the restart was skipped, none ran.
    said = outcomes()
    waited = [slot for slot in sent if slot != again and said.get(slot)]
    assert waited and all(said[slot] == ["skipped"] for slot in waited), said
    # Not at once: the lease had at least two thirds of its length left at the kill (renewed every third).
    assert started > killed_at + LEASE / 3 > first_start


def test_a_redelivery_while_its_run_lives_is_not_run_beside_it(
    broker: Broker, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    """A long job's message delivered again while it runs (a broker's consumer timeout, a restarted worker's ETA
    reminder): the claim would let it take the slot over, but the run's lease is alive, so it waits for the lease and,
    that run having ended, is dropped — the slot runs once, and no duplicate delivery is counted."""
    task = TASKS["skip"]
    worker = start_worker(concurrency=2, **WORKER_ENV, **broker.env)
    slot = publish(broker.sender, task, 1_797_000_000 + random.randrange(1_000_000) * 10)
    wait_for(lambda: "start" in events().get(slot, {}), 30, "the run to start")
    # As the platform's retry of a redelivery carries it (the broker's own redelivered flag cannot be sent).
    broker.sender.send_task(task, queue="celery_cron", task_id=slot, headers={"bkm_takeover": 1})
    retried = "redelivered while its run holds the entry"
    wait_for(lambda: retried in worker.log(), 10, "the redelivery to wait for the lease")
    # Retried when the lease (3 s, renewed while the 5 s job runs) could run out, until the run has ended: dropped.
    wait_for(lambda: f"{slot}: already run or running" in worker.log(), 30, "the copy's last retry to be dropped")
    assert events()[slot].keys() == {"start", "end"}
    assert outcomes()[slot] == ["success"]
    samples = metric_samples(tmp_path / "metrics")
    assert not samples.get(("bkmonitor_beat_duplicate_dropped_total", (("task_name", task),)))
