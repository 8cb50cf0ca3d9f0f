"""Configuration of the SaaS app, read by ``config_from_object("config.celery.config:Config")`` when the app's
configuration is first used. Importing this module does nothing: ``Config`` is built on first access, after Django
is set up (the tasks and the database scheduler use its models)."""

import functools
from typing import Any

import django
from django.apps import apps
from django.conf import settings

from config.celery.schedule import SAAS_BEAT_SCHEDULE
from config.tools.celery import broker_settings, result_backend_settings, serializer_settings


def _config() -> dict[str, Any]:
    conf: dict[str, Any] = {
        # The SaaS side runs in the platform's local time, unlike the backend (UTC).
        "timezone": "Asia/Shanghai",
        "enable_utc": False,
        # The API role runs tasks inline: it has no worker of its own.
        "task_always_eager": settings.ROLE == "api",
        # The schedule lives in the database (django-celery-beat), synced from SAAS_BEAT_SCHEDULE at every start
        # without re-enabling what an operator switched off there. Needs `manage.py migrate` first.
        "beat_scheduler": "config.celery.schedulers:MonitorDatabaseScheduler",
        # A copy: tasks that bind to the app may add to its beat_schedule (see on_bound), never to the declared one.
        "beat_schedule": dict(SAAS_BEAT_SCHEDULE),
        # The tasks the schedule names, for workers (and for clean_stale_periodic_tasks' view of the registry).
        "imports": ("alarm_backends.saas.tasks",),
        "worker_hijack_root_logger": False,
    }
    conf.update(serializer_settings(settings))
    conf.update(broker_settings(settings))
    conf.update(result_backend_settings(settings))
    return conf


@functools.cache
def _config_class() -> type:
    if not apps.ready:
        django.setup()
    try:
        return type("Config", (), _config())
    except AttributeError as exc:
        # Raised out of the module's __getattr__ it would read as "no attribute Config", hiding the missing setting.
        raise RuntimeError(f"the SaaS app's configuration: {exc}") from exc


def __getattr__(name: str) -> Any:
    """``Config``: a class, as the original's ``config.celery.config:Config``; built once, on first access."""
    if name != "Config":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _config_class()
