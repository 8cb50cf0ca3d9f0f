"""The I/O of ``manage.py healthz``: one function per dependency, and a runner that bounds them all.

Each check builds its own short-timeout client rather than the shared ones (``get_client``, ``get_redis``): those
carry the platform's longer socket timeouts and retry policies, meant to ride out a blip inside a worker, where
here an unreachable dependency must fail its own line within ``timeout`` seconds. The runner runs the checks in
daemon threads and stops waiting at the deadline, so even a hang inside a library (a DNS lookup, a TLS handshake)
costs one failed line, never the command.

Passwords: addresses are printed through ``describe_role()`` / ``redact_url``, and every error text goes through
:func:`scrub`, since a client library may quote a URL back in its exception.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from celery import Celery
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from alarm_backends.checks import LISTS, EntryProblem, crontab_problems
from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.core.processes import pid_alive
from alarm_backends.core.storage.redis import ROLES, build_client, db_of, describe_role, server_settings
from alarm_backends.management.health.status import FAIL, OK, WARN, CheckResult
from alarm_backends.management.schedule.view import duration
from config.tools.consul import uses_ring
from patches.redbeat.client import MASK, build_redis, redact_url
from patches.redbeat.config import SchedulerConfig

BEAT_LOCK_LUA = (Path(__file__).parent / "beat_lock.lua").read_text(encoding="utf-8")

DEFAULT_TIMEOUT = 3.0
DEFAULT_QUEUE_THRESHOLD = 1000

# What a check returns: status, one-line detail, extras for --json.
CheckOutcome = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], CheckOutcome]


# --- the runner -----------------------------------------------------------------------------------------------


def run_checks(checks: Iterable[Check], timeout: float, secrets: Iterable[str] = ()) -> list[CheckResult]:
    """Every check at once, each in a daemon thread; a check still running at ``timeout`` fails as unanswered."""
    secret_list = [s for s in secrets if s]
    slots: list[tuple[Check, threading.Thread, list[CheckResult]]] = []
    for check in checks:
        box: list[CheckResult] = []
        thread = threading.Thread(target=_run_one, args=(check, box, secret_list), daemon=True)
        thread.start()
        slots.append((check, thread, box))
    deadline = time.monotonic() + timeout
    results = []
    for check, thread, box in slots:
        thread.join(max(0.0, deadline - time.monotonic()))
        if box:
            results.append(box[0])
        else:  # the thread is left to finish on its own: it is a daemon and holds nothing the command needs
            results.append(CheckResult(check.name, FAIL, f"no answer within {timeout:g}s", timeout))
    return results


def _run_one(check: Check, box: list[CheckResult], secrets: list[str]) -> None:
    started = time.monotonic()
    try:
        status, detail, data = check.run()
    except Exception as exc:  # any failure of a dependency is that line's verdict, never the command's
        status, detail, data = FAIL, _error(exc), {}
    box.append(CheckResult(check.name, status, scrub(detail, secrets), time.monotonic() - started, data))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def url_password(url: str) -> str:
    """The password in a URL's userinfo (raw and URL-decoded forms are both scrubbed), or ""."""
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def secrets_of(app: Celery) -> list[str]:
    """Every configured password, to mask in error texts."""
    found = [
        settings.REDIS_PASSWORD,
        settings.REDIS_SENTINEL_PASSWORD,
        settings.CACHE_REDIS_PASSWORD,
        settings.CACHE_REDIS_SENTINEL_PASSWORD,
        app.conf.get("broker_password") or "",
    ]
    for url in (app.conf.get("redbeat_redis_url"), app.conf.get("broker_url"), app.conf.get("result_backend")):
        for part in str(url or "").split(";"):
            password = url_password(part)
            found += [password, unquote(password)]
    # Longest first, so a password containing another is masked whole.
    return sorted({str(s) for s in found if s}, key=len, reverse=True)


# --- the checks -----------------------------------------------------------------------------------------------


def redis_db(role: str, timeout: float) -> CheckOutcome:
    """PING the role's DB, on a client of its own with ``timeout`` (the shared one may wait longer)."""
    client = build_client(server_settings(role), db_of(role), socket_timeout=timeout)
    # redis-py retries a refused connection with backoff by default: one attempt is the answer wanted here.
    client.set_retry(Retry(NoBackoff(), 0))
    try:
        client.ping()
        keys = int(client.dbsize())
    except redis.RedisError as exc:
        return FAIL, f"{describe_role(role)}: {_error(exc)}", {"db": db_of(role)}
    finally:
        client.close()
    return OK, f"{describe_role(role)}: PONG, {keys} keys", {"db": db_of(role), "keys": keys}


def _store_client(app: Celery, timeout: float) -> tuple[redis.Redis, str]:
    url = str(app.conf.get("redbeat_redis_url") or "")
    options = dict(app.conf.get("redbeat_redis_options") or {})
    # retry_period 0: no retries — an unreachable store should fail this line at once, not after the backoff.
    options.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry_period=0)
    return build_redis(url, options), redact_url(url)


def scheduler_store(app: Celery, timeout: float) -> CheckOutcome:
    client, where = _store_client(app, timeout)
    prefix = SchedulerConfig.from_app(app.conf).key_prefix
    try:
        client.ping()
        entries = int(client.zcard(prefix + ":schedule"))
    except redis.RedisError as exc:
        return FAIL, f"{where}: {_error(exc)}", {}
    finally:
        client.close()
    if not entries:
        return OK, f"{where}: PONG, no entries yet (no beat has synced the schedule)", {"entries": 0}
    return OK, f"{where}: PONG, {entries} entries in {prefix}:schedule", {"entries": entries}


def beat_lock(app: Celery, timeout: float) -> CheckOutcome:
    """Which beat holds ``<prefix>:lock`` (its token is ``<host>:<pid>:<random>``), since when (the leader record
    ``<prefix>:leader`` the lock's taker writes), and how long its lease still runs."""
    client, where = _store_client(app, timeout)
    conf = SchedulerConfig.from_app(app.conf)
    lock_key = conf.key_prefix + ":lock"
    try:
        token, pttl, flat, (seconds, micros) = client.eval(BEAT_LOCK_LUA, 2, lock_key, conf.key_prefix + ":leader")
        seconds, micros = int(seconds), int(micros)
        record = dict(zip(flat[::2], flat[1::2], strict=True))
    except redis.RedisError as exc:
        return FAIL, f"{lock_key} in {where}: {_error(exc)}", {"held": None}
    finally:
        client.close()
    if token is None:
        return WARN, f"no beat holds {lock_key}: nothing is dispatched until one does", {"held": False}
    token = _text(token)
    record = {_text(k): _text(v) for k, v in (record or {}).items()}
    left = pttl / 1000 if pttl is not None and pttl >= 0 else None
    ttl = f"{left:.0f}s left of {conf.lock_timeout:g}s" if left is not None else "no TTL (set by hand?)"
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    # Any other token is a beat of another kind: stock celery-redbeat's lock holds a bare uuid (a rolling upgrade).
    holder = f"{host} pid {pid}" if pid.isdigit() else f"{token[:8]}… (not this platform's beat: stock redbeat?)"
    data: dict[str, Any] = {"held": True, "token": token, "ttl": left, "host": host if pid else None}
    detail = f"held by {holder}"
    if record.get("token") == token and record.get("since"):
        age = max(seconds + micros / 1e6 - float(record["since"]), 0.0)
        data.update(age=round(age, 3), terms=int(record.get("terms") or 0))
        # A term is one beat's hold of the lock: how often leadership moved since the store was new.
        detail += f" for {duration(age)}, term {data['terms']}"
    if pid.isdigit() and holder_is_dead(host, int(pid)):
        # The lock outlives a killed beat by its lease: until then nothing is dispatched, yet the lock looks held.
        data["alive"] = False
        lease = f"its lease runs out in {left:.0f}s" if left is not None else "its lock has no TTL"
        return FAIL, f"{detail}, but pid {pid} is not running on this host: nothing is dispatched until {lease}", data
    return OK, f"{detail} ({ttl})", data


def holder_is_dead(host: str, pid: int) -> bool:
    """Whether the lock's holder is a beat of this host that no longer runs (killed, crashed, stopped uncleanly).

    Only on hosts: the token's host name is this machine's, so the pid is one of its processes. In container mode
    two containers of a pod share a host name but not their processes, so a pid this one cannot see proves nothing.
    """
    # A beat may run embedded in another process (`celery worker -B`), so its command line proves nothing; a pid
    # recycled within one lease is too rare to second-guess.
    return not settings.IS_CONTAINER_MODE and host == socket.gethostname() and not pid_alive(pid)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def broker(app: Celery, timeout: float) -> CheckOutcome:
    """Connect with the app's own broker connection (RabbitMQ or Redis) and close it."""
    with app.connection_for_write(connect_timeout=timeout) as connection:
        transport = str(connection.transport_cls)
        # kombu's own masking prints "**" even where no password is set: mask only a real one.
        where = redact_url(connection.as_uri(include_password=True))
        try:
            _connect(connection, timeout)
            # Creating a channel makes the Redis transport actually talk to its server (it connects lazily).
            connection.default_channel  # noqa: B018
        except Exception as exc:  # kombu raises its own and the transports' errors alike
            return FAIL, f"{transport} {where}: {_error(exc)}", {"transport": transport}
    return OK, f"{transport}: connected to {where}", {"transport": transport}


def _connect(connection: Any, timeout: float) -> None:
    # Without a retry interval: kombu's default sleeps 2 s before its one retry.
    connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def queue_depths(app: Celery, timeout: float, threshold: int) -> CheckOutcome:
    """The depth of every crontab queue (``jobs.queue_depth``'s passive declare); warn above ``threshold``."""
    from alarm_backends.jobs.queue_depth import depths, queue_names

    names = queue_names()
    with app.connection_for_write(connect_timeout=timeout) as connection:
        _connect(connection, timeout)
        counted = depths(connection, names)
    deep = {name: count for name, count in counted.items() if count > threshold}
    data: dict[str, Any] = {"depths": counted, "threshold": threshold}
    if deep:
        listed = ", ".join(f"{name}={count}" for name, count in sorted(deep.items(), key=lambda kv: -kv[1]))
        return WARN, f"above {threshold}: {listed} (workers missing or too slow?)", data
    deepest = max(counted.items(), key=lambda kv: kv[1])
    return OK, f"{len(counted)} crontab queues, deepest {deepest[0]}={deepest[1]} (warn above {threshold})", data


def consul() -> CheckOutcome:
    """The agent answers, and this host is registered under the leader's ring (a running beat registers it)."""
    from alarm_backends.management.base.leader import LEADER_COMMAND
    from alarm_backends.management.base.service_discovery import ConsulRegistration

    if not settings.CONSUL_ENABLED:
        return OK, "not configured: single node", {"enabled": False}
    if not uses_ring(settings):
        return OK, "configured but unused in container mode (one beat per deployment)", {"enabled": False}
    registration = ConsulRegistration(LEADER_COMMAND)
    registry = registration.registry()
    me, hosts = registration.host_addr, registry.hosts
    data = {"enabled": True, "hosts": hosts, "host": me}
    if me not in hosts:
        detail = f"agent at {registration.address} answers; {me} is not registered under {registration.prefix}"
        return WARN, detail + f" ({len(hosts)} hosts are): is celery beat running here?", data
    return (
        OK,
        f"agent at {registration.address}; {me} registered under {registration.prefix} ({len(hosts)} hosts)",
        data,
    )


def leader() -> CheckOutcome:
    """``is_leader()``, with the reason."""
    from alarm_backends.management.base.leader import LEADER_COMMAND, owner_of_ring
    from alarm_backends.management.base.service_discovery import ConsulRegistration

    if settings.IS_CONTAINER_MODE:
        return OK, "yes: container mode (one beat per deployment, the Redis lock elects it)", {"leader": True}
    if not settings.CONSUL_ENABLED:
        return OK, "yes: no Consul configured (single node, the Redis lock elects the beat)", {"leader": True}
    registration = ConsulRegistration(LEADER_COMMAND)
    biz = settings.DEFAULT_BK_BIZ_ID
    owner = owner_of_ring(registration)
    if owner == registration.host_addr:
        return OK, f"yes: {registration.host_addr} owns business {biz} on the ring", {"leader": True}
    if owner is None:
        return WARN, f"no host is registered under {registration.prefix}: there is no leader", {"leader": False}
    return OK, f"no: {owner} owns business {biz} on the ring (this host is a standby)", {"leader": False}


def crontab_checks() -> list[Check]:
    """One failed row per crontab entry that will not run (malformed: skipped by the loader; or its job does not
    import), else one row saying every entry is fine. Read from the settings, no I/O: computed here, not in a
    thread, so the rows exist even when every other check times out."""
    found = crontab_problems()
    if not found:
        count = sum(len(getattr(settings, name) or ()) for name in LISTS)
        return [Check("crontab", lambda: (OK, f"{count} entries in {len(LISTS)} lists, every job imports", {}))]
    return [Check(f"crontab {problem.where}", partial(_bad_entry, problem)) for problem in found]


def _bad_entry(problem: EntryProblem) -> CheckOutcome:
    effect = "skipped: it never runs" if problem.malformed else "every run fails"
    return FAIL, f"{problem.message} ({effect})", {"id": problem.id, "path": problem.path or None}


def all_checks(app: Celery, timeout: float, threshold: int) -> list[Check]:
    """Every check, in report order: the Redis DBs of the plan, then what the scheduler and the workers need."""
    checks = [Check(f"redis {role}", partial(redis_db, role, timeout)) for role in ROLES]
    checks += crontab_checks()
    checks += [
        Check("scheduler store", partial(scheduler_store, app, timeout)),
        Check("broker", partial(broker, app, timeout)),
        Check("consul", _consul_bounded),
        Check("beat lock", partial(beat_lock, app, timeout)),
        Check("leader", _leader_bounded),
        Check("queue depth", partial(queue_depths, app, timeout, threshold)),
    ]
    return checks


def _consul_bounded() -> CheckOutcome:
    try:
        return consul()
    except ConsulUnavailableError as exc:  # its message already names the agent
        return FAIL, str(exc), {"enabled": True}


def _leader_bounded() -> CheckOutcome:
    try:
        return leader()
    except ConsulUnavailableError as exc:
        return FAIL, f"unknown: {exc}", {"leader": None}
