"""Forwarding ``manage.py celery …`` to Celery's own command line, with the SaaS app selected."""

from __future__ import annotations

import click
from celery.bin.celery import celery as celery_cli
from django.core.management.base import CommandError

SAAS_APP = "config.celery:app"


def run_celery(args: list[str], prog_name: str = "manage.py celery") -> int:
    """Run ``celery -A <SaaS app> <args>``; the exit status, or CommandError with Celery's message."""
    argv = ["-A", SAAS_APP, *args]
    try:
        result = celery_cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        raise CommandError("aborted") from None
    except click.ClickException as exc:
        raise CommandError(exc.format_message()) from None
    # Celery's sub-commands return their exit status (e.g. `inspect ping` with no replies returns 1).
    return int(result or 0)
