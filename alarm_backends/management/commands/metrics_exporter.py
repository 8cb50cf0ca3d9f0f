"""``manage.py metrics_exporter [--host H] [--port P]``: serve this host's metrics for Prometheus.

Beat, the workers and their prefork children write samples to ``PROMETHEUS_MULTIPROC_DIR`` (supervisord sets it for
every program); this command serves their sum on ``http://<host>:<port>/metrics`` until SIGTERM or SIGINT, with the
state of supervisord's programs (``management.supervisor.metrics``). It runs as the ``metrics_exporter`` program of
the supervisord config (see ``alarm_backends.core.prometheus.exporter``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from alarm_backends.core.prometheus.exporter import ExporterError, check_address, metrics_dir, serve
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.supervisor.metrics import SupervisorCollector
from alarm_backends.management.supervisor.programs import Host


class Command(OperatorCommand):
    help = "Serve the metrics of this host's beat and workers (PROMETHEUS_MULTIPROC_DIR) on a loopback port."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help="loopback address (default: METRICS_EXPORTER_HOST)")
        parser.add_argument("--port", type=int, default=None, help="TCP port (default: METRICS_EXPORTER_PORT)")

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"] or str(settings.METRICS_EXPORTER_HOST)
        port = options["port"] if options["port"] is not None else int(settings.METRICS_EXPORTER_PORT)
        stop = threading.Event()
        try:
            path = metrics_dir(os.environ)
            check_address(host, port)
            # supervisord's programs too: the exporter runs under it, on its socket (see management.supervisor.metrics)
            socket_path = Host.from_settings(settings, sys.executable).socket_path
            server, thread = serve(path, host, port, [SupervisorCollector(socket_path)])
        except ExporterError as exc:
            raise CommandError(str(exc)) from None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"serving the metrics of {path} on http://{host}:{port}/metrics")
        self.stdout.flush()
        stop.wait()
        server.shutdown()
        server.server_close()
        thread.join(5)
        self.stdout.write("stopped")
