"""``manage.py celery <celery arguments>``: Celery's CLI for the SaaS app (``config.celery``).

Examples: ``manage.py celery worker -l INFO``, ``manage.py celery inspect ping``, ``manage.py celery beat``.
Arguments are passed through untouched; Django's own options are not parsed here.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alarm_backends.management.celery_cli import run_celery


class Command(BaseCommand):
    help = "Run Celery's command line for the SaaS app, e.g. `manage.py celery worker -l INFO`."
    # Celery's sub-commands take their own options (-l, -Q, --autoscale …): keep Django's parser out of the way.
    prefix: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("celery_args", nargs="*", help="arguments for `celery`, e.g. worker -l INFO")

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            code = run_celery([*self.prefix, *argv[2:]], prog_name=f"{argv[0]} {argv[1]}")
        except CommandError as exc:
            self.stderr.write(f"CommandError: {exc}")
            sys.exit(exc.returncode)
        sys.exit(code)

    def handle(self, *args: Any, **options: Any) -> None:
        code = run_celery([*self.prefix, *options["celery_args"]])
        if code:
            raise CommandError(f"celery exited with status {code}", returncode=code)
