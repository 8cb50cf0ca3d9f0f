"""Settings from the database on a real one (the suite's SQLite file, migrated): rows of ``global_setting`` reach
``django.conf.settings`` and a starting backend app (its concurrency, the tasks it registers), as the original's
``hack_settings`` makes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.management import call_command

from alarm_backends.core import dynamic_settings
from alarm_backends.models import GlobalConfig
from tests.integration.conftest import REPO, TEST_CRONTAB

PROBE = """
import json
from alarm_backends.service.scheduler.app import app
print(json.dumps({"concurrency": app.conf.worker_concurrency, "tasks": sorted(app.tasks)}))
"""


@pytest.fixture
def table() -> Iterator[None]:
    call_command("migrate", "alarm_backends", verbosity=0)
    GlobalConfig.objects.all().delete()
    yield
    GlobalConfig.objects.all().delete()
    dynamic_settings.uninstall()


def test_rows_reach_django_settings_and_the_rest_stays_static(table: None) -> None:
    dynamic_settings.install()
    assert settings.EXCLUDE_WORKER_TASKS == []  # no row: the settings modules' value
    GlobalConfig.set("EXCLUDE_WORKER_TASKS", ["tests.integration.jobs.boom"])
    dynamic_settings.install()  # a new cache, as a process started now has
    assert settings.EXCLUDE_WORKER_TASKS == ["tests.integration.jobs.boom"]
    assert settings.EXCLUDE_WORKER_TASKS == ["tests.integration.jobs.boom"]  # not cached by Django either
    assert settings.DEFAULT_BK_BIZ_ID == 2


def probe(**env: str) -> dict[str, object]:
    full_env = os.environ | {"BKAPP_SETTINGS_DEFAULT_CRONTAB": json.dumps(TEST_CRONTAB)} | env
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=full_env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_starting_backend_app_takes_its_concurrency_and_exclusions_from_the_table(table: None) -> None:
    boom = "alarm_backends.service.scheduler.tasks.cron.tests_integration_jobs_boom"
    before = probe(BKAPP_SETTINGS_CELERY_WORKERS="2")
    assert before["concurrency"] == 2 and boom in before["tasks"]  # type: ignore[operator]

    GlobalConfig.set("CELERY_WORKERS", 3)
    GlobalConfig.set("EXCLUDE_WORKER_TASKS", ["tests.integration.jobs.boom"])
    after = probe(BKAPP_SETTINGS_CELERY_WORKERS="2")
    assert after["concurrency"] == 3 and boom not in after["tasks"]  # type: ignore[operator]

    # USE_DYNAMIC_SETTINGS=false: the settings modules only, as without the table.
    static = probe(BKAPP_SETTINGS_CELERY_WORKERS="2", BKAPP_SETTINGS_USE_DYNAMIC_SETTINGS="false")
    assert static["concurrency"] == 2 and boom in static["tasks"]  # type: ignore[operator]
