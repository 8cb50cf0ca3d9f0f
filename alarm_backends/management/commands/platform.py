"""``manage.py platform start|stop|status``: the scheduler group under supervisord on this host (``make run``).

``start`` renders the config into the run dir, starts supervisord in the background and waits until every program
is RUNNING; ``stop`` shuts supervisord down and waits for it to exit; ``status`` lists the programs.
One supervisord per run dir (``BKM_RUN_DIR``): ``start`` on a running one reports it instead of starting another.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone
from supervisor.supervisorctl import LSBStatusExitStatuses

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.prometheus.exporter import clear as clear_metrics
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.schedule.view import stamp
from alarm_backends.management.supervisor.control import (
    REDIS_AUTO,
    REDIS_CHOICES,
    RPC_ERRORS,
    RUNNING,
    ProcessInfo,
    Supervisor,
    SupervisorError,
    orphan_pid,
    start_supervisord,
    terminate,
    validate_config,
    wait_for_socket,
    wait_gone,
    wait_running,
)
from alarm_backends.management.supervisor.files import plan, render_to_file
from alarm_backends.management.supervisor.render import Host
from alarm_backends.management.supervisor.workers import PROFILES, SMALL

# supervisorctl status's exit status when a program is not running (LSB "program is not running").
NOT_RUNNING = LSBStatusExitStatuses.NOT_RUNNING


def detail(process: ProcessInfo) -> str:
    """supervisord's description of ``process``, a stop time given with its UTC offset in Django's TIME_ZONE (as every
    time the commands print), where supervisord prints it in its own local time with no zone."""
    if process.stopped_at is None:
        return process.description
    return f"stopped {stamp(process.stopped_at, timezone.get_default_timezone())}"


class Command(OperatorCommand):
    help = "Start, stop or show the scheduler (beat and the crontab workers) under supervisord on this host."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=("start", "stop", "status"))
        parser.add_argument(
            "--profile", choices=PROFILES, default=SMALL, help="concurrency profile for start (default: small)"
        )
        parser.add_argument(
            "--redis",
            choices=REDIS_CHOICES,
            default=REDIS_AUTO,
            help="run a local redis-server: auto (when nothing answers at a local REDIS_HOST), yes or no",
        )
        parser.add_argument(
            "--timeout", type=float, default=120.0, help="seconds to wait for the programs to start or stop"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.host = Host.from_settings(settings, python=sys.executable)
            self.supervisor = Supervisor(self.host.socket_path)
            if options["action"] == "start":
                self.start(options["profile"], options["redis"], options["timeout"])
            elif options["action"] == "stop":
                self.stop(options["timeout"])
            else:
                self.status()
        except (SupervisorError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except RPC_ERRORS as exc:
            raise CommandError(f"lost contact with supervisord on {self.host.socket_path}: {exc}") from None

    # --- start ------------------------------------------------------------------------------------------------

    def start(self, profile: str, redis_mode: str, timeout: float) -> None:
        if self.supervisor.answers():
            self.stdout.write(
                f"supervisord is already running (pid {self.supervisor.pid()}, socket {self.host.socket_path}): "
                "not starting a second one"
            )
            self.status()
            return
        orphan = orphan_pid(self.host)
        if orphan is not None:
            raise CommandError(
                f"supervisord pid {orphan} (from {self.host.pidfile}) is alive but its socket "
                f"{self.host.socket_path} does not answer: stop it first (`make stop`, or kill {orphan})"
            )
        config = plan(settings, self.host, profile, redis_mode=redis_mode, queue_name=get_cluster().queue_name)
        rendered = render_to_file(config, self.host, self.host.config_path)
        validate_config(rendered.path)
        if self.host.console_port:
            self.migrate_console()
        # supervisord is not running: the samples left by its previous run's processes go.
        clear_metrics(Path(self.host.metrics_dir))
        if rendered.redis is not None:
            self.stdout.write(
                f"no Redis answers on {settings.REDIS_HOST}:{settings.REDIS_PORT}: "
                f"running {rendered.redis.binary} there under supervisord (its data in an append-only file in "
                f"{self.host.run_dir})"
            )
        self.stdout.write(f"starting supervisord ({profile} profile) with {rendered.path}")
        started = time.monotonic()
        start_supervisord(self.host.python, rendered.path, self.host.repo_dir)
        if not wait_for_socket(self.supervisor, timeout):
            raise CommandError(
                f"supervisord started but {self.host.socket_path} does not answer after {timeout:.0f} s; "
                f"see {self.host.log_dir}/supervisord.log"
            )

        def progress(process: ProcessInfo) -> None:
            self.stdout.write(
                f"  {process.name:<40} {RUNNING}  pid {process.pid:<8} ({time.monotonic() - started:.1f} s)"
            )

        pending = wait_running(self.supervisor, timeout, progress)
        if pending:
            raise CommandError(self.not_running_message(pending, timeout))
        self.stdout.write(self.style.SUCCESS(f"all {len(rendered.programs)} programs are RUNNING"))
        self.stdout.write(
            f"logs:   {self.host.log_dir}/<program>.log (supervisord: {self.host.log_dir}/supervisord.log)"
        )
        if self.host.console_port:
            self.stdout.write(
                f"console: http://{self.host.console_address}/  (first user: {self.host.python} "
                f"{self.host.repo_dir}/manage.py createsuperuser)"
            )
        self.stdout.write(f"status: make status  (or: supervisorctl -c {rendered.path} status)")
        self.stdout.write("stop:   make stop")

    def migrate_console(self) -> None:
        """The console's tables (users, sessions, the audit trail), created or brought up to date before it starts."""
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except DatabaseError as exc:
            where = settings.DATABASES["default"]["NAME"]
            raise CommandError(
                f"the console's database ({where}) cannot be migrated: {exc}; "
                "BKAPP_SETTINGS_CONSOLE_PORT=0 leaves the console out"
            ) from None

    def not_running_message(self, pending: list[ProcessInfo], timeout: float) -> str:
        lines = [f"{len(pending)} program(s) not RUNNING (waited up to {timeout:.0f} s):"]
        for process in pending:
            why = process.spawnerr or detail(process)
            lines.append(f"  {process.name}: {process.state} {why}; log: {process.logfile}")
        lines.append(f"supervisord itself: {self.host.log_dir}/supervisord.log")
        lines.append("supervisord is still running so the state can be inspected; `make stop` stops everything")
        return "\n".join(lines)

    # --- stop -------------------------------------------------------------------------------------------------

    def stop(self, timeout: float) -> None:
        if self.supervisor.answers():
            pid = self.supervisor.pid()
            self.stdout.write(f"stopping supervisord (pid {pid}) and its programs")
            self.supervisor.shutdown()
        else:
            orphan = orphan_pid(self.host)
            if orphan is None:
                self.stdout.write(f"supervisord is not running (run dir {self.host.run_dir})")
                return
            pid = orphan
            self.stdout.write(f"{self.host.socket_path} does not answer: sending SIGTERM to supervisord pid {pid}")
            terminate(pid)
        if not wait_gone(pid, timeout):
            raise CommandError(
                f"supervisord (pid {pid}) is still running after {timeout:.0f} s; "
                f"see {self.host.log_dir}/supervisord.log"
            )
        self.stdout.write(self.style.SUCCESS("stopped"))

    # --- status -----------------------------------------------------------------------------------------------

    def status(self) -> None:
        if not self.supervisor.answers():
            raise CommandError(
                f"supervisord is not running (no answer on {self.host.socket_path})", returncode=NOT_RUNNING
            )
        processes = self.supervisor.processes()
        for process in processes:
            self.stdout.write(f"{process.name:<40} {process.state:<10} {detail(process)}")
        down = [p.name for p in processes if p.state != RUNNING]
        if down:
            raise CommandError(f"not RUNNING: {', '.join(down)}", returncode=NOT_RUNNING)
