"""The original's management helpers: this host's address on the ring (``alarm_backends.core.host``, where the
system checks find it too) and the backend app for the operators' commands."""

from __future__ import annotations

from celery import Celery

from alarm_backends.core.host import get_host_addr

__all__ = ["backend_app", "get_host_addr"]


def backend_app() -> Celery:
    """The backend Celery app, looked up on use so tests can replace it. Reading its configuration sets Django up
    and registers every crontab task; the commands that only probe the platform never do."""
    from alarm_backends.service.scheduler.app import app

    return app
