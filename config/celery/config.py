"""Configuration of the SaaS app, read lazily by ``config_from_object`` once Django settings are ready."""

from typing import Any

import django
from django.conf import settings

from config.tools.celery import broker_settings, result_backend_settings, serializer_settings

django.setup()


def _config() -> dict[str, Any]:
    conf: dict[str, Any] = {
        # The SaaS side runs in the platform's local time, unlike the backend (UTC).
        "timezone": "Asia/Shanghai",
        "enable_utc": False,
        # The API role runs tasks inline: it has no worker of its own.
        "task_always_eager": settings.ROLE == "api",
        "beat_schedule_filename": f"{settings.RUN_DIR}/saas-celerybeat-schedule",
        "beat_schedule": getattr(settings, "SAAS_BEAT_SCHEDULE", {}),
        "worker_hijack_root_logger": False,
    }
    conf.update(serializer_settings(settings))
    conf.update(broker_settings(settings))
    conf.update(result_backend_settings(settings))
    return conf


# A class, as the original's ``config.celery.config:Config``.
Config = type("Config", (), _config())
