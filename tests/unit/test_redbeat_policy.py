"""Missed-run policies, seed scores and slot ids (pure, against a fixed clock)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from celery.schedules import crontab, schedule

from patches.redbeat.policy import NEVER, MissedRun, bind_clock, from_epoch, plan, seed_score, task_id

NOW = dt.datetime(2026, 1, 1, 10, 0, 30, tzinfo=dt.UTC).timestamp()  # 10:00:30


def minutely() -> crontab:
    return bind_clock(crontab(minute="*"), lambda: from_epoch(NOW))


def at(hh: int, mm: int, ss: int = 0) -> float:
    return dt.datetime(2026, 1, 1, hh, mm, ss, tzinfo=dt.UTC).timestamp()


def test_task_id_is_name_at_due_epoch_seconds() -> None:
    name = "alarm_backends.jobs.heartbeat"
    assert task_id(name, at(10, 0) + 0.75) == f"{name}@{int(at(10, 0))}"


def test_never_run_entries_wait_for_their_first_slot_unless_first_run_now() -> None:
    assert seed_score(minutely(), None, NOW) == at(10, 1)  # the default: its first slot
    assert seed_score(minutely(), None, NOW, first_run_now=True) == NOW
    assert seed_score(minutely(), from_epoch(at(9, 58, 0)), NOW) == at(9, 59)  # overdue: in the past, on its slot
    assert seed_score(minutely(), from_epoch(at(10, 0, 10)), NOW) == at(10, 1)
    every = bind_clock(schedule(run_every=dt.timedelta(seconds=30)), lambda: from_epoch(NOW))
    assert seed_score(every, from_epoch(at(10, 0, 20)), NOW) == at(10, 0, 50)


def test_on_time_run_publishes_its_slot_and_moves_to_the_next() -> None:
    decided = plan(minutely(), at(10, 0), NOW, MissedRun())
    assert (decided.slots, decided.next_due, decided.skipped) == ((at(10, 0),), at(10, 1), 0)


@pytest.mark.parametrize(
    ("missed", "slots", "skipped"),
    [
        (MissedRun("once"), (at(9, 57),), 0),
        (MissedRun("skip"), (), 1),
        (MissedRun("all", max_catchup=10), (at(9, 57), at(9, 58), at(9, 59), at(10, 0)), 0),
        (MissedRun("all", max_catchup=2), (at(9, 59), at(10, 0)), 2),
        # Within the grace period a late run is on time under every policy.
        (MissedRun("skip", grace=300), (at(9, 57),), 0),
    ],
)
def test_missed_run_policies(missed: MissedRun, slots: tuple[float, ...], skipped: int) -> None:
    decided = plan(minutely(), at(9, 57), NOW, missed)
    assert decided.slots == slots
    assert decided.skipped == skipped
    assert decided.next_due == at(10, 1)


def test_a_schedule_without_future_runs_gets_the_never_score() -> None:
    class Finished(schedule):
        def remaining_estimate(self, last_run_at: dt.datetime) -> None:
            return None

    assert plan(Finished(run_every=60), NOW - 1, NOW, MissedRun()).next_due == NEVER


@pytest.mark.parametrize(
    "raw",
    [{"policy": "sometimes"}, {"grace": -1}, {"max_catchup": 0}, {"policy": "all", "extra": 1}, {"grace": "x"}],
)
def test_bad_policies_are_rejected_naming_the_place(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^entry e: missed_run"):
        MissedRun.parse(raw, where="entry e: ")


def test_policy_inherits_the_default() -> None:
    default = MissedRun("skip", grace=30, max_catchup=3)
    assert MissedRun.parse({"policy": "all"}, default) == MissedRun("all", 30, 3)
    assert MissedRun.parse(None, default) is default


def test_tick_metas_are_what_celery_redbeat_writes() -> None:
    from patches.redbeat.entries import MetaWriter, decode_meta, encode_meta, run_count

    now = from_epoch(NOW)
    fast = MetaWriter(now)(7)
    assert json.loads(fast) == json.loads(encode_meta(now, 7))
    assert decode_meta(fast) == (now, 7)
    assert run_count(fast) == 7 and run_count(None) == 0


def test_a_tick_a_few_seconds_after_the_slot_is_on_time_even_for_skip() -> None:
    decided = plan(minutely(), at(10, 0, 27), NOW, MissedRun("skip"))  # 3 s late, grace 0
    assert decided.slots == (at(10, 0, 27),) and decided.skipped == 0


def test_entries_due_in_one_tick_each_get_their_own_next_run() -> None:
    """Entries due together share one next-run computation per schedule; the key was Celery's rounded repr, so
    periods of 86,450 s and 86,830 s (both "<freq: 1.00 day>") shared one and the second ran 380 s early. The
    oracle is Celery's own: each interval's remaining_estimate from a run now."""
    from celery import Celery

    from patches.redbeat.entries import Definitions, encode_definition, encode_meta
    from patches.redbeat.planner import TickPlanner
    from patches.redbeat.publisher import Templates
    from patches.redbeat.store import DueEntry

    app = Celery("planner-test", set_as_current=False)
    app.conf.timezone = "UTC"
    periods = {"a": 86_450, "b": 86_830, "c": 86_450.5, "d": 60, "e": 60.0}
    schedules = {name: schedule(run_every=dt.timedelta(seconds=s), app=app) for name, s in periods.items()}
    assert len({repr(sched) for name, sched in schedules.items() if name in "abc"}) == 1  # what the key was
    planner = TickPlanner(Definitions(lambda: from_epoch(NOW), {}, MissedRun()), Templates(app), NOW)
    meta = encode_meta(from_epoch(NOW - 86_830))
    scores = {}
    for name, sched in schedules.items():
        raw = encode_definition(name, "t.job", sched, [], {}, {})
        _, runs, update = planner(DueEntry(key=f"redbeat:{name}", score=NOW, definition=raw, meta=meta))
        assert [run.due for run in runs] == [NOW]
        scores[name] = update.score
    for name, sched in schedules.items():
        oracle = bind_clock(schedule(run_every=sched.run_every, app=app), lambda: from_epoch(NOW))
        assert scores[name] == NOW + oracle.remaining_estimate(from_epoch(NOW)).total_seconds(), name


@pytest.mark.parametrize("lag", [0.0, 0.2, 0.5, 0.99])
def test_a_score_stock_redbeat_wrote_stands_for_the_schedules_own_slot(lag: float) -> None:
    """Stock celery-redbeat (the oracle: its own entry computes the score it stores) writes a due time floored to
    the second, measured from a `now` a little after the run: `xx:59` for `* * * * *`, up to a second early for an
    interval. Taken as the slot, crontab entries fired at xx:59 and again at the minute (two ids), intervals early."""
    from celery import Celery
    from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf

    from patches.redbeat.policy import snap

    app = Celery("stock-scores", set_as_current=False)
    app.conf.update(timezone="UTC", redbeat_redis_url="redis://127.0.0.1:1/0")  # never connected: scores only
    ensure_conf(app)
    ran = from_epoch(at(10, 0, 0) + 0.3)  # the last run, as stock stamps it
    now = ran.timestamp() + lag  # when stock computes the score after it
    cron = bind_clock(crontab(minute="*", app=app), lambda: from_epoch(now))
    every = bind_clock(schedule(run_every=dt.timedelta(seconds=90.25), app=app), lambda: from_epoch(now))
    for sched, slot in ((cron, at(10, 1)), (every, ran.timestamp() + 90.25)):
        stock = RedBeatSchedulerEntry("e", "t.job", sched, last_run_at=ran, app=app)
        stock.default_now = lambda: from_epoch(now)
        score = stock.score
        assert 0 <= slot - score < 2  # stock's score: before the slot by the floor and the lag
        assert snap(sched, score, ran, now) == pytest.approx(slot, abs=1e-6)
    # A score already on the grid (this scheduler's own) stays where it is, and so does one that stands for no
    # slot (a first run "now"): only a score just before its slot moves.
    assert snap(cron, at(10, 1), ran, now) == at(10, 1)
    assert snap(cron, at(10, 0, 30) + 0.5, ran, now) == at(10, 0, 30) + 0.5
    assert snap(every, at(10, 5), ran, now) == at(10, 5)


def test_a_first_run_now_just_before_a_slot_is_not_taken_for_a_stock_score() -> None:
    """A first run "now" is the Redis clock with its fraction: 1.3 s before the minute it is not a score stock
    redbeat wrote (those are whole seconds), so it fires now, not at the minute (seen in CI: a new `* * * * *`
    entry seeded at xx:58.7 published nothing on its first tick)."""
    from patches.redbeat.policy import snap

    now = at(10, 0, 58) + 0.7
    cron = bind_clock(crontab(minute="*"), lambda: from_epoch(now))
    assert snap(cron, now, None, now) == now
    assert snap(cron, at(10, 0, 59), None, now) == at(10, 1)  # stock's whole-second score: still its slot
