"""``manage.py check``: every crontab entry parses and its dotted path imports.

The loader resolves job paths only when a task runs, so one broken job cannot stop the others; this check finds
the broken ones before deployment (``make run`` runs it), naming the list, the index and the import error.
"""

from __future__ import annotations

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
        try:
            entries = parse_entries([("", setting, getattr(settings, setting))])
        except CronConfigError as exc:
            errors.append(Error(str(exc), id="bkmonitor.E001"))
            continue
        excluded = set(settings.EXCLUDE_WORKER_TASKS)
        for index, entry in enumerate(entries):
            if entry.path in excluded:
                continue
            try:
                resolve(entry.path)
            except CronJobImportError as exc:
                errors.append(Error(f"{setting}[{index}]: {exc}", id="bkmonitor.E002"))
    return errors
