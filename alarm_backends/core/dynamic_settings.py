"""The original's settings from the database (its ``hack_settings(GlobalConfig, settings)``): a few settings are
read from the ``global_setting`` table (``alarm_backends.models.GlobalConfig``) when a row names them, each value
kept for :data:`CACHE_SECONDS`, and from the settings modules otherwise.

:func:`install` (called by the backend app when ``USE_DYNAMIC_SETTINGS`` is true, as the original's app does at
import) makes ``settings.<NAME>`` itself answer from the table, so code that reads ``django.conf.settings`` — the
platform's and product code — sees what an operator stored there. Only the names of :data:`DYNAMIC` are looked up:
the ones the scheduler platform reads (the original's list has more, for the alarm pipeline).

Unlike the original, a row is checked by the same rule as the environment (config.tools.validation): a bad value is
logged once as an ERROR naming the row, and the static setting is used. A database the process cannot read (none
configured, the server down) leaves the static settings in force, said once at WARNING; a database without the table
(never migrated: the embedded default) is the usual state, said at DEBUG only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import LazySettings, settings

from config.tools.validation import RULES

logger = logging.getLogger("alarm_backends.dynamic_settings")

DYNAMIC = ("CELERY_WORKERS", "EXCLUDE_WORKER_TASKS", "ALARM_BACKEND_CLUSTER_ROUTING_RULES")
CACHE_SECONDS = 180.0
_RULES = {rule.name: rule for rule in RULES if rule.name in DYNAMIC}

Reader = Callable[[str], Any]  # the stored value of a name, or MISSING; raises when the table cannot be read
MISSING = object()


class NoTableError(LookupError):
    """The database has no ``global_setting`` table (not migrated: the embedded default)."""


def _read_table(name: str) -> Any:
    from django.db import connection

    from alarm_backends.models import GlobalConfig

    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3") and not os.path.exists(database["NAME"]):
        # The embedded default before anything created the file (a first `make run`): not an error.
        raise NoTableError(f"no database file {database['NAME']} yet")
    if GlobalConfig._meta.db_table not in connection.introspection.table_names():
        raise NoTableError("no global_setting table: run `manage.py migrate` to store settings there")
    return GlobalConfig.get(name, MISSING)


class DynamicValues:
    """The stored values, each kept ``ttl`` seconds (a row that is gone or bad falls back to ``static``)."""

    def __init__(
        self, reader: Reader = _read_table, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reader, self.ttl, self.clock = reader, ttl, clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def get(self, name: str, static: Any) -> Any:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(name)
            if cached is None or cached[0] <= now:
                cached = self._cache[name] = (now + self.ttl, self._load(name))
        value = cached[1]
        return static if value is MISSING else value

    def _load(self, name: str) -> Any:
        try:
            value = self.reader(name)
        except NoTableError as exc:
            # The usual state where no operator stored a setting: not worth a line in every command's output.
            self._once("no table", logging.DEBUG, "no settings in the database (%s): the settings modules' values "
                       "are used", exc)  # fmt: skip
            return MISSING
        except Exception as exc:  # any database error: the static settings stay in force
            self._once("unreadable", logging.WARNING, "settings from the database (table global_setting) cannot be "
                       "read (%s: %s): the settings modules' values are used", type(exc).__name__, exc)  # fmt: skip
            return MISSING
        if value is MISSING:
            return MISSING
        rule = _RULES[name]
        problem = rule.check(value, {})
        if problem is not None:
            self._once(f"{name}={value!r}", logging.ERROR, "global_setting row %s = %r: expected %s; the settings "
                       "modules' value is used", name, value, problem or rule.expected)  # fmt: skip
            return MISSING
        return value

    def _once(self, what: str, level: int, message: str, *args: Any) -> None:
        if what not in self._said:
            self._said.add(what)
            logger.log(level, message, *args)


_django_getattr = LazySettings.__getattr__


def _getattr(self: LazySettings, name: str) -> Any:
    """``LazySettings.__getattr__`` while installed: Django's, except that the names of :data:`DYNAMIC` are not kept
    in the instance after a read (Django keeps every setting there, so a later read would never ask again)."""
    value = _django_getattr(self, name)
    if name in DYNAMIC and _installed is not None:
        self.__dict__.pop(name, None)
        return _installed.get(name, value)
    return value


_installed: DynamicValues | None = None


def install(values: DynamicValues | None = None) -> None:
    """From now on ``settings.<one of DYNAMIC>`` reads the table (cached). Idempotent.

    Django's class is patched, as the original patches it: the settings object proxies ``__class__`` to the
    settings it wraps, so it cannot be given a subclass of its own."""
    global _installed
    _installed = values or DynamicValues()
    LazySettings.__getattr__ = _getattr
    for name in DYNAMIC:
        settings.__dict__.pop(name, None)


def uninstall() -> None:
    global _installed
    _installed = None
    LazySettings.__getattr__ = _django_getattr
