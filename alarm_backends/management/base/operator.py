"""The base of the platform's operator commands (``healthz``, ``beat_schedule``, ``platform``, ``hash_ring``, the
renderers, the exporter)."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class OperatorCommand(BaseCommand):
    """A command an operator runs to see and steer the platform. Django's system checks are not run before it: they
    refuse to run anything over one malformed crontab entry, which beat only skips (and logs), and that is exactly
    when an operator must still see the schedule, check health, render, start and stop the platform. The entry is
    reported by ``manage.py check`` and shown as an error row by ``healthz`` and ``beat_schedule``; bad settings are
    refused as the settings load, whatever the command."""

    requires_system_checks: list[str] = []
