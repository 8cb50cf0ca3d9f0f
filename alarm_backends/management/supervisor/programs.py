"""The programs of the rendered supervisord config and the groups they belong to (pure: no I/O).

The groups are the original's: ``scheduler`` (beat and the crontab workers; here also the metrics exporter),
``selfmonitor`` (its ``healthz_daemon``: ``manage.py healthz -d -i 600``) and ``service`` (its ``prom_agg_gateway``,
rendered when ``PROM_AGG_GATEWAY_BINARY`` names the binary). A local Redis stays a group of its own, ``redis``, the
name ``platform`` recognises it by. ``supervisorctl restart
selfmonitor:*`` and the like keep working after the switch.

With ``SUPERVISOR_ENVIRON_SH`` set, every program but the local Redis and the gateway runs as the original's did:
``bash -c "source <environ.sh> && exec <command>"``, so the variables a deployment keeps in its ``environ.sh``
reach the programs (without the original's ``sleep 10`` first: priorities order the start).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alarm_backends.management.supervisor.workers import APP, Sizing

SCHEDULER_GROUP = "scheduler"
SELFMONITOR_GROUP = "selfmonitor"
SERVICE_GROUP = "service"
BEAT = "celery_beat"
EXPORTER = "metrics_exporter"
HEALTHZ = "healthz_daemon"
CONSOLE = "console"
GATEWAY = "prom_agg_gateway"
REDIS = "redis"
# The original's command line: the backend app installs the patched scheduler under this name.
SCHEDULER = "redbeat.RedBeatScheduler"
# Redis is started first (lower priority number) so the others find it listening.
REDIS_PRIORITY = 10
PROGRAM_PRIORITY = 100
CONFIG_NAME = "supervisord.conf"
STDOUT = "/dev/stdout"


@dataclass(frozen=True)
class Host:
    """Where the programs run on this host."""

    repo_dir: str
    python: str
    run_dir: str
    log_dir: str
    socket_path: str
    cpu_count: int = 1
    celery_workers: int = 0  # CELERY_WORKERS: 0 means the sizing formula
    log_to_stdout: bool = False  # container mode: the runtime collects stdout
    metrics_port: int = 0  # METRICS_EXPORTER_PORT: 0 leaves the exporter program out
    metrics_host: str = "127.0.0.1"  # METRICS_EXPORTER_HOST
    console_port: int = 0  # CONSOLE_PORT: 0 leaves the console program out
    console_host: str = "127.0.0.1"  # CONSOLE_HOST
    healthz_interval: int = 0  # HEALTHZ_DAEMON_INTERVAL: 0 leaves the self-monitoring daemon out
    conf_module: str = ""  # DJANGO_CONF_MODULE the renderer loaded (and validated)
    platform: str = "community"  # its platform, for the production profile's module
    environ_sh: str = ""  # SUPERVISOR_ENVIRON_SH: sourced before each program, as the original's bin/environ.sh
    gateway_binary: str = ""  # PROM_AGG_GATEWAY_BINARY: the original's aggregation gateway, when set
    gateway_port: int = 10206  # PROM_AGG_GATEWAY_PORT (BK_MONITOR_PROM_PORT)

    @classmethod
    def from_settings(cls, conf: Any, python: str) -> Host:
        url = str(conf.SUPERVISOR_SERVER)
        if not url.startswith("unix://"):
            raise ValueError(f"SUPERVISOR_SERVER={url!r} must be a unix:// socket: supervisord never listens on TCP")
        return cls(
            repo_dir=str(conf.BASE_DIR),
            python=python,
            run_dir=str(conf.RUN_DIR),
            log_dir=str(conf.LOG_PATH),
            socket_path=url[len("unix://") :],
            cpu_count=os.cpu_count() or 1,
            celery_workers=int(conf.CELERY_WORKERS),
            log_to_stdout=bool(conf.IS_CONTAINER_MODE),
            metrics_port=int(conf.METRICS_EXPORTER_PORT),
            metrics_host=str(conf.METRICS_EXPORTER_HOST),
            console_port=int(conf.CONSOLE_PORT),
            console_host=str(conf.CONSOLE_HOST),
            healthz_interval=int(conf.HEALTHZ_DAEMON_INTERVAL),
            conf_module=str(conf.DJANGO_CONF_MODULE),
            platform=str(conf.PLATFORM),
            environ_sh=str(conf.SUPERVISOR_ENVIRON_SH),
            gateway_binary=str(conf.PROM_AGG_GATEWAY_BINARY),
            gateway_port=int(conf.PROM_AGG_GATEWAY_PORT),
        )

    @property
    def console_address(self) -> str:
        host = f"[{self.console_host}]" if ":" in self.console_host else self.console_host
        return f"{host}:{self.console_port}"

    def sizing(self, profile: str) -> Sizing:
        return Sizing(profile=profile, cpu_count=self.cpu_count, celery_workers=self.celery_workers)

    @property
    def config_path(self) -> str:
        return str(Path(self.run_dir) / CONFIG_NAME)

    @property
    def metrics_dir(self) -> str:
        """Every program's ``PROMETHEUS_MULTIPROC_DIR``, which the exporter serves."""
        return str(Path(self.run_dir) / "metrics")

    @property
    def pidfile(self) -> str:
        return str(Path(self.run_dir) / "supervisord.pid")

    def logfile(self, program: str) -> str:
        return STDOUT if self.log_to_stdout else str(Path(self.log_dir) / f"{program}.log")

    def log_rotation(self) -> tuple[str, str]:
        """``(maxbytes, backups)`` of a log: a stream cannot be rotated (supervisord requires 0 for it)."""
        return ("0", "0") if self.log_to_stdout else ("50MB", "5")


@dataclass(frozen=True)
class Program:
    name: str
    argv: tuple[str, ...]
    group: str = SCHEDULER_GROUP  # "": in no group section
    priority: int = PROGRAM_PRIORITY
    wrapped: bool = True  # run through SUPERVISOR_ENVIRON_SH when it is set

    def command(self, environ_sh: str = "") -> list[str]:
        if not environ_sh or not self.wrapped:
            return list(self.argv)
        return ["bash", "-c", f"source {shlex.quote(environ_sh)} && exec {shlex.join(self.argv)}"]


def beat_argv(host: Host) -> list[str]:
    pidfile = str(Path(host.run_dir) / "celerybeat.pid")
    return [host.python, "-m", "celery", "-A", APP, "beat", "-l", "info", "-S", SCHEDULER, f"--pidfile={pidfile}"]


def exporter_argv(host: Host) -> list[str]:
    # Its address comes from the settings, like every other program's configuration.
    return [host.python, str(Path(host.repo_dir) / "manage.py"), EXPORTER]


def console_argv(host: Host) -> list[str]:
    """The operators' console: Django's WSGI app under gunicorn, two worker processes, on the loopback address."""
    return [host.python, "-m", "gunicorn", "config.wsgi:application", "--bind", host.console_address, "--workers", "2",
            "--chdir", host.repo_dir, "--access-logfile", "-"]  # fmt: skip


def healthz_argv(host: Host) -> list[str]:
    """The original's ``healthz_daemon`` command line (``manage.py healthz -d -i 600``)."""
    return [host.python, str(Path(host.repo_dir) / "manage.py"), "healthz", "-d", "-i", str(host.healthz_interval)]


def gateway_argv(host: Host) -> list[str]:
    """The original's ``prom_agg_gateway``: UDP (the cron runs' pushes) and HTTP (scrapes) on one port."""
    port = host.gateway_port
    return [host.gateway_binary, f"--aggate_listen_udp=:{port}", f"--aggate_listen_http=:{port}"]


def optional_programs(host: Host) -> list[Program]:
    """The programs a setting switches on, after beat and the workers."""
    found = []
    if host.metrics_port:
        found.append(Program(EXPORTER, tuple(exporter_argv(host))))
    if host.console_port:
        found.append(Program(CONSOLE, tuple(console_argv(host)), group=""))
    if host.healthz_interval:
        found.append(Program(HEALTHZ, tuple(healthz_argv(host)), SELFMONITOR_GROUP))
    if host.gateway_binary:
        found.append(Program(GATEWAY, tuple(gateway_argv(host)), SERVICE_GROUP, wrapped=False))
    return found


def group_sections(programs: Sequence[Program]) -> str:
    """One ``[group:…]`` section per group, groups and their programs in start order."""
    groups: dict[str, list[Program]] = {}
    for program in programs:
        if program.group:  # "": a group of its own, named like the program (supervisord's default)
            groups.setdefault(program.group, []).append(program)
    return "\n".join(
        f"[group:{group}]\nprograms={','.join(p.name for p in members)}\npriority={PROGRAM_PRIORITY}\n"
        for group, members in groups.items()
    )
