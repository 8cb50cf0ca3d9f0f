"""``manage.py render_supervisor``: write the supervisord config of the scheduler group for this host.

The config runs celery beat and the crontab workers with this interpreter, this repository and the run and log
directories of the settings; ``--check`` parses the result with supervisord's own parser.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.prometheus.exporter import clear
from alarm_backends.management.supervisor import Host
from alarm_backends.management.supervisor_rpc import (
    REDIS_AUTO,
    REDIS_CHOICES,
    Supervisor,
    SupervisorError,
    render_to_file,
    validate_config,
)
from alarm_backends.management.workers import PROFILES, SMALL


class Command(BaseCommand):
    help = "Render the supervisord config (beat and the crontab workers) for this host."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--profile",
            choices=PROFILES,
            default=SMALL,
            help="small: 1-2 processes per worker, for one machine (default); production: the full concurrency",
        )
        parser.add_argument("--output", help="where to write the config (default: <run dir>/supervisord.conf)")
        parser.add_argument("--template", help="the template to render (default: the repository's)")
        parser.add_argument(
            "--redis",
            choices=REDIS_CHOICES,
            default=REDIS_AUTO,
            help="add a local redis-server program: auto (when nothing answers at a local REDIS_HOST), yes or no",
        )
        parser.add_argument("--check", action="store_true", help="validate the result with supervisord's parser")
        parser.add_argument(
            "--clear-metrics",
            action="store_true",
            help="empty the programs' metrics directory too (before supervisord starts; refused while it runs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            host = Host.from_settings(settings, python=sys.executable)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        output = options["output"] or host.config_path
        try:
            rendered = render_to_file(
                settings,
                host,
                options["profile"],
                output,
                template=options["template"],
                redis_mode=options["redis"],
                queue_name=get_cluster().queue_name,
            )
            self.stdout.write(f"wrote {rendered.path} ({options['profile']} profile: {', '.join(rendered.programs)})")
            if options["check"]:
                names = validate_config(rendered.path)
                self.stdout.write(f"supervisord accepts {rendered.path}: {len(names)} programs")
            if options["clear_metrics"]:
                self.clear_metrics(host)
        except SupervisorError as exc:
            raise CommandError(str(exc)) from None

    def clear_metrics(self, host: Host) -> None:
        # The running programs' counters would restart from zero mid-run, and their files vanish under them.
        if Supervisor(host.socket_path).answers():
            raise CommandError(f"supervisord answers on {host.socket_path}: not clearing the metrics of its programs")
        removed = clear(Path(host.metrics_dir))
        self.stdout.write(f"cleared {host.metrics_dir} ({removed} sample file(s) of an earlier run)")
