"""supervisord's programs as metrics, read over its socket at each scrape of the host's exporter: whether supervisord
answers, whether each program runs, and when it was last started — a start time that keeps changing is a program
that keeps dying and being restarted (the flapping alert in support-files/prometheus)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from alarm_backends.management.supervisor.control import RPC_ERRORS, RUNNING, Supervisor, SupervisorError


class SupervisorCollector:
    """A prometheus_client collector of the programs of the supervisord on ``socket_path``."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bkmonitor_supervisor_up", "1 when this host's supervisord answers on its socket")
        try:
            processes = Supervisor(self.socket_path).processes()
        except (SupervisorError, *RPC_ERRORS):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        running = GaugeMetricFamily(
            "bkmonitor_supervisor_program_running", "1 while the program is RUNNING", labels=["program"]
        )
        started = GaugeMetricFamily(
            "bkmonitor_supervisor_program_start_time_seconds",
            "When supervisord last started the program, epoch seconds (each restart moves it)",
            labels=["program"],
        )
        for process in processes:
            running.add_metric([process.name], 1 if process.state == RUNNING else 0)
            if process.started_at is not None:
                started.add_metric([process.name], process.started_at)
        yield running
        yield started
