"""The benchmark runner's plan and tables, and the failover analysis, on made-up figures: no services."""

from __future__ import annotations

import argparse
from typing import Any

from bench import beat_failover, run


def args(**overrides: Any) -> argparse.Namespace:
    base = {"parts": list(run.DEFAULT_PARTS), "quick": False, "broker": "amqp://127.0.0.1//", "redis": "private"}
    return argparse.Namespace(**{**base, **overrides})


def test_ratio_is_oriented_so_that_above_one_favours_the_second_variant() -> None:
    assert run.ratio(15.6, 1.2, run.LOWER) == ("13.00x", "first/second")
    assert run.ratio(900.0, 9000.0, run.HIGHER) == ("10.00x", "second/first")
    assert run.ratio(0, 3, run.LOWER) == ("", "")
    assert run.ratio(1, 2, None) == ("", "")


def test_fmt() -> None:
    assert run.fmt(None) == "-"
    assert run.fmt(9013) == "9,013"
    assert run.fmt(1520.8) == "1,520.8"
    assert run.fmt(0.8764) == "0.876"
    assert run.fmt(True) == "True"


def test_table_has_one_column_per_variant_and_names_the_ratio() -> None:
    text = run.table(
        "Burst",
        [("all_published_s", "all published (s)", run.LOWER), ("missing", "missing", None)],
        {"stock": {"all_published_s": 15.6, "missing": 0}, "patched": {"all_published_s": 1.2, "missing": 0}},
    )
    lines = text.splitlines()
    assert lines[2] == "| | stock | patched | ratio | as |"
    assert "| all published (s) | 15.6 | 1.2 | 13.00x | stock/patched |" in lines
    assert "| missing | 0 | 0 |  |  |" in lines


def test_table_reports_a_failed_run() -> None:
    text = run.table("Idle", [("x", "x", run.LOWER)], {"stock": {"x": 1}, "patched": {"error": "boom"}})
    assert "*patched: boom*" in text


def test_plan_pins_bursts_and_fills_with_the_rest() -> None:
    bursts, fillers = run.plan(args(), ["stock", "patched"])
    assert [(j.key, j.variant) for j in bursts] == [
        ("1000", "stock"),
        ("1000", "patched"),
        ("10000", "stock"),
        ("10000", "patched"),
    ]
    assert [j.part for j in fillers] == ["kombu", "failover", "failover"] + ["idle"] * 6
    assert [j.key for j in fillers if j.part == "idle"] == ["1000", "1000", "10000", "10000", "100000", "100000"]


def test_plan_quick_and_a_same_variant_twice() -> None:
    bursts, fillers = run.plan(args(quick=True, parts=["burst", "idle"]), ["stock", "stock"])
    assert [(j.key, j.variant) for j in bursts] == [("1000", "stock"), ("1000", "stock#2")]
    assert [(j.key, j.variant) for j in fillers] == [("1000", "stock"), ("1000", "stock#2")]


def msg(name: str, pid: int, pub: float, due: float, task_id: str = "") -> dict[str, Any]:
    return {"name": name, "pid": pid, "pub_ts": pub, "due_ts": due, "id": task_id or f"{name}-{pub}"}


def test_failover_analysis() -> None:
    ns = argparse.Namespace(pre=6.0, post=12.0, interval=2.0)
    msgs = [msg("a", 1, t, t) for t in (100.0, 102.0, 104.0)]  # the holder, killed at 105
    msgs += [msg("a", 2, 109.5, 106.0), msg("a", 2, 111.5, 111.5)]  # the other beat takes over at 109.5
    msgs += [msg("a", 1, 109.6, 106.0, task_id="a-109.5")]  # the same slot again, with the same task id
    result = beat_failover.analyse(msgs, 105.0, 105.0, ns, holder=1, other=2)
    assert result["failover_s"] == 4.5
    assert result["duplicates"] == 1
    assert result["duplicate_task_ids"] == 1
    assert result["max_gap_s"] == 5.5
    assert result["missed_slots"] == 2  # the 5.5 s gap spans about three intervals
    assert result["stale_dispatches"] == 1
    assert result["leader_changes"] == 3  # holder → other → the resumed holder (stale) → other


def test_leader_changes_counts_switches_of_the_publishing_pid() -> None:
    msgs = [msg("a", pid, t, t) for pid, t in ((1, 1.0), (1, 2.0), (2, 3.0), (2, 4.0), (1, 5.0), (2, 50.0))]
    assert beat_failover.leader_changes(msgs, 0.0, 10.0) == 2
    assert beat_failover.leader_changes(msgs, 4.5, 10.0) == 0


def test_a_variant_that_ran_the_other_scheduler_is_an_error() -> None:
    cases = [("stock", "patches.redbeat.schedulers.RedBeatScheduler", "the stock variant ran the patched"),
             ("patched", "redbeat.schedulers.RedBeatScheduler", "the patched variant ran the stock"),
             ("stock", "redbeat.schedulers.RedBeatScheduler", None),
             ("patched", "patches.redbeat.schedulers.RedBeatScheduler", None)]  # fmt: skip
    for variant, ran, error in cases:
        job = run.Job("burst", "1000", variant, 1.0, lambda ran=ran: {"scheduler_class": ran})  # type: ignore[misc]
        run.execute(job, 0.0)
        assert (error in job.summary["error"]) if error else "error" not in job.summary, (variant, job.summary)


def test_the_bench_beat_runs_without_the_platforms_django_settings(monkeypatch: Any, tmp_path: Any) -> None:
    # Importing the platform's `config` sets DJANGO_SETTINGS_MODULE; a beat inheriting it would set Django up and
    # install the patched scheduler under the stock variant's name.
    from bench import common

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings")
    ns = argparse.Namespace(variant="stock", broker="redis://127.0.0.1:6379/9", redis="redis://127.0.0.1:6379/0",
                            conf=None, loglevel="INFO")  # fmt: skip
    beat = common.Beat(ns, tmp_path, "beat", {})
    assert "DJANGO_SETTINGS_MODULE" not in beat.env and beat.env["BENCH_VARIANT"] == "stock"
