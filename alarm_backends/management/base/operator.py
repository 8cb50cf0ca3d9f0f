"""The base of the platform's operator commands (``platform`` and so ``make run``/``stop``/``status``, ``hash_ring``,
the renderers, the exporter; ``healthz`` and ``beat_schedule`` go further)."""

from __future__ import annotations

from typing import Any

from django.core.checks.registry import registry
from django.core.management.base import BaseCommand

from alarm_backends.checks import CRONTAB_TAG


class OperatorCommand(BaseCommand):
    """A command an operator runs to see and steer the platform. It runs Django's system checks but the crontab
    entries' (``CRONTAB_TAG``): one malformed entry is skipped by beat (and logged), and that is exactly when an
    operator must still render, start, stop and inspect the platform. What must stop it still does (a loopback ring
    address with Consul, bkmonitor.E003). ``manage.py check`` reports the entry; ``healthz`` and ``beat_schedule``
    run no check at all and show it as an error row."""

    def check(self, app_configs: Any = None, tags: Any = None, **kwargs: Any) -> None:
        if tags is None:
            tags = sorted(registry.tags_available() - {CRONTAB_TAG})
        super().check(app_configs=app_configs, tags=tags, **kwargs)
