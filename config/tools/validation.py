"""Every setting that beat, the workers, the metrics exporter and the commands read, checked in one place.

``settings.py`` runs :func:`validate` once every settings module and ``BKAPP_SETTINGS_<NAME>`` override has been
applied, so every process — ``manage.py check`` and every other command, ``celery … beat``, ``celery … worker``,
the exporter — refuses the same bad value the same way, before it does anything: one line per culprit naming the
variable it came from, the value and what is expected; exit status 2 (:data:`EXIT_CONFIG`), no traceback. Nothing is
silently replaced by a default: ``REDBEAT_LOCK_TIMEOUT=0`` is an error, not 30.

Crontab entries are not checked here: a bad entry is skipped with one error by the loader and shown as an error row
by ``healthz`` and ``beat_schedule``, so one typo does not stop every other job (``manage.py check`` reports it).
"""

from __future__ import annotations

import ipaddress
import sys
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from config.tools.cluster import RoutingRule, check_code, check_name

# The exit status of a process refused for its configuration (2, as for a usage error): supervisord's log and a
# shell can tell it from a crash (1) or a signal.
EXIT_CONFIG = 2
OVERRIDE_PREFIX = "BKAPP_SETTINGS_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DB_ROLES = ("log", "cache", "queue", "service")


class SettingsError(ValueError):
    """One or more settings hold values the platform cannot use; the message has one line per culprit."""


# A check returns None when the value is usable, else why not, in full ("" means: "expected <rule.expected>").
Check = Callable[[Any, Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Rule:
    name: str
    expected: str
    check: Check
    env: tuple[str, ...] = ()  # the variables (besides BKAPP_SETTINGS_<name>) that set it, in precedence order


def _is_name(item: Any) -> bool:
    return isinstance(item, str) and bool(item)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer(low: int | None = None, high: int | None = None) -> Check:
    def check(value: Any, _: Mapping[str, Any]) -> str | None:
        ok = _is_int(value) and (low is None or value >= low) and (high is None or value <= high)
        return None if ok else ""

    return check


def number(low: float, high: float | None = None, *, above: bool = False) -> Check:
    """A number ≥ ``low`` (> ``low`` with ``above``) and ≤ ``high``."""

    def check(value: Any, _: Mapping[str, Any]) -> str | None:
        if not _is_number(value) or value != value:  # NaN compares false with everything
            return ""
        ok = (value > low if above else value >= low) and (high is None or value <= high)
        return None if ok else ""

    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any, _: Mapping[str, Any]) -> str | None:
        return None if isinstance(value, type(choices[0])) and value in choices else ""

    return check


def list_of(kind: Callable[[Any], bool]) -> Check:
    def check(value: Any, _: Mapping[str, Any]) -> str | None:
        return None if isinstance(value, list | tuple) and all(kind(item) for item in value) else ""

    return check


def _bool(value: Any, _: Mapping[str, Any]) -> str | None:
    return None if isinstance(value, bool) else ""


def _absolute_path(value: Any, _: Mapping[str, Any]) -> str | None:
    return None if value == "" or (isinstance(value, str) and value.startswith("/")) else ""


def _dotted_path(value: Any, _: Mapping[str, Any]) -> str | None:
    if value == "":
        return None
    ok = isinstance(value, str) and "." in value and all(part.isidentifier() for part in value.split("."))
    return None if ok else ""


def _ring_mode(value: Any, _: Mapping[str, Any]) -> str | None:
    # A raw override arrives as text ("true"), the settings module's value as a bool or "auto".
    return None if isinstance(value, bool) or str(value).strip().lower() in ("true", "false", "auto") else ""


def loopback(value: Any, _: Mapping[str, Any] | None = None) -> str | None:
    """A loopback address: the metrics name every job and queue of the host, so only local scrapers see them."""
    if value == "localhost":
        return None
    try:
        return None if ipaddress.ip_address(value).is_loopback else ""
    except ValueError:
        return ""


def _parses(
    parse: Callable[[Any], object], value: Any, errors: tuple[type[Exception], ...] = (ValueError,)
) -> str | None:
    """None when ``parse`` accepts ``value``; "" (expected <rule.expected>) when it raises one of ``errors``."""
    try:
        parse(value)
    except errors:
        return ""
    return None


def _host_addr(value: Any, _: Mapping[str, Any]) -> str | None:
    return None if value == "" else _parses(ipaddress.ip_address, value)


def _standby_interval(value: Any, conf: Mapping[str, Any]) -> str | None:
    if number(0.1, 60)(value, conf) is not None:
        return ""
    lease = conf.get("REDBEAT_LOCK_TIMEOUT")
    # Compared only with a valid lease: a bad lease has its own line.
    if number(1, 86400)(lease, conf) is None and value >= lease:
        return (
            f"expected a number of seconds shorter than REDBEAT_LOCK_TIMEOUT ({lease:g}s): a standby would miss leases"
        )
    return None


def _missed_run(value: Any, _: Mapping[str, Any]) -> str | None:
    from patches.redbeat.policy import MissedRun

    return _parses(MissedRun.parse, value) if isinstance(value, dict) else ""


def _key_prefix(value: Any, _: Mapping[str, Any]) -> str | None:
    return None if isinstance(value, str) and value and not any(c.isspace() for c in value) else ""


def _host_port(item: Any) -> bool:
    host, _, port = item.rpartition(":") if isinstance(item, str) else ("", "", "")
    return bool(host) and not any(c.isspace() for c in host) and port.isdigit() and 0 < int(port) < 65536


def _db_plan(value: Any, _: Mapping[str, Any]) -> str | None:
    if not isinstance(value, dict) or set(value) != set(DB_ROLES):
        return ""
    return None if all(_is_int(db) and db >= 0 for db in value.values()) else ""


def _cluster(part: str) -> Check:
    """The cluster's own parsers (config.tools.cluster), so their messages say what is wrong."""

    def check(value: Any, _: Mapping[str, Any]) -> str | None:
        try:
            if part == "name":
                check_name(value)
            elif part == "code":
                check_code(value)
            elif not isinstance(value, list | tuple) or not all(isinstance(rule, dict) for rule in value):
                return ""
            else:
                for rule in value:
                    RoutingRule.from_dict(rule)
        except ValueError as exc:
            return str(exc)
        return None

    return check


def _time_zone(value: Any, _: Mapping[str, Any]) -> str | None:
    return _parses(zoneinfo.ZoneInfo, value, (TypeError, ValueError, zoneinfo.ZoneInfoNotFoundError))


def _zone_or_empty(value: Any, conf: Mapping[str, Any]) -> str | None:
    return None if value == "" else _time_zone(value, conf)


def _supervisor_server(value: Any, _: Mapping[str, Any]) -> str | None:
    return None if isinstance(value, str) and value.startswith("unix://") and len(value) > 7 else ""


RULES = (
    Rule("CELERY_WORKERS", "a whole number of processes ≥ 0 (0: int(cpu ** 0.6 * 1.85))", integer(0, 1024)),
    Rule("CELERY_SERIALIZER", '"json" or "pickle"', one_of("json", "pickle")),
    Rule("CELERY_BROKER_BACKEND", '"rabbitmq" or "redis"', one_of("rabbitmq", "redis")),
    Rule("CRON_TASK_RAISE_ERRORS", "true or false", _bool),
    Rule("CLUSTER_SCOPED_NAMES", "true or false", _bool),
    Rule("HASH_RING_SEPARATE_LABELS", 'true, false or "auto"', _ring_mode),
    Rule("CRON_EXPIRES_CLOCK", '"redis" or "worker"', one_of("redis", "worker")),
    Rule("CRON_DEFAULT_TIMEZONE", 'an IANA time zone name (e.g. "Asia/Shanghai"), or ""', _zone_or_empty),
    Rule("CRON_DEFAULT_JITTER", "a number of seconds ≥ 0", number(0)),
    Rule(
        "CRON_DEFAULT_OVERLAP",
        '"allow", "skip", "buffer_one" or "replace"',
        one_of("allow", "skip", "buffer_one", "replace"),
    ),
    Rule("CRON_RUN_LEASE", "a number of seconds from 1 to 3600", number(1, 3600)),
    Rule("BROKER_REDIS_TRANSPORT", '"reliable" or "kombu"', one_of("reliable", "kombu")),
    Rule("METRICS_EXPORTER_HOST", "a loopback address (127.0.0.1, ::1 or localhost)", loopback),
    Rule("METRICS_EXPORTER_PORT", "a TCP port 1-65535, or 0 to leave the exporter out", integer(0, 65535)),
    Rule("CONSOLE_HOST", "a loopback address (127.0.0.1, ::1 or localhost)", loopback),
    Rule("CONSOLE_PORT", "a TCP port 1-65535, or 0 to leave the console out", integer(0, 65535)),
    Rule("SUPERVISOR_ENVIRON_SH", "an absolute path to a shell file, or empty", _absolute_path),
    Rule("PROM_AGG_GATEWAY_BINARY", "an absolute path, or empty", _absolute_path),
    Rule("PROM_AGG_GATEWAY_PORT", "a TCP/UDP port 1-65535", integer(1, 65535), ("BK_MONITOR_PROM_PORT",)),
    Rule("HEALTHZ_DAEMON_INTERVAL", "seconds between two checks, 1-86400, or 0 to leave it out", integer(0, 86400)),
    Rule("REDBEAT_LOCK_TIMEOUT", "the leader's lease: a number of seconds from 1 to 86400", number(1, 86400)),
    Rule("REDBEAT_STANDBY_INTERVAL", "a number of seconds from 0.1 to 60", _standby_interval),
    Rule(
        "REDBEAT_MISSED_RUN",
        'a JSON object {"policy": "once"|"skip"|"all", "grace": seconds ≥ 0, "max_catchup": whole number ≥ 1}',
        _missed_run,
    ),
    Rule("REDBEAT_FIRST_RUN", '"now" or "next"', one_of("now", "next")),
    Rule("REDBEAT_REDIS_DB", "a Redis DB number ≥ 0", integer(0)),
    Rule("REDBEAT_KEY_PREFIX", "a non-empty key prefix without blanks", _key_prefix),
    Rule("REDBEAT_REDIS_CLUSTER_NODES", 'a JSON list of "host:port" (empty: no cluster)', list_of(_host_port)),
    Rule("REDBEAT_COMMIT_REPLICAS", "a whole number of replicas from 0 to 16", integer(0, 16)),
    Rule("REDIS_DB_PLAN", f"a JSON object of the DB numbers (≥ 0) of exactly {', '.join(DB_ROLES)}", _db_plan),
    Rule("REDIS_PORT", "a TCP port 1-65535", integer(1, 65535), ("BK_MONITOR_REDIS_PORT", "REDIS_PORT")),
    Rule("CACHE_REDIS_PORT", "a TCP port 1-65535", integer(1, 65535), ("BK_MONITOR_CACHE_REDIS_PORT",)),
    Rule("RABBITMQ_PORT", "a TCP port 1-65535", integer(1, 65535), ("BK_MONITOR_RABBITMQ_PORT",)),
    Rule("DEFAULT_BK_BIZ_ID", "a business id (a whole number)", integer(), ("BKAPP_DEFAULT_BK_BIZ_ID",)),
    Rule("BKMONITOR_WORKER_INCLUDE_LIST", "a JSON list of business ids (whole numbers)", list_of(_is_int)),
    Rule("EXCLUDE_WORKER_TASKS", "a JSON list of dotted paths", list_of(lambda item: isinstance(item, str))),
    Rule("USE_DYNAMIC_SETTINGS", "true or false", _bool),
    Rule("HASH_RING_TARGETS_SOURCE", "a dotted path to a function, or empty", _dotted_path),
    Rule("TASK_ROOT_MODULES", "a JSON list of package names", list_of(_is_name)),
    Rule("CONSUL_SESSION_TTL", "a whole number of seconds from 10 to 86400 (Consul's bounds)", integer(10, 86400)),
    Rule("CONSUL_TIMEOUT", "a number of seconds above 0, at most 60", number(0, 60, above=True)),
    Rule(
        "ALARM_BACKEND_CLUSTER_NAME",
        "1-64 characters from a-z, 0-9, '-' and '_'",
        _cluster("name"),
        ("BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME",),
    ),
    Rule(
        "ALARM_BACKEND_CLUSTER_CODE",
        "a whole number 0-9999",
        _cluster("code"),
        ("BK_MONITOR_ALARM_BACKEND_CLUSTER_CODE",),
    ),
    Rule(
        "ALARM_BACKEND_CLUSTER_ROUTING_RULES",
        'a JSON list of {"target_type", "cluster_name", "matcher_type"[, "matcher_config"]} objects',
        _cluster("rules"),
    ),
    Rule("LOG_LEVEL", f"one of {', '.join(LOG_LEVELS)}", one_of(*LOG_LEVELS), ("BKAPP_LOG_LEVEL",)),
    Rule("LOG_FORMAT", '"text" or "json"', one_of("text", "json"), ("BKAPP_LOG_FORMAT",)),
    Rule("HOST_ADDR", "this host's IP address, or empty to detect it", _host_addr, ("BK_MONITOR_HOST_ADDR",)),
    Rule("API_CACHE_BASE_INTERVAL", "a whole number of minutes ≥ 1", integer(1), ("API_CACHE_BASE_INTERVAL",)),
    Rule("MAIL_REPORT_BIZ", "a business id ≥ 0 (0: no mail reports)", integer(0), ("MAIL_REPORT_BIZ",)),
    Rule("TIME_ZONE", "an IANA time zone name, e.g. Asia/Shanghai", _time_zone),
    Rule("SUPERVISOR_SERVER", "a unix:///path socket URL (supervisord never listens on TCP)", _supervisor_server),
)


def source(rule: Rule, environ: Mapping[str, str]) -> tuple[str, Any] | None:
    """The environment variable the setting's value came from, and its raw text; None when from a module."""
    for var in (OVERRIDE_PREFIX + rule.name, *rule.env):
        if environ.get(var):
            return var, environ[var]
    return None


def problems(conf: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """One line per setting of ``conf`` that breaks its rule, naming where the value came from."""
    found = []
    for rule in RULES:
        if rule.name not in conf:
            continue  # not a setting of this role
        value = conf[rule.name]
        why = rule.check(value, conf)
        if why is None:
            continue
        origin = source(rule, environ)
        where = f"{origin[0]}={origin[1]!r}" if origin else f"{rule.name}={value!r} (settings)"
        setting = f" ({rule.name})" if origin and origin[0] != OVERRIDE_PREFIX + rule.name else ""
        found.append(f"{where}: {why or 'expected ' + rule.expected}{setting}")
    return found


def validate(conf: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Raise :class:`SettingsError` with every problem of ``conf``, one per line."""
    found = problems(conf, environ)
    if found:
        raise SettingsError("\n".join(found))


def refuse(message: str) -> NoReturn:
    """Stop a process refused for its configuration: each line of ``message`` on stderr, exit status 2."""
    for line in str(message).splitlines() or [""]:
        print(f"bkmonitor: {line}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)
