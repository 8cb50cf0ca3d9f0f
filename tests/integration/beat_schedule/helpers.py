"""What every ``beat_schedule`` test uses: the schedule's entries, an app that carries them, the command's output."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from django.core.management import call_command

from alarm_backends.management import utils
from alarm_backends.service.scheduler.crontab import make_crontab
from patches.redbeat.entries import decode_meta
from tests.integration.redbeat_helpers import make_app, store

REPO = Path(__file__).resolve().parents[3]
ENTRIES = {
    "minutely": {"task": "t.minutely", "schedule": crontab(minute="*")},
    "hourly": {"task": "t.hourly", "schedule": schedule(run_every=dt.timedelta(hours=1)), "args": (1, "x")},
    # "0 0 1 * *" in the crontab lists' (Celery's) order: Mondays at 00:00, not the 1st of the month.
    "mondays": {
        "task": "t.mondays",
        "schedule": make_crontab("0 0 1 * *"),
        "missed_run": {"policy": "skip"},
        "overlap": "buffer_one",
    },
}
QUEUE = "bkm-test-schedule-q"


def schedule_app(**changes: dict[str, object]) -> Celery:
    """An app with ENTRIES (and ``changes``); t.minutely carries its own queue and expires, as the cron tasks do."""
    app = make_app({name: dict(entry) for name, entry in {**ENTRIES, **changes}.items()})

    @app.task(name="t.minutely", queue=QUEUE, expires=300, shared=False)
    def minutely() -> None:
        """Its queue and expires are attributes of the task, as the cron loader makes them."""

    return app


def as_backend_app(monkeypatch: pytest.MonkeyPatch, **changes: dict[str, object]) -> Celery:
    """``schedule_app(**changes)``, made the app the operator commands and the console read as the backend's."""
    made = schedule_app(**changes)
    monkeypatch.setattr(utils, "backend_app", lambda: made)
    return made


def cli(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("beat_schedule", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def make_due(name: str) -> None:
    store().zadd("redbeat::schedule", {f"redbeat:{name}": time.time() - 1})


def runs(name: str) -> int:
    return decode_meta(store().hget(f"redbeat:{name}", "meta"))[1]
