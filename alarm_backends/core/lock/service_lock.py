"""``share_lock``: run a function in one process at a time across the cluster, skipping the call when it is taken.

The lock is a key ``<cluster>_celery_lock_<identify or function name>`` in the service DB, taken with
``SET NX EX ttl``. A call that finds it held returns None without running, as in the original; the TTL frees the
lock if its holder dies. Two fixes over the original:

* the token is a uuid4, where the original stored ``str(time.time())``: two hosts taking the lock in the same
  clock tick had the same token, so either could release the other's lock;
* release is one Lua script (GET, compare, DEL) instead of GET then DEL from the client: between those two calls
  the lock could expire and be taken by another process, whose lock the original then deleted.

It also logs the skip at INFO, naming the key, where the original skipped silently.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import redis
from redis.commands.core import Script

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.storage.redis import SERVICE, get_client

logger = logging.getLogger("cron")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TTL = 600
RELEASE_LUA = (Path(__file__).parent / "release.lua").read_text(encoding="utf-8")

_script_lock = threading.Lock()
_release_script: Script | None = None


def _release(client: redis.Redis, key: str, token: str) -> bool:
    """Delete ``key`` if it still holds ``token``; the script is registered once and run on ``client``."""
    global _release_script
    with _script_lock:
        if _release_script is None:
            _release_script = client.register_script(RELEASE_LUA)
        script = _release_script
    # The Script object carries only the source and its sha; the client it runs on is passed per call, and a
    # server that lost its script cache (restart, failover) is sent the source again by redis-py.
    return bool(script(keys=[key], args=[token], client=client))


def lock_key(name: str) -> str:
    """The key of the lock ``name`` in this cluster: ``<cluster>_celery_lock_<name>``."""
    return get_cluster().key(f"celery_lock_{name}")


class ServiceLock:
    """A non-blocking lock in the service DB; usable as a context manager that yields whether it was acquired."""

    def __init__(self, name: str, ttl: int = DEFAULT_TTL, client: redis.Redis | None = None) -> None:
        if ttl <= 0:
            raise ValueError(f"lock {name!r}: ttl must be a positive number of seconds, not {ttl!r}")
        self.key = lock_key(name)
        self.ttl = ttl
        self.token: str | None = None
        self._client = client

    @property
    def client(self) -> redis.Redis:
        return self._client if self._client is not None else get_client(SERVICE)

    def acquire(self) -> bool:
        """Take the lock if it is free; False (without waiting) when someone holds it."""
        token = str(uuid.uuid4())
        if not self.client.set(self.key, token, nx=True, ex=self.ttl):
            return False
        self.token = token
        return True

    def release(self) -> bool:
        """Free the lock if this instance still holds it; False when it expired or was never taken."""
        if self.token is None:
            return False
        token, self.token = self.token, None
        return _release(self.client, self.key, token)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _release_after_run(lock: ServiceLock, what: str) -> None:
    """Release after the guarded call; a failure here is logged, not raised, so it never hides the call's outcome."""
    try:
        released = lock.release()
    except redis.RedisError as exc:
        # The TTL frees the lock anyway; the next run may just be skipped until then.
        logger.warning("%s: lock %s not released (%s); it expires within %ss", what, lock.key, exc, lock.ttl)
        return
    if not released:
        # The run outlived the TTL, so another process may have taken the lock and run concurrently.
        logger.warning("%s: lock %s expired before the run ended (ttl %ss)", what, lock.key, lock.ttl)


def share_lock(
    ttl: int = DEFAULT_TTL, identify: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Run the decorated function only when its lock is free; otherwise return None without running it."""

    def decorator(func: Callable[P, R]) -> Callable[P, R | None]:
        name = identify or func.__name__

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
            lock = ServiceLock(name, ttl)
            if not lock.acquire():
                logger.info("%s skipped: lock %s is held by another run", func.__qualname__, lock.key)
                return None
            try:
                return func(*args, **kwargs)
            finally:
                _release_after_run(lock, func.__qualname__)

        return wrapper

    return decorator
