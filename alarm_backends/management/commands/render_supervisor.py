"""``manage.py render_supervisor``: write the supervisord config of the scheduler group for this host.

The config runs celery beat and the crontab workers with this interpreter, this repository and the run and log
directories of the settings. ``--check`` writes nothing: it prints the config it would write and parses it with
supervisord's own parser, so it is safe on a live host (a running supervisord ``reread``s the file).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.prometheus.exporter import clear
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.supervisor.arguments import add_profile_argument
from alarm_backends.management.supervisor.control import REDIS_AUTO, REDIS_CHOICES, Supervisor, SupervisorError
from alarm_backends.management.supervisor.files import Plan, check, plan, render_to_file
from alarm_backends.management.supervisor.render import Host
from alarm_backends.management.supervisor.workers import PROFILE_DESCRIPTIONS, SMALL


class Command(OperatorCommand):
    help = "Render the supervisord config (beat and the crontab workers) for this host."

    def add_arguments(self, parser: CommandParser) -> None:
        add_profile_argument(parser, PROFILE_DESCRIPTIONS, SMALL)
        parser.add_argument("--output", help="where to write the config (default: <run dir>/supervisord.conf)")
        parser.add_argument("--template", help="the template to render (default: the repository's)")
        parser.add_argument(
            "--redis",
            choices=REDIS_CHOICES,
            default=REDIS_AUTO,
            help="add a local redis-server program: auto (when nothing answers at a local REDIS_HOST, or this run "
            "dir's supervisord already runs it), yes or no",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing: print the config to stdout and validate it with supervisord's parser",
        )
        parser.add_argument(
            "--clear-metrics",
            action="store_true",
            help="empty the programs' metrics directory too (before supervisord starts; refused while it runs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"] and options["clear_metrics"]:
            raise CommandError("--check writes nothing, so it cannot also --clear-metrics")
        try:
            host = Host.from_settings(settings, python=sys.executable)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["clear_metrics"] and Supervisor(host.socket_path).answers():
            # Refused before anything is written: the running programs' counters would restart from zero
            # mid-run, and their files vanish under them.
            raise CommandError(f"supervisord answers on {host.socket_path}: not clearing the metrics of its programs")
        output = options["output"] or host.config_path
        try:
            config = plan(
                settings,
                host,
                options["profile"],
                template=options["template"],
                redis_mode=options["redis"],
                queue_name=get_cluster().queue_name,
            )
            if options["check"]:
                self.check_without_writing(config, host, output)
                return
            rendered = render_to_file(config, host, output)
        except SupervisorError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"wrote {output} ({options['profile']} profile: {', '.join(rendered.programs)})")
        self.report_withheld(config, self.stdout.write)
        if options["clear_metrics"]:
            removed = clear(Path(host.metrics_dir))
            self.stdout.write(f"cleared {host.metrics_dir} ({removed} sample file(s) of an earlier run)")

    def check_without_writing(self, config: Plan, host: Host, output: str) -> None:
        """Exactly what would be written, then what the check found as ``;`` comments: stdout stays a config that
        supervisord reads (``render_supervisor --check > candidate.conf``)."""
        text = config.render(host)
        checked = check(config, host)
        self.stdout.write(text, ending="")

        def comment(line: str) -> None:
            self.stdout.write(f"; {line}")

        comment(f"would write {output} ({config.profile} profile: {', '.join(config.programs(host))})")
        self.report_withheld(config, comment)
        if checked.stand_ins:
            comment(
                f"not created yet (a render without --check creates them), validated with empty stand-ins: "
                f"{', '.join(checked.stand_ins)}"
            )
        comment(f"supervisord accepts it: {len(checked.programs)} programs (nothing written)")

    @staticmethod
    def report_withheld(config: Plan, write: Callable[[str], object]) -> None:
        withheld = config.withheld()
        if withheld:
            write(withheld)
