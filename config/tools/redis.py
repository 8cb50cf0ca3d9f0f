"""Redis connection settings from the environment, and the URLs built from them.

Names and fallbacks follow the original: ``BK_MONITOR_REDIS_*`` first, then ``REDIS_*``; the cache Redis reads
``BK_MONITOR_CACHE_REDIS_*`` and falls back to the main Redis. The original's cache fallbacks for the password and
the sentinel password were inverted (``X if X is None else REDIS_*``, so a set value was thrown away); here a set
value wins and an unset one falls back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from config.tools.env import EnvError, first, first_int, split_host_port

STANDALONE = "standalone"
SENTINEL = "sentinel"
MODES = (STANDALONE, SENTINEL)


@dataclass(frozen=True)
class RedisSettings:
    mode: str = STANDALONE
    host: str = "127.0.0.1"
    port: int = 6379
    password: str = ""
    master_name: str = "mymaster"
    sentinel_password: str = ""
    sentinels: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @property
    def is_sentinel(self) -> bool:
        return self.mode == SENTINEL


def _hosts(raw: str, port: int, var: str) -> tuple[tuple[str, int], ...]:
    """Sentinel hosts sharing one port, as the original reads them: ``a;b;c`` (its separator) or ``a,b``, each item
    optionally with its own port — ``a;b:26380`` → ``(("a", port), ("b", 26380))`` — and IPv6 as ``fd00::1`` or
    ``[fd00::1]:26380``."""
    hosts = []
    for item in filter(None, (part.strip() for part in raw.replace(";", ",").split(","))):
        host, item_port = split_host_port(item)
        try:
            hosts.append((host, int(item_port) if item_port else port))
        except ValueError:
            raise EnvError(f"{var}: {item!r} is not host or host:port") from None
        if not host:
            raise EnvError(f"{var}: {item!r} names no host")
    return tuple(hosts)


def get_redis_settings(environ: Mapping[str, str], *, default_mode: str) -> RedisSettings:
    """The main Redis (log, queue and service DBs, and the scheduler store)."""
    mode = environ.get("BK_MONITOR_REDIS_MODE") or default_mode
    if mode not in MODES:
        raise EnvError(f"BK_MONITOR_REDIS_MODE={mode!r} must be one of {', '.join(MODES)}")
    password = first(environ, "BK_MONITOR_REDIS_PASSWORD", "REDIS_PASSWORD")
    if mode == SENTINEL:
        # The original's fallbacks: BK_MONITOR_REDIS_SENTINEL_* then REDIS_HOST / REDIS_PORT (a deployment that sets
        # only those names its sentinels there).
        port_vars = ("BK_MONITOR_REDIS_SENTINEL_PORT", "REDIS_SENTINEL_PORT", "REDIS_PORT")
        port = first_int(environ, *port_vars, default=26379)
        host_vars = ("BK_MONITOR_REDIS_SENTINEL_HOST", "REDIS_SENTINEL_HOST", "REDIS_HOST")
        var = next((name for name in host_vars if environ.get(name)), host_vars[0])
        sentinels = _hosts(first(environ, *host_vars, default="127.0.0.1"), port, var)
        return RedisSettings(
            mode=mode,
            host=sentinels[0][0],
            port=sentinels[0][1],
            password=password,
            master_name=environ.get("BK_MONITOR_REDIS_SENTINEL_MASTER_NAME") or "mymaster",
            sentinel_password=environ.get("BK_MONITOR_REDIS_SENTINEL_PASSWORD", ""),
            sentinels=sentinels,
        )
    return RedisSettings(
        mode=mode,
        host=first(environ, "BK_MONITOR_REDIS_HOST", "REDIS_HOST", default="127.0.0.1"),
        port=first_int(environ, "BK_MONITOR_REDIS_PORT", "REDIS_PORT", default=6379),
        password=password,
    )


def get_cache_redis_settings(environ: Mapping[str, str], main: RedisSettings) -> RedisSettings:
    """The cache Redis (DB 8): its own host when ``BK_MONITOR_CACHE_REDIS_*`` is set, else the main one."""
    password = environ.get("BK_MONITOR_CACHE_REDIS_PASSWORD") or main.password
    if main.is_sentinel:
        var = "BK_MONITOR_CACHE_REDIS_SENTINEL_HOST"
        if not environ.get(var):
            return RedisSettings(**{**main.__dict__, "password": password})
        port = first_int(environ, "BK_MONITOR_CACHE_REDIS_SENTINEL_PORT", default=main.sentinels[0][1])
        sentinels = _hosts(environ[var], port, var)
        return RedisSettings(
            mode=SENTINEL,
            host=sentinels[0][0],
            port=sentinels[0][1],
            password=password,
            master_name=environ.get("BK_MONITOR_CACHE_REDIS_SENTINEL_MASTER_NAME") or main.master_name,
            sentinel_password=environ.get("BK_MONITOR_CACHE_REDIS_SENTINEL_PASSWORD") or main.sentinel_password,
            sentinels=sentinels,
        )
    return RedisSettings(
        mode=STANDALONE,
        host=environ.get("BK_MONITOR_CACHE_REDIS_HOST") or main.host,
        port=first_int(environ, "BK_MONITOR_CACHE_REDIS_PORT", default=main.port),
        password=password,
    )


# Setting names (after a prefix such as ``REDIS_`` or ``CACHE_REDIS_``) of each RedisSettings field.
SETTING_NAMES = {
    "mode": "MODE",
    "host": "HOST",
    "port": "PORT",
    "password": "PASSWORD",
    "master_name": "SENTINEL_MASTER_NAME",
    "sentinel_password": "SENTINEL_PASSWORD",
    "sentinels": "SENTINEL_HOSTS",
}


def to_settings(conf: RedisSettings, prefix: str) -> dict[str, Any]:
    """``RedisSettings`` → plain settings (``<prefix>HOST`` …), which ``BKAPP_SETTINGS_<NAME>`` can override."""
    values = dict(conf.__dict__, sentinels=[list(s) for s in conf.sentinels])
    return {prefix + name: values[field] for field, name in SETTING_NAMES.items()}


def from_settings(settings: Any, prefix: str) -> RedisSettings:
    """The inverse of :func:`to_settings`, read from a settings object."""
    values = {field: getattr(settings, prefix + name) for field, name in SETTING_NAMES.items()}
    values["port"] = int(values["port"])
    values["sentinels"] = tuple((host, int(port)) for host, port in values["sentinels"])
    return RedisSettings(**values)


def redis_url(conf: RedisSettings, db: int) -> str:
    """A standalone URL; the password is URL-quoted (the original left it raw in the redbeat URL)."""
    auth = f":{quote(conf.password, safe='')}@" if conf.password else ""
    return f"redis://{auth}{conf.host}:{conf.port}/{db}"


def sentinel_result_backend(conf: RedisSettings, db: int) -> tuple[str, dict[str, object]]:
    """Celery's sentinel result backend: ``;``-joined URLs plus transport options, as the original builds them."""
    auth = f":{quote(conf.password, safe='')}@" if conf.password else ""
    urls = ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in conf.sentinels)
    options: dict[str, object] = {"master_name": conf.master_name}
    if conf.sentinel_password:
        options["sentinel_kwargs"] = {"password": conf.sentinel_password}
    return urls, options


def shuffled_sentinels(conf: RedisSettings, rng: random.Random | None = None) -> list[tuple[str, int]]:
    """Sentinels in random order, so a fleet does not hammer the first one listed."""
    sentinels = list(conf.sentinels)
    (rng or random).shuffle(sentinels)
    return sentinels


def default_redis_mode(new_env: str, environ: Mapping[str, str]) -> str:
    """Standalone in development and on PaaS V3, sentinel elsewhere, as the original decides."""
    if new_env == "dev" or environ.get("BKPAAS_MAJOR_VERSION") == "3":
        return STANDALONE
    return SENTINEL


def parse_redis_url(url: str, var: str, default_password: str = "") -> RedisSettings:
    """A server from a URL, in the original's two forms (its per-module ``REDIS_CACHE_<NAME>_URL``):

    * ``redis://[:password@]host[:port][/…]`` — one server;
    * ``sentinel://[master_name[:password]@]host[;host…][:port][/sentinel_password]`` — sentinels sharing a port.

    The DB is not the URL's: the caller's role decides it, as in the original. A password the URL leaves out is
    ``default_password`` (the main Redis's). The original ignored a sentinel URL's password and always used the main
    one (``REDIS_PASSWD``): here the URL's wins."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EnvError(f"{var}={url!r}: {exc}") from None
    host = unquote(parts.hostname or "")
    password = unquote(parts.password) if parts.password else default_password
    if parts.scheme == "redis":
        if not host:
            raise EnvError(f"{var}={url!r} names no host")
        return RedisSettings(mode=STANDALONE, host=host, port=port or 6379, password=password)
    if parts.scheme == "sentinel":
        # `a;b;c:port`: the hosts share the port written after the last one (urlsplit reads only that last host
        # when it is a bracketed IPv6 address).
        *others, last = parts.netloc.rpartition("@")[2].split(";")
        last_host, _ = split_host_port(last)
        sentinels = _hosts(";".join([*others, last_host]), port or 26379, var)
        if not sentinels:
            raise EnvError(f"{var}={url!r} names no sentinel")
        return RedisSettings(
            mode=SENTINEL,
            host=sentinels[0][0],
            port=sentinels[0][1],
            password=password,
            master_name=unquote(parts.username or "") or "mymaster",
            sentinel_password=unquote(parts.path.lstrip("/")),
            sentinels=sentinels,
        )
    raise EnvError(f"{var}={url!r}: expected a redis:// or sentinel:// URL")
