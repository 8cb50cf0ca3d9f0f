"""Jitter: each slot of an entry published a fixed offset after it, the same from every beat, with its id unchanged;
the slot found again from the delayed score (fire times from croniter, not the code under test); the entry option
refused where it could pass the next slot."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import Counter

import pytest
from celery.schedules import schedule
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from alarm_backends.service.scheduler.crontab import (
    CronConfigError,
    effective_jitter,
    make_crontab,
    parse_entries,
)
from patches.redbeat.policy import (
    bind_clock,
    entry_jitter,
    from_epoch,
    jitter_offset,
    jittered_score,
    slot_of,
)

SLOT = 1_796_000_040.0  # a whole minute


pytestmark = pytest.mark.usefixtures("backend_app_current")


def test_the_offset_is_within_the_jitter_and_spreads_a_burst() -> None:
    offsets = [jitter_offset(f"job{n}", SLOT, 30) for n in range(1000)]
    assert all(0 <= offset < 30 for offset in offsets)
    # 1,000 entries of one slot over ten 3-second bands: none empty, none holding more than twice its share.
    bands = Counter(int(offset // 3) for offset in offsets)
    assert sorted(bands) == list(range(10)) and max(bands.values()) < 200 and min(bands.values()) > 50
    assert jitter_offset("job1", SLOT, 0) == 0.0 and jittered_score("job1", SLOT, 0) == SLOT


def test_the_offset_is_the_same_in_every_process_and_moves_with_the_slot() -> None:
    """Every beat computes the same offset (no per-process hash seed), and the next slot gets its own."""
    code = "from patches.redbeat.policy import jitter_offset; print(jitter_offset('job7', 1796000040.0, 30))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=".")  # fmt: skip
    assert float(other.stdout) == jitter_offset("job7", SLOT, 30)
    assert len({jitter_offset("job7", SLOT + 60 * n, 30) for n in range(20)}) > 15


CRONS = ["* * * * *", "*/5 * * * *", "0 * * * *", "30 2 * * *", "15,45 * * * *", "0 9 1-5 * *"]


@settings(max_examples=200, deadline=None)
@given(cron=st.sampled_from(CRONS), start=st.integers(1_700_000_000, 1_900_000_000), fraction=st.floats(0, 0.999))
def test_the_slot_is_found_again_from_any_delayed_score(cron: str, start: int, fraction: float) -> None:
    minute, hour, dow, dom, moy = cron.split()
    slot = croniter(f"{minute} {hour} {dom} {moy} {dow}", dt.datetime.fromtimestamp(start, dt.UTC),
                    day_or=False).get_next(float)  # fmt: skip
    jitter = 50.0  # under every cron's shortest gap here (60 s)
    score = slot + fraction * jitter
    bound = bind_clock(make_crontab(cron), lambda: from_epoch(score))  # as the scheduler binds it: its tick's clock
    assert slot_of(bound, score, jitter, score) == slot


def test_an_entrys_jitter_must_be_shorter_than_its_shortest_gap() -> None:
    def parse(jitter: object, cron: str = "*/5 * * * *") -> float | None:
        [entry] = parse_entries([("celery_cron", "DEFAULT_CRONTAB", [("a.job", cron, "global", {"jitter": jitter})])])
        return entry.jitter

    assert parse(120) == 120.0 and parse(0) == 0.0
    with pytest.raises(CronConfigError, match=r"DEFAULT_CRONTAB\[0\].*jitter 300: must be shorter .* \(300s\)"):
        parse(300)
    with pytest.raises(CronConfigError, match=r"jitter -1: expected a number of seconds ≥ 0"):
        parse(-1)
    with pytest.raises(CronConfigError, match=r"jitter True"):
        parse(True)
    # The default is capped at half the shortest gap; an entry's own stands.
    assert effective_jitter(None, 100, "* * * * *") == 30.0
    assert effective_jitter(None, 100, "0 * * * *") == 100.0
    assert effective_jitter(5.0, 100, "* * * * *") == 5.0


def test_the_scheduler_refuses_a_jitter_it_cannot_honour() -> None:
    assert entry_jitter("e", 12, make_crontab("* * * * *")) == 12.0
    assert entry_jitter("e", None, schedule(60)) == 0.0
    with pytest.raises(ValueError, match="entry e: jitter applies to crontab schedules"):
        entry_jitter("e", 12, schedule(60))
    with pytest.raises(ValueError, match="entry e: jitter 'x'"):
        entry_jitter("e", "x", make_crontab("* * * * *"))
