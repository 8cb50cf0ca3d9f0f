"""``manage.py check``: every crontab entry parses and its dotted path imports, and the settings keep their rules.

The loader resolves job paths only when a task runs, so one broken job cannot stop the others; this check finds
the broken ones before deployment, naming the list, the index and the import error. :func:`crontab_problems` is
the same finding for the operators' commands (``healthz``, ``beat_schedule``), which show each bad entry as an error
row instead of refusing to run; the other operator commands (``make run`` among them) run every check but these.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from alarm_backends.core.host import get_host_addr
from alarm_backends.service.scheduler.crontab import CronConfigError, parse_entries
from alarm_backends.service.scheduler.runner import CronJobImportError, resolve
from config.tools.validation import problems

LISTS = ("DEFAULT_CRONTAB", "ACTION_TASK_CRONTAB", "LONG_TASK_CRONTAB", "API_CRONTAB", "REPORT_CRONTAB")
MALFORMED, UNIMPORTABLE = "bkmonitor.E001", "bkmonitor.E002"


@dataclass(frozen=True)
class EntryProblem:
    """A crontab entry that will not run: ``malformed`` ones are skipped by the loader (E001), the others are
    registered and fail each time they run (E002)."""

    id: str
    setting: str
    index: int  # -1: the whole list is unusable
    path: str  # the entry's dotted path, "" when it has no readable one
    message: str

    @property
    def malformed(self) -> bool:
        return self.id == MALFORMED

    @property
    def where(self) -> str:
        return f"{self.setting}[{self.index}]" if self.index >= 0 else self.setting


def crontab_problems(conf: Any = settings) -> list[EntryProblem]:
    """Every entry of the crontab lists that is malformed or whose job cannot be imported, in list order."""
    found: list[EntryProblem] = []
    excluded = set(conf.EXCLUDE_WORKER_TASKS)
    for setting in LISTS:
        bad: list[CronConfigError] = []
        entries = parse_entries([("", setting, getattr(conf, setting))], bad)
        found += [EntryProblem(MALFORMED, exc.setting, exc.index, exc.path, str(exc)) for exc in bad]
        for entry in entries:
            if entry.path in excluded:
                continue
            try:
                resolve(entry.path)
            except CronJobImportError as exc:
                message = f"{setting}[{entry.index}]: {exc}"
                found.append(EntryProblem(UNIMPORTABLE, setting, entry.index, entry.path, message))
    return sorted(found, key=lambda problem: (LISTS.index(problem.setting), problem.index))


# The crontab entries' checks have a tag of their own: the operator commands run every other check (a malformed
# entry is skipped by beat and shown by healthz and beat_schedule as an error row, so it must not stop `make run` or
# `make stop`), and `manage.py check` runs them all.
CRONTAB_TAG = "bkmonitor_crontab"


@register(CRONTAB_TAG)
def check_crontab_entries(app_configs: Any = None, **_: Any) -> list[CheckMessage]:
    return [Error(problem.message, id=problem.id) for problem in crontab_problems()]


@register("bkmonitor")
def check_settings(app_configs: Any = None, **_: Any) -> list[CheckMessage]:
    """The settings' rules (``config.tools.validation``), which ``settings.py`` already enforces when it loads:
    this reports values changed after that (``override_settings``, a settings module edited under a running
    process) the same way."""
    conf = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    return [Error(problem, id="bkmonitor.E004") for problem in problems(conf, {})]


@register("bkmonitor")
def check_ring_address(app_configs: Any = None, **_: Any) -> list[CheckMessage]:
    """With Consul, this host's address on the ring must be one the other hosts can tell apart."""
    if not settings.CONSUL_ENABLED:
        return []
    try:
        addr = get_host_addr()
    except ValueError:
        return []  # a malformed HOST_ADDR is check_settings' line
    if ipaddress.ip_address(addr).is_loopback:
        # Every host would register as 127.x and each would think it owns the leader's business.
        return [Error(f"this host's address on the ring is {addr}, a loopback address: set BK_MONITOR_HOST_ADDR to "
                      "its address on the network", id="bkmonitor.E003")]  # fmt: skip
    return []
