"""Two real beat processes: a killed leader is replaced within the lease, a paused one is fenced out.

The exact failover figures are measured by ``bench/``; the bounds here are generous so a loaded machine does not
fail them, and what they prove is that nothing is published twice and a stale leader writes nothing.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.beatproc import Beat
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import broker, duplicates, store
from tests.metrics import metric_samples, value

pytestmark = pytest.mark.redis

LOCK_TIMEOUT = 3.0


def ticks(metrics_dir: Path) -> float:
    """How many ticks a beat has made (its tick-duration histogram's count): a standby's tick asks for the lock."""
    return value(metric_samples(metrics_dir), "bkmonitor_beat_tick_duration_seconds_count")


def more_ticks(metrics_dir: Path, what: str, count: int = 2) -> None:
    """Until the beat writing ``metrics_dir`` has ticked ``count`` more times: what it does next has been done."""
    seen = ticks(metrics_dir)
    wait_for(lambda: ticks(metrics_dir) >= seen + count, 15, f"{count} more ticks of {what}")


def start_beat(name: str, queue: str, tmp: Path) -> Beat:
    """A beat writing its metrics to ``tmp/metrics-<name>``."""
    metrics = tmp / f"metrics-{name}"
    metrics.mkdir()
    return Beat(name, queue, tmp, LOCK_TIMEOUT, PROMETHEUS_MULTIPROC_DIR=str(metrics))


@pytest.fixture
def beats(redis_dbs: None, tmp_path: Path) -> Iterator[tuple[Beat, Beat, str]]:
    queue = f"bkm-test-failover-{uuid.uuid4().hex[:8]}"
    first = start_beat("a", queue, tmp_path)
    wait_for(lambda: first.logged("acquired the lock"), 30, "beat a to lead")
    second = start_beat("b", queue, tmp_path)
    wait_for(lambda: "beat: Starting..." in second.log(), 30, "beat b to start")
    wait_for(lambda: ticks(tmp_path / "metrics-b") >= 2, 30, "beat b to ask for the lock twice")
    try:
        yield first, second, queue
    finally:
        first.stop()
        second.stop()
        broker().delete(queue)


def test_kill_9_of_the_leader_hands_over_within_the_lease(beats: tuple[Beat, Beat, str], tmp_path: Path) -> None:
    leader, standby, queue = beats
    assert not standby.logged("acquired the lock")
    assert leader.logged("acquired the lock redbeat::lock (free, ttl 3s)")
    first = store().hgetall("redbeat::leader")
    assert first["token"].startswith(f"{socket.gethostname()}:{leader.proc.pid}:") and first["terms"] == "1"
    killed_at = time.time()
    leader.signal(signal.SIGKILL)
    wait_for(lambda: standby.logged("acquired the lock"), LOCK_TIMEOUT + 10, "the standby to lead")
    assert time.time() - killed_at <= LOCK_TIMEOUT + 3
    wait_for(lambda: "Sent " in standby.log(), 10, "the new leader to dispatch")
    more_ticks(tmp_path / "metrics-b", "the new leader")
    assert duplicates(queue) == []
    # The take-over is told apart from a first start: in its log line, the leader record and the failovers counter.
    assert standby.logged("acquired the lock redbeat::lock (failover: the last leader's lease ran out, ttl 3s)")
    record = store().hgetall("redbeat::leader")
    assert record["token"].startswith(f"{socket.gethostname()}:{standby.proc.pid}:")
    assert (record["previous"], record["terms"]) == (first["token"], "2")
    assert 0 < time.time() - float(record["since"]) < 20
    samples = metric_samples(tmp_path / "metrics-b")
    assert value(samples, "bkmonitor_beat_failovers_total") == 1
    assert value(samples, "bkmonitor_beat_leader") == 1
    assert value(samples, "bkmonitor_beat_dispatch_lateness_seconds_count") > 0
    assert value(samples, "bkmonitor_beat_dispatched_total", kind="slot") > 0
    assert value(metric_samples(tmp_path / "metrics-a"), "bkmonitor_beat_failovers_total") == 0


def test_a_paused_leader_is_fenced_out_after_the_standby_took_over(
    beats: tuple[Beat, Beat, str], tmp_path: Path
) -> None:
    leader, standby, queue = beats
    leader.signal(signal.SIGSTOP)
    wait_for(lambda: standby.logged("acquired the lock"), LOCK_TIMEOUT + 10, "the standby to lead")
    wait_for(lambda: "Sent " in standby.log(), 10, "the new leader to dispatch")
    resumed = len(leader.log())
    leader.signal(signal.SIGCONT)
    wait_for(lambda: "lost leadership" in leader.log()[resumed:], 15, "the old leader to step down")
    # Its renewal failed once it ran again: counted, and it no longer reads as a leader.
    samples = metric_samples(tmp_path / "metrics-a")
    assert value(samples, "bkmonitor_beat_lock_renew_failures_total") >= 1
    assert value(samples, "bkmonitor_beat_leader") == 0
    more_ticks(tmp_path / "metrics-a", "the resumed beat")
    after = leader.log()[resumed:]
    assert "Sent " not in after, after  # it published nothing once resumed
    assert "schedule synced" not in after
    assert duplicates(queue) == []
