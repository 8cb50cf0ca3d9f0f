"""The console's view of this host's workers and the queues they consume: supervisord's programs (their state and
uptime, over its unix socket as supervisorctl reads them) and each crontab queue's depth and consumers, asked of
the broker when the page is asked for. Each part says what went wrong when it cannot be read."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from celery import Celery
from django.conf import settings

from alarm_backends.jobs.queue_depth import occupancy, queue_names
from alarm_backends.management.supervisor.control import RPC_ERRORS, ProcessInfo, Supervisor, SupervisorError
from alarm_backends.management.supervisor.programs import Host
from patches.redbeat.client import redact_url


@dataclass(frozen=True)
class QueueState:
    name: str
    messages: int
    consumers: int | None  # None: the broker does not count them (kombu's Redis transport)


@dataclass
class Fleet:
    programs: list[ProcessInfo] = field(default_factory=list)
    queues: list[QueueState] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read(app: Celery) -> Fleet:
    fleet = Fleet()
    path = Host.from_settings(settings, sys.executable).socket_path
    try:
        fleet.programs = Supervisor(path).processes()
    except (SupervisorError, *RPC_ERRORS) as exc:
        fleet.problems.append(f"supervisord ({path}) does not answer: {exc}; its programs are not listed")
    broker = app.connection_for_read()
    where = redact_url(broker.as_uri(include_password=True))
    try:
        with broker as connection:
            counts_consumers = connection.transport.driver_type == "amqp"
            for name in queue_names():
                messages, consumers = occupancy(connection, name)
                fleet.queues.append(QueueState(name, messages, consumers if counts_consumers else None))
    except Exception as exc:  # the broker's errors are transport-specific; whatever it is, the page still shows
        fleet.problems.append(f"the broker ({where}) cannot be read: {exc}; the queues are not listed")
    return fleet
