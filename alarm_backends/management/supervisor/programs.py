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

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alarm_backends.management.supervisor.workers import APP

if TYPE_CHECKING:  # the renderer imports this module
    from alarm_backends.management.supervisor.render import Host

SCHEDULER_GROUP = "scheduler"
SELFMONITOR_GROUP = "selfmonitor"
SERVICE_GROUP = "service"
BEAT = "celery_beat"
EXPORTER = "metrics_exporter"
HEALTHZ = "healthz_daemon"
GATEWAY = "prom_agg_gateway"
REDIS = "redis"
# The original's command line: the backend app installs the patched scheduler under this name.
SCHEDULER = "redbeat.RedBeatScheduler"
# Redis is started first (lower priority number) so the others find it listening.
REDIS_PRIORITY = 10
PROGRAM_PRIORITY = 100


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
