"""The benchmarks' pure helpers: statistics, Redis INFO deltas, message parsing, the generated schedules."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bench import beat_burst, common, stats


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 50) == 3.0
    assert stats.percentile(values, 100) == 5.0
    assert stats.percentile(values, 99) == pytest.approx(4.96)
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([], 50) is None


def test_per_and_rnd_pass_missing_values_through() -> None:
    assert stats.per(8008, 1000) == 8.008
    assert stats.per(None, 10) is None
    assert stats.per(5, 0) is None
    assert stats.rnd(None) is None
    assert stats.rnd(1.23456, 2) == 1.23


def test_redis_delta_leaves_out_our_info_and_counts_script_commands() -> None:
    before = common.RedisSnapshot(0.0, 100, {"info": 7, "hget": 10, "evalsha": 1, "get": 1})
    after = common.RedisSnapshot(1.0, 103, {"info": 8, "hget": 12, "evalsha": 2, "get": 2, "pexpire": 1})
    delta = common.redis_delta(before, after)
    # evalsha + the get and pexpire it ran + 2 hget; the INFO that took the second snapshot is not the beat's
    assert delta["commands"] == 5
    assert delta["script_calls"] == 1
    assert delta["round_trips"] == 2
    assert list(delta["per_command"]) == ["hget", "evalsha", "get", "pexpire"]


def test_parse_message_reads_the_due_slot_from_a_patched_task_id() -> None:
    body = json.dumps([["e0042"], {}, {"callbacks": None}]).encode()
    msg = common.parse_message(body, {"id": "e0042@1795447140", "bench_pub_ts": 1795447140.25, "bench_pid": 12})
    assert (msg["name"], msg["due_ts"], msg["pub_ts"], msg["pid"]) == ("e0042", 1795447140.0, 1795447140.25, 12)
    assert msg["size"] == len(body)


def test_parse_message_prefers_the_stamped_due_and_tolerates_uuids() -> None:
    body = json.dumps([["e1"], {}, {}])
    stamped = common.parse_message(body, {"id": "5d3c0b9e-uuid", "bench_due_ts": 12.34567})
    assert stamped["due_ts"] == 12.346
    assert common.parse_message(body, {"id": "5d3c0b9e-7e4f-4f7e-9d2b-0c1d2e3f4a5b"})["due_ts"] is None
    assert common.parse_message(b"not json", None)["name"] is None


@pytest.mark.parametrize("kind", ["minutely", "cron_minute", "interval"])
def test_build_schedule_names_and_arguments(kind: str) -> None:
    schedule = common.build_schedule({"count": 12, "kind": kind, "minute": 61, "interval": 3600})
    assert list(schedule)[:2] == ["e00", "e01"]
    assert len(schedule) == 12
    assert all(entry["args"] == (name,) and entry["task"] == "bench.noop" for name, entry in schedule.items())


def test_cron_minute_entries_created_at_any_time_in_the_hour_before_share_one_due_instant() -> None:
    entry = common.build_schedule({"count": 1, "kind": "cron_minute", "minute": 7})["e0"]
    due = dt.datetime(2026, 1, 1, 10, 7, tzinfo=dt.UTC)
    for created in (due - dt.timedelta(minutes=59), due - dt.timedelta(seconds=20), due - dt.timedelta(seconds=1)):
        schedule = entry["schedule"]
        schedule.nowfun = lambda created=created: created
        assert created + schedule.remaining_estimate(created) == due


def test_build_schedule_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown schedule kind"):
        common.build_schedule({"count": 1, "kind": "hourly"})


def test_next_t0_leaves_at_least_the_margin() -> None:
    assert beat_burst.next_t0(1000 * 60 + 10.0, 14.0) == 1001 * 60
    assert beat_burst.next_t0(1000 * 60 + 50.0, 14.0) == 1002 * 60
    assert beat_burst.default_margin(10000) > beat_burst.default_margin(1000)


def test_burst_figures_from_publish_stamps() -> None:
    t0 = 600.0
    msgs = [{"name": f"e{i}", "pub_ts": t0 + 0.5 + i * 0.01, "size": 83} for i in range(101)]
    figures = beat_burst.burst_figures(msgs, t0, 101)
    assert figures["first_published_s"] == 0.5
    assert figures["all_published_s"] == 1.5
    assert figures["dispatch_rate_per_s"] == 100.0
    assert figures["missing"] == 0
    assert figures["repeats"] == 0
    assert figures["message_body_bytes"] == 83


def test_tree_cpu_counts_a_processs_children_live_and_reaped() -> None:
    """bench/worker_cost.py's CPU per run: the kernel's own accounting (``resource``) is the oracle."""
    import os
    import resource
    import subprocess
    import sys

    from bench.worker_cost import tree_cpu
    from tests.integration.conftest import wait_for

    burn = [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"]
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run({burn!r}); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        # Once the child that burned 0.3 s is reaped, it counts in its parent's figures.
        wait_for(lambda: tree_cpu(parent.pid) >= 0.3, 30, "the reaped child's CPU in its parent's")
        assert tree_cpu(parent.pid) < 5
    finally:
        parent.communicate(b"", timeout=30)
    ours = resource.getrusage(resource.RUSAGE_SELF)
    assert tree_cpu(os.getpid()) >= ours.ru_utime + ours.ru_stime - 0.05  # at least our own time
