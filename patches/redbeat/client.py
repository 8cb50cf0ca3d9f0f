"""The scheduler store's Redis client, built only from the app's lowercase ``redbeat_*`` settings.

The original's patched ``get_redis`` read upper-case ``REDBEAT_REDIS_OPTIONS`` while the app sets lowercase
``redbeat_redis_options``; in sentinel mode it never saw the sentinels, handed ``redis-sentinel://…`` to
``Redis.from_url`` and raised ValueError. Its patched entries also called the unpatched ``get_redis`` they had
imported, so even a working builder would have been bypassed. Here one builder reads the lowercase settings, and
every part of the store (scheduler, entries, lock) asks :func:`get_redis` for the same cached client. The client is
cached where stock celery-redbeat caches its own (``app.redbeat_redis``), and ``patches.redbeat.install()`` points
stock's module-level ``get_redis`` here too, so stock's entry API (``RedBeatSchedulerEntry.save``/``from_key``, which
tools and tests still use) reads and writes the very store the scheduler does, through this one client.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

import redis
from celery import Celery
from celery.app import app_or_default
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

T = TypeVar("T")

logger = logging.getLogger(__name__)

# The client lives on the app, so two apps in one process (tests, the SaaS and backend apps) never share one; under
# stock celery-redbeat's attribute, so a client placed there (stock's tools and tests do) serves the scheduler too.
CACHE_ATTR = "redbeat_redis"

URL_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis-sentinel"
CLUSTER_SCHEME = "redis-cluster"  # stock's: the startup nodes come from redbeat_redis_options['startup_nodes']
# Keys of redbeat_redis_options that configure the scheduler's wiring, never the Redis connection.
SCHEDULER_OPTIONS = frozenset(
    {"retry_period", "sentinels", "service_name", "sentinel_kwargs", "cluster", "startup_nodes"}
)
# Stock celery-redbeat's Redis Cluster options: a cluster client (redis-py's RedisCluster), for a store whose key
# prefix carries a hash tag (every key of the schedule in one slot; see store.hash_tag).
CLUSTER_OPTIONS = ("cluster", "startup_nodes")
DEFAULT_SERVICE_NAME = "mymaster"

SOCKET_CONNECT_TIMEOUT = 5.0
# Standalone mode sets no read timeout; without one a half-open connection blocks a tick forever.
SOCKET_TIMEOUT = 10.0
HEALTH_CHECK_INTERVAL = 30
DEFAULT_RETRIES = 3
BACKOFF_BASE = 0.5
BACKOFF_CAP = 10.0
MASK = "***"


def get_redis(app: Celery | None = None) -> redis.Redis:
    """The app's scheduler-store client, built on first use from ``redbeat_redis_url``/``redbeat_redis_options``.

    ``app`` may be None (the current app), as stock's ``get_redis`` takes it: this function stands in for it."""
    app = app_or_default(app)
    client: redis.Redis | None = getattr(app, CACHE_ATTR, None)
    if client is None:
        conf = app.conf
        client = build_redis(
            conf.get("redbeat_redis_url"), conf.get("redbeat_redis_options"), conf.get("redbeat_redis_use_ssl")
        )
        setattr(app, CACHE_ATTR, client)
    return client


def reset_redis(app: Celery) -> None:
    """Drop the app's cached client (after a fork, or between tests); the next :func:`get_redis` builds a new one."""
    client: redis.Redis | None = getattr(app, CACHE_ATTR, None)
    if client is None:
        return
    setattr(app, CACHE_ATTR, None)
    # redis-py only shuts sockets down in the process that opened them, so this is safe in a forked child too.
    client.connection_pool.disconnect()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        sentinel.connection_pool.disconnect()


def build_redis(url: Any, options: Mapping[str, Any] | None = None, use_ssl: Any = None) -> redis.Redis:
    """A client for ``url`` with redbeat-style ``options`` (and ``redbeat_redis_use_ssl``, see :func:`_tls_options`)."""
    if not isinstance(url, str) or not url:
        raise ValueError("redbeat_redis_url is not set: the scheduler store needs a Redis URL")
    opts = dict(options or {})
    scheme = _scheme(url)
    tls = _tls_options(url, scheme, use_ssl)
    if scheme == SENTINEL_SCHEME:
        return _sentinel_client(url, _split(url), opts, tls)
    if scheme == CLUSTER_SCHEME or (scheme in URL_SCHEMES and opts.get("cluster")):
        return _cluster_client(url, scheme, _split(url), opts, tls)
    if scheme not in URL_SCHEMES:
        schemes = ", ".join((*URL_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME))
        raise ValueError(f"redbeat_redis_url {redact_url(url)!r}: scheme {scheme!r} is not one of {schemes}")
    kwargs = {**tls, **_client_options(opts)}
    try:
        client = redis.Redis.from_url(url, **kwargs)
    except ValueError:
        # redis-py's message may quote a piece of a mis-quoted password (as a port or a DB), so it is not passed on.
        raise ValueError(
            f"redbeat_redis_url {redact_url(url)!r} is not a valid Redis URL "
            "(a password with reserved characters must be URL-quoted)"
        ) from None
    logger.debug("scheduler store: %s", redact_url(url))
    return client


def _sentinel_client(url: str, parts: SplitResult, opts: dict[str, Any], tls: dict[str, Any]) -> redis.Redis:
    """The current master of ``service_name``, found through ``sentinels``; the URL contributes only the DB."""
    sentinels = opts.get("sentinels")
    if not sentinels:
        raise ValueError(
            f"redbeat_redis_url {redact_url(url)!r} is a sentinel URL, "
            "but redbeat_redis_options['sentinels'] lists no sentinels"
        )
    db = _url_db(url, parts)
    kwargs = {**tls, **_client_options(opts)}
    if "password" not in kwargs and parts.password:
        kwargs["password"] = unquote(parts.password)
    service_name = opts.get("service_name") or DEFAULT_SERVICE_NAME
    manager = Sentinel(
        [(str(host), int(port)) for host, port in sentinels],
        sentinel_kwargs=_sentinel_kwargs(kwargs, opts.get("sentinel_kwargs")),
        socket_timeout=kwargs["socket_timeout"],
    )
    client: redis.Redis = manager.master_for(service_name, **kwargs, db=db)
    logger.debug("scheduler store: master %r db %d via %d sentinel(s)", service_name, db, len(sentinels))
    return client


def _cluster_client(url: str, scheme: str, parts: SplitResult, opts: dict[str, Any], tls: dict[str, Any]) -> Any:
    """A Redis Cluster client, as stock builds it: ``redis[s]://`` with ``cluster: True`` (the URL names one node),
    or ``redis-cluster://`` with ``startup_nodes`` (the URL's host and port without them). A cluster has DB 0 only."""
    from redis.cluster import ClusterNode, RedisCluster

    if _url_db(url, parts) != 0:
        raise ValueError(f"redbeat_redis_url {redact_url(url)!r}: a Redis Cluster has DB 0 only")
    kwargs = {**tls, **_client_options({k: v for k, v in opts.items() if k not in CLUSTER_OPTIONS})}
    if scheme != CLUSTER_SCHEME:
        client = RedisCluster.from_url(url, **kwargs)
    else:
        nodes = opts.get("startup_nodes") or [{"host": parts.hostname, "port": parts.port or 6379}]
        if "password" not in kwargs and parts.password:
            kwargs["password"] = unquote(parts.password)
        try:
            startup = [ClusterNode(str(node["host"]), int(node["port"])) for node in nodes]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"redbeat_redis_options['startup_nodes']={nodes!r}: each needs a host and a port"
            ) from None
        client = RedisCluster(startup_nodes=startup, **kwargs)
    logger.debug("scheduler store: Redis Cluster via %s", redact_url(url))
    return client


def _tls_options(url: str, scheme: str, use_ssl: Any) -> dict[str, Any]:
    """``redbeat_redis_use_ssl`` as stock celery-redbeat reads it: True, or a dict of redis-py ``ssl_*`` options
    (``ssl_ca_certs``, ``ssl_certfile``, ...), for a ``rediss://`` URL or a Sentinel's master; the certificate is
    verified unless the dict says otherwise, and ``redbeat_redis_options`` override it. Read rather than ignored: a
    user's certificates silently dropped fail the TLS handshake with no hint of why. With a plain ``redis://`` URL
    stock ignored it and spoke plaintext; here that is refused."""
    if not use_ssl:
        return {}
    if scheme not in ("rediss", SENTINEL_SCHEME):
        raise ValueError(
            f"redbeat_redis_use_ssl is set, but redbeat_redis_url {redact_url(url)!r} is neither rediss:// nor "
            f"{SENTINEL_SCHEME}://"
        )
    if use_ssl is not True and not isinstance(use_ssl, Mapping):
        raise ValueError(f"redbeat_redis_use_ssl must be True or a dict of redis-py ssl_* options, not {use_ssl!r}")
    tls: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED, **(use_ssl if use_ssl is not True else {})}
    if scheme == SENTINEL_SCHEME:
        tls["ssl"] = True  # the master's connections; a rediss:// URL already says so
    return tls


def _client_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Connection options: the passthrough ones plus this module's defaults and retry policy."""
    clustered = [key for key in CLUSTER_OPTIONS if opts.get(key)]
    if clustered:
        raise ValueError(
            f"redbeat_redis_options[{clustered[0]!r}] needs a Redis Cluster URL: redis:// or rediss:// with "
            "'cluster': True, or redis-cluster:// with 'startup_nodes'"
        )
    if "db" in opts:
        # Stock redbeat takes the sentinel DB from here but the standalone one from the URL; one place avoids
        # a store that silently moves when the mode changes.
        raise ValueError("redbeat_redis_options['db'] is not accepted: the DB is the path of redbeat_redis_url")
    kwargs = {key: value for key, value in opts.items() if key not in SCHEDULER_OPTIONS}
    kwargs["decode_responses"] = True
    kwargs.setdefault("socket_connect_timeout", SOCKET_CONNECT_TIMEOUT)
    kwargs.setdefault("socket_timeout", SOCKET_TIMEOUT)
    kwargs.setdefault("health_check_interval", HEALTH_CHECK_INTERVAL)
    attempt = max(float(kwargs["socket_connect_timeout"] or 0), float(kwargs["socket_timeout"] or 0))
    kwargs.setdefault("retry", retry_policy(opts.get("retry_period"), attempt))
    return kwargs


def _sentinel_kwargs(client_kwargs: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options of the connections to the sentinels themselves.

    redis-py copies the client's ``socket_*`` options only when no ``sentinel_kwargs`` are given, so a
    ``{"password": …}`` alone would leave sentinel sockets without timeouts. Sentinel clients also get no retry of
    their own: discovery already moves on to the next sentinel, and the master client's retry repeats the whole
    discovery, so a per-sentinel retry would only multiply the wait on a dead sentinel.
    """
    kwargs: dict[str, Any] = {key: value for key, value in client_kwargs.items() if key.startswith("socket_")}
    kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs.update(given or {})
    return kwargs


def retry_policy(retry_period: Any, attempt_seconds: float) -> Retry:
    """redis-py's own retry on ConnectionError/TimeoutError, sized so retrying takes about ``retry_period`` at most.

    The original wrapped every client call in tenacity for up to 60 s (forever for a negative period), with each
    attempt free to block for its socket timeout on top, so one tick making several calls could stall for minutes,
    past the fenced scheduler's lease. Here the retries of a command, counting each retry's backoff plus a
    worst-case attempt (the longer socket timeout), fit within ``retry_period``; a command that still fails raises,
    and the scheduler treats the tick as failed and tries again on the next one. Without a period a short retry
    rides out a dropped connection or a sentinel failover's first refused connect. (redis-py also retries the
    reconnect inside a command's retry, so a server that dies mid-command can take a few periods: still bounded.)
    """
    backoff = ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)
    if retry_period is None:
        retries = DEFAULT_RETRIES
    else:
        if isinstance(retry_period, bool) or not isinstance(retry_period, int | float) or retry_period < 0:
            raise ValueError(
                f"redbeat_redis_options['retry_period']={retry_period!r} must be a number of seconds >= 0 "
                "(retrying forever would stall the scheduler past its lease)"
            )
        retries, spent = 0, 0.0
        while spent + backoff.compute(retries + 1) + attempt_seconds <= retry_period:
            retries += 1
            spent += backoff.compute(retries) + attempt_seconds
    return StoreRetry(backoff, retries, supported_errors=(redis.ConnectionError, redis.TimeoutError))


class StoreRetry(Retry):
    """redis-py's Retry, except that a refused password is final: it is a ConnectionError to redis-py, but retrying
    it only delays the one error the operator needs to see by the whole backoff."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            return not isinstance(error, redis.AuthenticationError) and (is_retryable is None or is_retryable(error))

        return super().call_with_retry(do, fail, retryable, with_failure_count)


def redact_url(url: str) -> str:
    """``url`` with its password (userinfo or ``password=`` query option) replaced by ``***``, safe to log.

    Split by hand rather than with urlsplit: an unquoted password containing ``/`` or ``?`` (the original did not
    quote it) ends urlsplit's authority early and would leave the rest of the password in the "path".
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        # A lone "secret@host" is a user name to redis-py, but it is often meant as the password: mask it too, and
        # keep a user name only where it cannot be the front half of a password split at an unquoted "@".
        keep_user = sep and colon and "@" not in user
        rest = f"{user}:{MASK}@{rest}" if keep_user else f"{MASK}@{rest}"
    location, question, query = rest.partition("?")
    return f"{scheme}{sep}{location}{question}{_redact_query(query)}"


def _redact_query(query: str) -> str:
    items = []
    for item in query.split("&"):
        name, sep, _value = item.partition("=")
        items.append(f"{name}={MASK}" if sep and name.lower() == "password" else item)
    return "&".join(items)


def _scheme(url: str) -> str:
    """The scheme, or "" without "://" (urlsplit would read "secret:x@host" as scheme "secret")."""
    scheme, sep, _rest = url.partition("://")
    return scheme.lower() if sep else ""


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:
        raise ValueError(f"redbeat_redis_url {redact_url(url)!r} is not a URL") from None


def _url_db(url: str, parts: SplitResult) -> int:
    path = parts.path.strip("/") or "0"
    try:
        return int(path)
    except ValueError:
        raise ValueError(f"redbeat_redis_url {redact_url(url)!r}: the path is not a DB number") from None
