"""The loader on the real backend app: names, queues, expires, filters and start-up errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PREFIX = "alarm_backends.service.scheduler.tasks.cron."

DUMP = """
import json
from alarm_backends.service.scheduler.app import app
out = {}
for name, entry in app.conf.beat_schedule.items():
    task = app.tasks[name]
    schedule = str(entry["schedule"])
    out[name] = {"queue": task.queue, "expires": task.expires, "options": entry["options"], "cron": schedule,
                 "ignore_result": task.ignore_result}
print(json.dumps(out))
"""


def load(**env: str) -> tuple[dict[str, Any], str]:
    """The registrations of a fresh process with ``env``, and what it wrote to stderr."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("BK_MONITOR_ALARM")} | env
    done = subprocess.run([sys.executable, "-c", DUMP], cwd=REPO, env=full, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result, done.stderr


def registrations(**env: str) -> dict[str, Any]:
    return load(**env)[0]


def failure(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", DUMP], cwd=REPO, env=os.environ | env, capture_output=True, text=True, timeout=60
    )
    # Exit status 2: refused for its configuration (config.tools.validation), which supervisord does not restart.
    assert done.returncode == 2, done.stdout
    return done.stderr.strip()


def test_shipped_lists_register_on_their_queues() -> None:
    # A fresh process: the app registers the lists as they are when its configuration is first read.
    from django.conf import settings

    regs = registrations()
    lists = {
        "celery_cron": settings.DEFAULT_CRONTAB,
        "celery_action_cron": settings.ACTION_TASK_CRONTAB,
        "celery_long_task_cron": settings.LONG_TASK_CRONTAB,
    }
    for queue, entries in lists.items():
        assert entries, f"{queue} has no shipped entries"
        for path, *_ in entries:
            reg = regs[PREFIX + path.replace(".", "_")]
            assert reg["queue"] == queue and reg["cron"].startswith("<crontab: ")
            # queue and expires travel with the task, not the entry (as in the original)
            assert reg["options"] == {} and reg["ignore_result"] is True
            assert 300 <= reg["expires"] <= 3600
    for setting, queue in (("API_CRONTAB", "celery_api_cron"), ("REPORT_CRONTAB", "celery_report_cron")):
        for path, *_ in getattr(settings, setting):
            assert (regs[path]["queue"], regs[path]["expires"]) == (queue, 300)


def test_override_exclude_and_expires() -> None:
    crontab_json = json.dumps(
        [
            ["tests.integration.jobs.record_effect", "*/6 * * * *", "global"],
            ["tests.integration.jobs.boom", "0 * * * *", "global"],
        ]
    )
    regs = registrations(
        BKAPP_SETTINGS_DEFAULT_CRONTAB=crontab_json,
        BKAPP_SETTINGS_EXCLUDE_WORKER_TASKS='["tests.integration.jobs.boom"]',
    )
    name = PREFIX + "tests_integration_jobs_record_effect"
    assert regs[name] == {
        "queue": "celery_cron",
        "expires": 359,
        "options": {},
        "cron": "<crontab: */6 * * * * (m/h/dM/MY/d)>",
        "ignore_result": True,
    }
    assert PREFIX + "tests_integration_jobs_boom" not in regs


def test_an_entrys_time_zone_and_the_default_one() -> None:
    crontab_json = json.dumps(
        [
            ["tests.integration.jobs.record_effect", "30 2 * * *", "global", {"timezone": "America/New_York"}],
            ["tests.integration.jobs.boom", "0 9 1-5 * *", "global"],  # weekdays (Celery's field order)
        ]
    )
    record, boom = PREFIX + "tests_integration_jobs_record_effect", PREFIX + "tests_integration_jobs_boom"
    regs = registrations(BKAPP_SETTINGS_DEFAULT_CRONTAB=crontab_json)
    assert regs[record]["cron"] == "<crontab: 30 2 * * * (m/h/dM/MY/d) in America/New_York>"
    assert regs[boom]["cron"] == "<crontab: 0 9 * * 1-5 (m/h/dM/MY/d)>"  # the app's zone, as the original
    regs = registrations(BKAPP_SETTINGS_DEFAULT_CRONTAB=crontab_json, BKAPP_SETTINGS_CRON_DEFAULT_TIMEZONE="Asia/Tokyo")
    assert regs[record]["cron"].endswith("in America/New_York>")  # its own zone wins
    assert regs[boom]["cron"] == "<crontab: 0 9 * * 1-5 (m/h/dM/MY/d) in Asia/Tokyo>"


def test_global_entries_only_in_the_default_cluster() -> None:
    regs = registrations(BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME="Blue")
    names = set(regs)
    assert PREFIX + "alarm_backends_jobs_heartbeat_cluster_heartbeat" in names  # run_type cluster
    assert PREFIX + "alarm_backends_jobs_heartbeat" not in names  # run_type global
    # The original's queue names (its hosts consume them in a rolling upgrade)...
    assert regs[PREFIX + "alarm_backends_jobs_heartbeat_cluster_heartbeat"]["queue"] == "celery_action_cron"
    # ...or, with CLUSTER_SCOPED_NAMES, the cluster's own.
    scoped = registrations(BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME="Blue", BKAPP_SETTINGS_CLUSTER_SCOPED_NAMES="true")
    assert scoped[PREFIX + "alarm_backends_jobs_heartbeat_cluster_heartbeat"]["queue"] == "blue-celery_action_cron"
    assert scoped["alarm_backends.jobs.redis_metrics.collect_redis_metric"]["queue"] == "blue-celery_report_cron"


def bad_entry_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "(entry skipped)" in line]


def test_a_bad_entry_is_one_line_naming_it_and_the_others_still_load() -> None:
    # The original's loader stopped at the first bad entry and nothing ran; `manage.py check` refuses it instead.
    good = ["alarm_backends.jobs.heartbeat.cluster_heartbeat", "* * * * *", "cluster"]
    regs, log = load(BKAPP_SETTINGS_ACTION_TASK_CRONTAB=json.dumps([["a.job", "* * *", "cluster"], good]))
    assert PREFIX + "alarm_backends_jobs_heartbeat_cluster_heartbeat" in regs
    assert not any(name.endswith("a_job") for name in regs)
    [line] = bad_entry_lines(log)
    assert line.endswith(
        "bkmonitor: ACTION_TASK_CRONTAB[0] = ['a.job', '* * *', 'cluster']: bad cron '* * *': "
        "expected 5 fields (minute hour day_of_week day_of_month month_of_year), got 3 (entry skipped)"
    )
    _, log = load(BKAPP_SETTINGS_LONG_TASK_CRONTAB='[["a.job", "* * * * *", "sometimes"]]')
    assert "run_type 'sometimes'" in bad_entry_lines(log)[0]
    regs, log = load(BKAPP_SETTINGS_LONG_TASK_CRONTAB='[["alarm_backends.jobs.heartbeat", "0 * * * *", "global"]]')
    assert "already scheduled" in bad_entry_lines(log)[0]
    assert PREFIX + "alarm_backends_jobs_heartbeat" in regs  # the first of the two keeps its place


def test_bad_cluster_name_stops_start_up() -> None:
    assert failure(BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME="a.b") == (
        "bkmonitor: BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME='a.b': invalid cluster name 'a.b': use 1-64 characters from "
        "a-z, 0-9, '-' and '_' (ALARM_BACKEND_CLUSTER_NAME)"
    )
    assert failure(BKAPP_SETTINGS_CELERY_SERIALIZER="yaml") == (
        'bkmonitor: BKAPP_SETTINGS_CELERY_SERIALIZER=\'yaml\': expected "json" or "pickle"'
    )
