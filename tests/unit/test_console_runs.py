"""The console's reading of the run log, on hand-written stream entries as workers write them: one row per slot with
its dropped deliveries, lateness from the slot's due time, run-now ids in milliseconds, and the report's totals
leaving dropped deliveries out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alarm_backends.console import runs
from alarm_backends.core.runlog import RunLogEntry
from alarm_backends.jobs.cron_report import aggregate

UTC = dt.UTC


def entry(task: str, status: str, ts: float, cost: float = 0.0, slot: str = "", **more: str) -> dict[str, Any]:
    fields = {"task": task, "queue": "celery_cron", "status": status, "cost": f"{cost:.6f}", "exception": "",
              "host": "w1", "ts": f"{ts:.6f}", **more}  # fmt: skip
    if slot:
        fields["slot"] = slot
    return fields


# Newest first, as XREVRANGE gives them: the 10:00:00 slot ran 1.5 s late and was delivered twice more; the 09:59:00
# slot expired; an ad-hoc run; another entry of the same task; a run-now request.
WINDOW = [
    ("9-0", entry("t.job", "duplicate", 1_795_000_003.0, slot="job@1795000000")),
    ("8-0", entry("t.job", "duplicate", 1_795_000_002.5, slot="job@1795000000")),
    ("7-0", entry("t.job", "success", 1_795_000_002.0, cost=0.5, slot="job@1795000000", published="1794999999.900")),
    ("6-0", entry("t.job", "expired", 1_794_999_990.0, slot="job@1794999940")),
    ("5-0", entry("t.job", "failed", 1_794_999_900.0, cost=2.0, exception="ValueError")),
    ("4-0", entry("t.job", "success", 1_794_999_880.0, cost=1.0, slot="other@1794999879")),
    ("3-0", entry("t.job", "success", 1_794_999_001.25, cost=0.25, slot="job@1794999000500")),
]


def test_one_row_per_slot_with_its_drops_and_lateness() -> None:
    found = runs.slots(WINDOW, "job", "t.job")
    assert [(row.slot, row.dropped) for row in found] == [
        ("job@1795000000", {"duplicate": 2}),
        ("job@1794999940", {"expired": 1}),
        ("", {}),  # the ad-hoc run: no slot, a row of its own
        ("job@1794999000500", {}),
    ]  # "other@…" is another entry of the task: not this one's
    assert [row.lateness() for row in found] == [1.5, None, None, 0.5]
    cells = runs.table(found, UTC)
    assert cells[0] == {
        "slot": "job@1795000000",
        "due": "2026-11-18 11:06:40+00:00",
        "published": "2026-11-18 11:06:39+00:00",
        "started": "2026-11-18 11:06:41+00:00",
        "finished": "2026-11-18 11:06:42+00:00",
        "late": "+1.500s",
        "duration": "0.500s",
        "worker": "w1",
        "outcome": "success",
        "duplicates": "2",
    }
    assert (cells[1]["outcome"], cells[1]["started"], cells[1]["late"]) == ("not run: expired", "-", "-")
    assert (cells[2]["slot"], cells[2]["outcome"]) == ("-", "failed (ValueError)")


def test_what_an_overlap_policy_made_of_each_slot() -> None:
    # Newest first: 10:03 replaced 10:02 (whose stopped run failed), 10:01 was skipped, 10:00 waited and then ran.
    window = [
        ("6-0", entry("t.job", "replaced", 1_795_000_185.0, slot="job@1795000120")),
        ("5-0", entry("t.job", "failed", 1_795_000_185.5, cost=5.0, exception="SystemExit", slot="job@1795000120")),
        ("4-0", entry("t.job", "skipped", 1_795_000_060.1, slot="job@1795000060")),
        ("3-0", entry("t.job", "success", 1_795_000_030.0, cost=20.0, slot="job@1795000000")),
        ("2-0", entry("t.job", "buffered", 1_795_000_000.1, slot="job@1795000000")),
        ("1-0", entry("t.job", "buffered", 1_794_999_940.1, slot="job@1794999940")),
    ]
    outcomes = [(cell["slot"], cell["outcome"]) for cell in runs.table(runs.slots(window, "job", "t.job"), UTC)]
    assert outcomes == [
        ("job@1795000120", "replaced: terminated for a newer run (overlap)"),  # its own end: stopped (SystemExit)
        ("job@1795000060", "not run: skipped, the previous run still running (overlap)"),
        ("job@1795000000", "success, after waiting (buffered)"),
        ("job@1794999940", "waiting: buffered until the previous run ends (overlap)"),
    ]
    # None of them is a run in the report's totals but the runs themselves.
    assert {task: (t.runs, t.failures) for task, t in aggregate(window).items()} == {"t.job": (2, 1)}


def test_the_limit_keeps_the_newest_slots() -> None:
    assert [row.slot for row in runs.slots(WINDOW, "job", "t.job", limit=2)] == ["job@1795000000", "job@1794999940"]


def test_slot_ids_give_the_entry_and_the_due_time() -> None:
    scheduled = RunLogEntry.from_fields(WINDOW[2][1])
    assert (scheduled.entry, scheduled.due, scheduled.published) == ("job", 1_795_000_000.0, 1_794_999_999.9)
    requested = RunLogEntry.from_fields(WINDOW[-1][1])  # a run-now id counts milliseconds
    assert (requested.entry, requested.due) == ("job", 1_794_999_000.5)
    adhoc = RunLogEntry.from_fields(WINDOW[4][1])
    assert (adhoc.entry, adhoc.due, adhoc.published) == ("", None, None)
    # An id whose part after the last @ is not a number (an entry named with an @, run ad hoc).
    assert RunLogEntry.from_fields(entry("t", "success", 1.0, slot="a@b")).due is None


def test_last_lateness_is_each_entrys_newest_run() -> None:
    assert runs.last_lateness(WINDOW, {"job", "other", "absent"}) == {"job": 1.5, "other": 0.0}


def test_the_report_counts_runs_not_dropped_deliveries() -> None:
    totals = aggregate(reversed(WINDOW))  # in id order
    assert (totals["t.job"].runs, totals["t.job"].failures) == (4, 1)
