"""Importing the backend app does nothing but create it: no Django setup, no registration, no exit on bad settings.
Reading its configuration sets it up, or refuses bad settings with exit status 2 and one line naming the culprit.
Each case runs in a fresh interpreter, where nothing has been imported yet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BAD_CLUSTER = {"BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME": "no spaces allowed"}


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=os.environ | env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_importing_the_app_sets_nothing_up_even_with_bad_settings() -> None:
    done = python(
        "import django.apps, redbeat\n"
        "from alarm_backends.service.scheduler.app import app\n"
        "import alarm_backends.jobs.queue_depth, alarm_backends.jobs.result_cleanup\n"  # modules that import the app
        "from patches.redbeat.schedulers import RedBeatScheduler\n"
        "print(app.configured, django.apps.apps.ready, getattr(redbeat, 'RedBeatScheduler', None) is RedBeatScheduler)",
        **BAD_CLUSTER,
    )
    assert done.returncode == 0, done.stderr
    # Not configured, Django not set up, and `redbeat.RedBeatScheduler` not yet the patched scheduler.
    assert done.stdout.split() == ["False", "False", "False"]


def test_reading_the_configuration_sets_the_app_up() -> None:
    done = python(
        "import django.apps, redbeat\n"
        "from alarm_backends.service.scheduler.app import app\n"
        "scheduler = app.conf.beat_scheduler\n"
        "from patches.redbeat.schedulers import RedBeatScheduler\n"
        "cron = [name for name in app.conf.beat_schedule if name.startswith('alarm_backends.service.')]\n"
        "print(scheduler, django.apps.apps.ready, redbeat.RedBeatScheduler is RedBeatScheduler, len(cron) > 0,\n"
        "      all(name in app.tasks for name in app.conf.beat_schedule), 'broker_url' in app.conf.changes)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["redbeat.RedBeatScheduler", "True", "True", "True", "True", "True"]


def test_reading_the_configuration_with_bad_settings_exits_2_naming_the_culprit() -> None:
    done = python(
        "from alarm_backends.service.scheduler.app import app\nprint('read', app.conf.broker_url)", **BAD_CLUSTER
    )
    assert done.returncode == 2 and "read" not in done.stdout
    assert done.stderr.strip().splitlines() == [
        "bkmonitor: BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME='no spaces allowed': invalid cluster name "
        "'no spaces allowed': use 1-64 characters from a-z, 0-9, '-' and '_' (ALARM_BACKEND_CLUSTER_NAME)"
    ]


def test_settings_set_on_the_app_before_it_is_read_are_kept() -> None:
    done = python(
        "from alarm_backends.service.scheduler.app import app\n"
        "app.conf.update(task_default_queue='mine')\n"
        "print(app.conf.task_default_queue, app.conf.beat_scheduler)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mine", "redbeat.RedBeatScheduler"]
