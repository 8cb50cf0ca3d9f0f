"""The fixtures of the ``beat_schedule`` tests: the app the command reads, and schedulers on it closed at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery

from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.beat_schedule.helpers import as_backend_app


@pytest.fixture
def app(redis_dbs: None, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """The app the command reads instead of the backend app."""
    return as_backend_app(monkeypatch)


@pytest.fixture
def beats(app: Celery) -> Iterator[Callable[..., RedBeatScheduler]]:
    """Makes schedulers on the test app (or another one), closed at the end."""
    made: list[RedBeatScheduler] = []

    def make(on: Celery | None = None) -> RedBeatScheduler:
        made.append(RedBeatScheduler(app=on or app))
        return made[-1]

    yield make
    for beat in made:
        beat.close()
