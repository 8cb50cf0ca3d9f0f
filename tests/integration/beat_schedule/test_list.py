"""``beat_schedule list`` and ``show``: every entry as stored, configured-but-not-synced and broken entries, clear
errors; and what an idle tick of the scheduler costs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from celery import Celery
from celery.schedules import crontab
from django.core.management.base import CommandError
from django.test import override_settings

from alarm_backends.core.storage.redis import SERVICE, get_client
from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.overlap.lease import acquire
from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.beat_schedule.helpers import ENTRIES, QUEUE, REPO, cli
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import make_app, store

pytestmark = pytest.mark.redis


def test_an_empty_store_lists_the_configured_entries_as_not_synced(app: Celery) -> None:
    """Before any beat synced: every configured entry, state `not synced`, in the table and the JSON (was: an
    error and no rows)."""
    out, _ = cli()
    lines = out.splitlines()[1:]
    rows = {line.split()[0]: line for line in lines[: len(ENTRIES)]}
    assert set(rows) == set(ENTRIES) and all(line.endswith("not synced") for line in rows.values())
    assert QUEUE in rows["minutely"] and "300s" in rows["minutely"] and "0 0 1 * *" in rows["mondays"]
    assert "holds no entries: no beat has synced the schedule into it yet" in out
    assert f"0 entries in redbeat:* in redis://127.0.0.1:6379/15, {len(ENTRIES)} not synced;" in out
    out, err = cli("list", "--json")
    listed = {item["name"]: item for item in json.loads(out)}
    assert set(listed) == set(ENTRIES) and "no beat has synced" in err
    assert {item["state"] for item in listed.values()} == {"not synced"}
    assert (listed["minutely"]["queue"], listed["minutely"]["next_run"]) == (QUEUE, None)
    with pytest.raises(CommandError, match="no beat has synced"):
        cli("show", "minutely")


def test_an_entry_added_since_the_last_sync_is_listed_as_not_synced(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    beats().tick()
    app.conf.beat_schedule["added"] = {"task": "t.added", "schedule": crontab(minute="*/5")}
    listed = {item["name"]: item["state"] for item in json.loads(cli("--json")[0])}
    assert listed == {"minutely": "active", "hourly": "active", "mondays": "active", "added": "not synced"}


def test_a_bad_crontab_entry_is_an_error_row_not_a_refusal(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    bad = ["alarm_backends.jobs.heartbeat.cluster_heartbeat", "* * *", "cluster"]
    with override_settings(ACTION_TASK_CRONTAB=[bad]):
        out, _ = cli()
        listed = {item["name"]: item for item in json.loads(cli("--json")[0])}
    [line] = [line for line in out.splitlines() if line.startswith(bad[0] + " ")]
    assert line.endswith("error")
    assert f"  {bad[0]}: ACTION_TASK_CRONTAB[0] = {bad!r}: bad cron '* * *'" in out
    assert ", 1 error;" in out
    assert listed[bad[0]]["state"] == "error" and listed[bad[0]]["problem"].startswith("ACTION_TASK_CRONTAB[0] = ")
    assert listed["minutely"]["state"] == "active"


def test_the_command_skips_djangos_system_checks() -> None:
    """A malformed entry made Django's system checks refuse to run `beat_schedule` (and `healthz`) at all, so the
    operator could not see it; beat skips such an entry, and these commands show it as an error row."""
    env = os.environ | {"BKAPP_SETTINGS_ACTION_TASK_CRONTAB": '[["a.job", "* * *", "cluster"]]'}
    result = subprocess.run([sys.executable, "manage.py", "beat_schedule", "list", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [row] = [item for item in json.loads(result.stdout) if item["name"] == "a.job"]
    assert row["state"] == "error" and "bad cron '* * *'" in row["problem"]


def test_list_shows_every_entry_as_stored(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    # Read the minutely entry well before its next slot (Redis's clock), so its NEXT RUN is still ahead ("(in …)").
    wait_for(lambda: get_client(SERVICE).time()[0] % 60 < 45, 20, "the first 45 s of a minute")
    beats().tick()  # syncs and runs every entry once (never-run entries fire at once)
    out, _ = cli("list")
    header, *lines = out.splitlines()
    assert header.split() == ["NAME", "QUEUE", "CRON", "(UTC)", "DESCRIPTION", "NEXT", "RUN", "LAST", "RUN", "RUNS",
                              "EXPIRES", "STATE"]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[:3]}
    assert set(rows) == {"minutely", "hourly", "mondays"}
    assert QUEUE in rows["minutely"] and "300s" in rows["minutely"]
    assert "0 0 1 * *" in rows["mondays"] and "At 00:00, only on Monday" in rows["mondays"]
    assert "Every 1h" in rows["hourly"] and app.conf.task_default_queue in rows["hourly"]
    assert all(line.rstrip().endswith("active") and "(in " in line for line in rows.values())
    # Columns are aligned: every row's QUEUE starts where the header's does.
    assert {line.index(line.split()[1]) for line in rows.values()} == {header.index("QUEUE")}
    assert "3 entries in redbeat:* in redis://127.0.0.1:6379/15; a beat leads" in out

    listed = {item["name"]: item for item in json.loads(cli("--json")[0])}
    minutely = listed["minutely"]
    assert set(minutely) == {"name", "task", "queue", "cron", "description", "next_run", "next_run_in", "last_run",
                             "total_runs", "expires", "enabled", "paused", "paused_since", "run_requested", "state",
                             "static", "problem"}  # fmt: skip
    assert (minutely["queue"], minutely["cron"], minutely["expires"], minutely["total_runs"]) == (
        QUEUE, "* * * * *", 300, 1)  # fmt: skip
    next_run = dt.datetime.fromisoformat(minutely["next_run"])
    assert next_run.tzinfo is not None and next_run.second == 0 and 0 < minutely["next_run_in"] <= 60
    assert dt.datetime.fromisoformat(minutely["last_run"]).timestamp() == pytest.approx(time.time(), abs=5)
    assert (minutely["paused"], minutely["enabled"], minutely["static"]) == (False, True, True)
    assert listed["hourly"]["cron"] is None and listed["hourly"]["expires"] is None


def test_show_prints_every_field_with_the_definition_and_policy(
    app: Celery, beats: Callable[..., RedBeatScheduler]
) -> None:
    beats().tick()
    out, _ = cli("show", "mondays")
    fields = {label: value.strip() for label, _, value in (line.partition(":") for line in out.splitlines())}
    assert fields["task"] == "t.mondays" and fields["key"] == "redbeat:mondays"
    assert fields["cron"].startswith("0 0 1 * *  (Celery's field order")
    assert fields["description"] == "At 00:00, only on Monday (UTC)"
    assert fields["missed_run"] == "skip (grace 0s, max_catchup 10)"
    assert fields["total runs"] == "1" and fields["paused"] == "no" and fields["run requested"] == "no"
    assert fields["leader"].startswith("a beat leads")
    assert fields["overlap"] == "buffer_one; so far 0 skipped, 0 buffered, 0 replaced"
    # A run holding the entry's lease and one buffered behind it, as the workers' scripts write them.
    for n, marker in enumerate(("running:a", "running:b")):
        slot = f"mondays@{1_795_000_000 + 60 * n}"
        dedupe.claim("t.mondays", slot, 300, False, marker=marker)
        acquire("mondays", slot, marker, "buffer_one", 60, dedupe.claim_key(""), 3900)
    fields = dict(line.split(": ", 1) for line in cli("show", "mondays")[0].splitlines())
    assert re.fullmatch(rf"buffer_one; running: mondays@1795000000 on {socket.gethostname()}:{os.getpid()} since .* "
                        r"\(fence 1\); waiting: mondays@1795000060; so far 0 skipped, 1 buffered, 0 replaced",
                        fields["overlap"].strip()), fields["overlap"]  # fmt: skip
    overlaps = json.loads(cli("show", "mondays", "--json")[0])["overlaps"]
    assert (overlaps["running"], overlaps["waiting"], overlaps["buffered"]) == ("mondays@1795000000",
                                                                                "mondays@1795000060", 1)  # fmt: skip
    detailed = json.loads(cli("show", "hourly", "--json")[0])
    assert detailed["args"] == [1, "x"] and detailed["kwargs"] == {} and detailed["options"] == {}
    assert detailed["missed_run"] == {"policy": "once", "grace": 0.0, "max_catchup": 10}
    assert detailed["schedule"] == "<freq: 1.00 hour>" and detailed["key"] == "redbeat:hourly"


def test_an_unreadable_entry_is_listed_not_fatal(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    store().hset("redbeat:broken", mapping={"definition": "{not json", "meta": "garbage"})
    store().zadd("redbeat::schedule", {"redbeat:broken": time.time() + 60})
    rows = {line.split()[0]: line for line in cli("list")[0].splitlines()[1:5]}
    assert rows["broken"].rstrip().endswith("unreadable") and len(rows) == 4
    assert "unreadable definition" in cli("show", "broken")[0]


def test_an_unknown_name_is_a_clear_error(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beats().tick()
    expected = (
        r"no entry named 'hourli' in the schedule \(redbeat:\* in redis://127.0.0.1:6379/15\); "
        r"`beat_schedule list` shows them\. Did you mean 'hourly'\?"
    )
    for action in ("show", "run", "pause", "resume"):
        with pytest.raises(CommandError, match=expected):
            cli(action, "hourli")
    # The real command line: exit status 1 and one line, no traceback (the backend app reads the same test DB).
    proc = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "beat_schedule", "pause", "nope"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("CommandError: no entry named 'nope' in the schedule (redbeat:* in redis://")
    assert "Traceback" not in proc.stderr and "`beat_schedule list` shows them" in proc.stderr


def test_an_idle_tick_is_still_one_round_trip(app: Celery, beats: Callable[..., RedBeatScheduler]) -> None:
    beat = beats(make_app({"hourly": dict(ENTRIES["hourly"])}))  # nothing falls due between the two ticks
    beat.tick()
    calls: list[object] = []
    execute = beat.store.client.execute_command

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return execute(*args, **kwargs)

    beat.store.client.execute_command = counting  # type: ignore[method-assign]
    beat.tick()
    assert calls == ["EVALSHA"]
