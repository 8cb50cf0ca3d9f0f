"""``manage.py render_saas_supervisor``: write the supervisord config of a SaaS host.

It runs the SaaS app's two Celery workers (and, with ``--profile dev``, its beat after ``migrate``) with this
interpreter, this repository and the run and log directories of the settings; ``--check`` parses the result with
supervisord's own parser and writes nothing. Start it with
``python -m supervisor.supervisord -c <run dir>/saas-supervisord.conf``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.supervisor.arguments import add_profile_argument
from alarm_backends.management.supervisor.control import SupervisorError
from alarm_backends.management.supervisor.env_secrets import configured_secrets
from alarm_backends.management.supervisor.files import check_rendered, ensure_dirs, write_private
from alarm_backends.management.supervisor.render import Host, withheld_environment
from alarm_backends.management.supervisor.saas import (
    BEAT_TEMPLATE_NAME,
    EXAMPLE_HOST,
    PROD,
    PROFILE_DESCRIPTIONS,
    TEMPLATE_NAME,
    SaasHost,
    program_names,
    render_saas,
)


def read_template(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CommandError(f"cannot read the template {path}: {exc.strerror}") from None


class Command(OperatorCommand):
    help = "Render the supervisord config of a SaaS host (the SaaS Celery workers; beat in the dev profile)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_profile_argument(parser, PROFILE_DESCRIPTIONS, PROD)
        parser.add_argument("--output", help="where to write the config (default: <run dir>/saas-supervisord.conf)")
        parser.add_argument(
            "--template-dir",
            help="the directory holding supervisor-saas.conf and supervisor-saas-beat.conf (default: the repository's)",
        )
        parser.add_argument(
            "--example",
            action="store_true",
            help="render for the original's container layout (/app/code) with no environment, as in "
            "support-files/supervisord.conf, instead of for this host",
        )
        parser.add_argument(
            "--check", action="store_true", help="write nothing: validate the result with supervisord's parser"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        templates = Path(options["template_dir"] or Path(settings.BASE_DIR) / "support-files" / "templates")
        template = read_template(templates / TEMPLATE_NAME)
        beat_template = read_template(templates / BEAT_TEMPLATE_NAME)
        profile = options["profile"]
        saas = EXAMPLE_HOST if options["example"] else SaasHost.from_settings(settings, python=sys.executable)
        environ = {} if options["example"] else os.environ
        secrets = configured_secrets(settings)

        def render_for(host: Host) -> str:
            try:
                return render_saas(template, beat_template, replace(saas, host=host), profile, environ=environ,
                              secrets=secrets)  # fmt: skip
            except ValueError as exc:
                raise CommandError(f"{templates}: {exc}") from None

        output = options["output"] or saas.config_path
        programs = ", ".join(program_names(saas, profile))
        withheld = withheld_environment(environ, secrets)
        try:
            if options["check"]:
                # As render_supervisor --check: validated in a private temporary directory, nothing written.
                checked = check_rendered(render_for, saas.host)
                self.stdout.write(f"would write {output} ({profile} profile: {programs})")
                if withheld:
                    self.stdout.write(withheld)
                self.stdout.write(f"supervisord accepts it: {len(checked.programs)} programs (nothing written)")
                return
            if not options["example"]:
                ensure_dirs(saas.host)  # supervisord refuses a config whose log directory does not exist
            write_private(output, render_for(saas.host))
        except SupervisorError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"wrote {output} ({profile} profile: {programs})")
        if withheld:
            self.stdout.write(withheld)
