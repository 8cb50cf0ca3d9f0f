"""``manage.py healthz [--json] [--timeout S] [--queue-threshold N] [-d [-i S]]``: check every dependency of the
platform (``-d``: the original's self-monitoring daemon, see ``healthz_daemon``).

One line per check — each Redis DB of the plan, the scheduler store, the broker, Consul, the beat lock, whether this
host leads, the crontab queues' depths — with its status (ok/warn/fail), a one-line detail and its time. The
original's ``healthz`` checked its dependencies the same way. Exit status 0 when nothing failed (warnings allowed),
1 otherwise, so it serves as a probe. Every check is bounded by ``--timeout``: an unreachable dependency fails its
own line and the others are still reported. No password is printed (see ``health_checks``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, CommandParser

from alarm_backends.management.base.leader import is_leader
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.health import checks as health_checks
from alarm_backends.management.health import status as health
from alarm_backends.management.health.daemon import DaemonLoop, cycles_per_day
from alarm_backends.management.utils import backend_app


class Command(OperatorCommand):
    help = (
        "Check the platform's dependencies (Redis DBs, crontab entries, scheduler store, broker, Consul, beat lock, "
        "leader, queues)."
    )
    # A probe must answer: every problem, a malformed crontab entry included, is a row of its report.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON list of checks instead of the report")
        parser.add_argument(
            "--timeout",
            type=float,
            default=health_checks.DEFAULT_TIMEOUT,
            help=f"seconds each check may take before it fails (default {health_checks.DEFAULT_TIMEOUT:g})",
        )
        parser.add_argument(
            "-d",
            dest="daemon",
            action="store_true",
            help="run as the original's self-monitoring daemon: check every interval on the leading host (see -i)",
        )
        parser.add_argument(
            "-i",
            dest="interval",
            metavar="SECONDS",
            type=int,
            default=600,
            help="with -d: seconds between two checks (default 600); the daemon exits after a day of them",
        )
        parser.add_argument(
            "-t",
            dest="resolve",
            action="store_true",
            help="accepted for the original's command lines: no check of this platform has an automatic repair",
        )
        parser.add_argument(
            "--queue-threshold",
            type=int,
            default=health_checks.DEFAULT_QUEUE_THRESHOLD,
            help=f"warn when a crontab queue holds more messages (default {health_checks.DEFAULT_QUEUE_THRESHOLD})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        timeout, threshold = float(options["timeout"]), int(options["queue_threshold"])
        if timeout <= 0:
            raise CommandError(f"--timeout {timeout:g}: must be more than 0 seconds")
        if threshold < 0:
            raise CommandError(f"--queue-threshold {threshold}: must be 0 or more")
        app = backend_app()

        def check() -> list[health.CheckResult]:
            checks = health_checks.all_checks(app, timeout, threshold)
            return list(health_checks.run_checks(checks, timeout, health_checks.secrets_of(app)))

        if options["daemon"]:
            self._daemon(check, int(options["interval"]))
            return
        results = check()
        self.stdout.write(health.to_json(results) if options["json"] else health.report(results))
        if health.exit_code(results):
            failed = ", ".join(result.name for result in results if result.status == health.FAIL)
            raise CommandError(f"unhealthy: {failed}", returncode=health.EXIT_FAIL)

    def _daemon(self, check: Callable[[], list[health.CheckResult]], interval: int) -> None:
        if interval <= 0:
            raise CommandError(f"-i {interval}: must be more than 0 seconds")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        loop = DaemonLoop(interval, check, is_leader, stop, cycles_per_day(interval))
        made = loop.run()
        self.stdout.write(f"healthz: {made} check(s) made, bye!")
