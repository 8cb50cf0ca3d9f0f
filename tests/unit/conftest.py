"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import current_app

from alarm_backends.management.supervisor import control as supervisor_rpc


@pytest.fixture
def fake_redis_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The system's redis-server, as the platform's lookup finds it: an executable stub reporting Redis 7.2."""
    binary = tmp_path / "bin" / "redis-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(binary) if name == "redis-server" else None)
    monkeypatch.setattr(supervisor_rpc, "redis_server_version", lambda path: (7, 2, 0))
    return str(binary)


@pytest.fixture
def backend_app_current() -> Iterator[None]:
    """Schedules evaluate in their app's time zone: the backend app's (UTC), the current app in beat and workers."""
    from alarm_backends.service.scheduler.app import app

    previous = current_app._get_current_object()
    app.set_current()
    yield
    previous.set_current()
