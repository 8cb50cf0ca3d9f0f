"""The console tests' fixtures and clients: a schedule a real scheduler synced into the store, and users in a migrated
database (``reader`` with no permission, ``operator`` with console.operate_schedule)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from alarm_backends.console.models import AuditEntry
from patches.redbeat.schedulers import RedBeatScheduler
from tests.integration.beat_schedule.helpers import as_backend_app

PASSWORD = "a-test-password-1"


@pytest.fixture
def users(redis_dbs: None) -> Iterator[None]:
    """A migrated database with two users: ``reader`` (no permission) and ``operator`` (console.operate_schedule)."""
    call_command("migrate", verbosity=0, interactive=False)
    User.objects.all().delete()
    AuditEntry.objects.all().delete()
    User.objects.create_user("reader", password=PASSWORD)
    operator = User.objects.create_user("operator", password=PASSWORD)
    operator.user_permissions.add(Permission.objects.get(codename="operate_schedule"))
    yield
    User.objects.all().delete()
    AuditEntry.objects.all().delete()


@pytest.fixture
def app(users: None, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """The schedule the console reads (``leader`` syncs it into the store), as the console's backend app."""
    return as_backend_app(monkeypatch)


@pytest.fixture
def leader(app: Celery) -> Iterator[RedBeatScheduler]:
    beat = RedBeatScheduler(app=app)
    beat.tick()  # takes the lock and syncs the schedule into the store
    yield beat
    beat.close()


def signed_in(username: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=username, password=PASSWORD)
    return client


def csrf_token(page: Any) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
