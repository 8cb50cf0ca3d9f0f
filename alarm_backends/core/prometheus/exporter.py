"""One host's metrics over HTTP: every process's samples in ``PROMETHEUS_MULTIPROC_DIR``, aggregated at each scrape.

supervisord gives every program the same ``PROMETHEUS_MULTIPROC_DIR`` (``<run dir>/metrics``): beat, the workers
and their prefork children each write their samples there, and ``manage.py metrics_exporter`` serves the sum. The
directory is emptied before supervisord starts (``manage.py platform start``, ``render_supervisor --clear-metrics``),
never while the programs run: counters of processes that ended (a recycled prefork child) must keep counting.

Gauges whose value only means something while their process lives (``multiprocess_mode`` ``live*``, such as
``bkmonitor_beat_leader``) are forgotten at the next scrape once their process is gone, even when it was killed
without a chance to say so: the exporter checks each such file's pid. That needs the exporter in the programs' pid
namespace, which is why it runs under the same supervisord, not in a container of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from alarm_backends.core.processes import pid_alive
from config.tools.validation import loopback

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


class ExporterError(ValueError):
    """The exporter cannot run as configured; the message names the setting."""


def metrics_dir(environ: Mapping[str, str]) -> Path:
    """The multi-process directory the programs write to (this package creates it when missing, see __init__)."""
    value = environ.get(ENV, "")
    if not value:
        raise ExporterError(f"{ENV} is not set: the programs write no samples for the exporter to serve")
    return Path(value)


def check_address(host: str, port: int) -> tuple[str, int]:
    """A loopback address and a TCP port: the metrics name every job and queue of the host, so they are served
    to local scrapers (a Prometheus agent, a sidecar) only."""
    if loopback(host) is not None:  # the settings' own rule (config.tools.validation)
        raise ExporterError(f"METRICS_EXPORTER_HOST={host!r} is not a loopback address (use 127.0.0.1 or ::1)")
    if not 0 < port < 65536:
        raise ExporterError(f"METRICS_EXPORTER_PORT={port!r} is not a TCP port (1-65535)")
    return host, port


def forget_dead(path: Path) -> list[int]:
    """Remove the live-gauge files of processes that no longer run; the pids forgotten. Two scrapes at once may
    both find a dead pid: a file the other one removed first is not an error."""
    pids = {int(match[1]) for name in os.listdir(path) if (match := _LIVE_GAUGE.match(name))}
    dead = sorted(pid for pid in pids if not pid_alive(pid))
    for pid in dead:
        with contextlib.suppress(FileNotFoundError):
            mark_process_dead(pid, str(path))
    return dead


def clear(path: Path) -> int:
    """Empty (or create) the directory before the programs start; the number of sample files removed."""
    path.mkdir(parents=True, exist_ok=True)
    files = glob.glob(str(path / "*.db"))
    for name in files:
        os.remove(name)
    return len(files)


class HostCollector:
    """``MultiProcessCollector`` that first forgets the live gauges of dead processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._samples = MultiProcessCollector(None, path=str(path))

    def collect(self) -> Iterable[Metric]:
        forget_dead(self.path)
        return self._samples.collect()


def serve(path: Path, host: str, port: int, extra: Iterable[Collector] = ()) -> tuple[WSGIServer, Thread]:
    """Serve ``path``'s samples, and those of the ``extra`` collectors, on ``http://host:port/metrics`` from a
    background thread."""
    registry = CollectorRegistry()
    registry.register(HostCollector(path))
    for collector in extra:
        registry.register(collector)
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ExporterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
