"""``manage.py check``: every crontab entry parses and its dotted path imports.

The loader resolves job paths only when a task runs, so one broken job cannot stop the others; this check finds
the broken ones before deployment (``make run`` runs it), naming the list, the index and the import error.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from alarm_backends.service.scheduler.crontab import CronConfigError, parse_entries
from alarm_backends.service.scheduler.runner import CronJobImportError, resolve

LISTS = ("DEFAULT_CRONTAB", "ACTION_TASK_CRONTAB", "LONG_TASK_CRONTAB", "API_CRONTAB", "REPORT_CRONTAB")


@register("bkmonitor")
def check_crontab_entries(app_configs: Any = None, **_: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for setting in LISTS:
        bad: list[CronConfigError] = []
        entries = parse_entries([("", setting, getattr(settings, setting))], bad)
        errors += [Error(str(exc), id="bkmonitor.E001") for exc in bad]
        excluded = set(settings.EXCLUDE_WORKER_TASKS)
        for index, entry in enumerate(entries):
            if entry.path in excluded:
                continue
            try:
                resolve(entry.path)
            except CronJobImportError as exc:
                errors.append(Error(f"{setting}[{index}]: {exc}", id="bkmonitor.E002"))
    return errors


@register("bkmonitor")
def check_ring_settings(app_configs: Any = None, **_: Any) -> list[CheckMessage]:
    """The settings registration and the leader check need, refused before beat starts rather than in its tick."""
    from alarm_backends.management.base.service_discovery import session_ttl
    from alarm_backends.management.utils import get_host_addr

    errors: list[CheckMessage] = []
    try:
        addr = get_host_addr()
        if settings.CONSUL_ENABLED and ipaddress.ip_address(addr).is_loopback:
            # Every host would register as 127.x and each would think it owns the leader's business.
            errors.append(Error(f"this host's address on the ring is {addr}, a loopback address: set "
                                "BK_MONITOR_HOST_ADDR to its address on the network", id="bkmonitor.E003"))  # fmt: skip
    except ValueError as exc:
        errors.append(Error(str(exc), id="bkmonitor.E003"))
    try:
        session_ttl()
    except ValueError as exc:
        errors.append(Error(str(exc), id="bkmonitor.E004"))
    return errors


@register("bkmonitor")
def check_cluster(app_configs: Any = None, **_: Any) -> list[CheckMessage]:
    """The cluster's name, code and routing rules: beat and the workers refuse to start without a valid one."""
    from alarm_backends.core.cluster import Cluster

    try:
        Cluster.from_settings()
    except ValueError as exc:
        return [Error(str(exc), id="bkmonitor.E005")]
    return []
