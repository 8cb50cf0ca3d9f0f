"""Registration in Consul: ``<APP_CODE>_<PLATFORM>_<ENVIRONMENT>_<cluster>/<command>/<host>/<pid>``.

Each running instance writes its key with ``acquire=<session>``; the session has ``behavior=delete``,
``lock_delay=0`` and a TTL (60 s), so when the process dies without unregistering, Consul deletes the key once the
session expires (Consul allows up to twice the TTL). The session is renewed every TTL/4 to TTL/2 — callers ask
at least every :attr:`ConsulRegistration.renew_interval` — and re-created when Consul says it is gone. The original
refreshed some registrations every 90 s against a 60 s TTL, so they lived on Consul's grace alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import consul
from django.conf import settings

from alarm_backends.core.cluster import get_cluster
from alarm_backends.core.consul_client import consul_call, consul_settings, get_consul
from alarm_backends.core.host import get_host_addr
from alarm_backends.management.base.dispatch import ANNOUNCEMENT, ORIGINAL, ring_mode
from alarm_backends.management.base.registry import Registry, parse_registry

logger = logging.getLogger(__name__)


def session_ttl(conf: Any = settings) -> int:
    """``CONSUL_SESSION_TTL``, checked against Consul's own bounds for a session TTL (10 s to 24 h)."""
    ttl = conf.CONSUL_SESSION_TTL
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 10 <= ttl <= 86400:
        raise ValueError(f"CONSUL_SESSION_TTL={ttl!r} must be a whole number of seconds from 10 to 86400")
    return ttl


def registration_prefix(command: str, conf: Any = settings) -> str:
    """``<APP_CODE>_<PLATFORM>_<ENVIRONMENT>_<cluster>/<command>``: one ring per command and cluster."""
    return f"{conf.APP_CODE}_{conf.PLATFORM}_{conf.ENVIRONMENT}_{get_cluster().name}/{command}"


class ConsulRegistration:
    """One process's registration under ``registration_prefix(command)``."""

    def __init__(
        self,
        command: str,
        *,
        client: consul.Consul | None = None,
        host_addr: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.command = command
        self.prefix = registration_prefix(command)
        self.address = consul_settings().address
        self.client = client or get_consul()
        self.host_addr = host_addr or get_host_addr()
        self.pid = pid or os.getpid()
        self.session_ttl = session_ttl()
        self.session_id: str | None = None
        self._renewed = float("-inf")

    @property
    def renew_interval(self) -> float:
        """How often the session is renewed at most; asked at least this often, it is renewed within TTL/2."""
        return self.session_ttl / 4

    def renewal_due(self) -> bool:
        return time.monotonic() - self._renewed >= self.renew_interval

    @property
    def path(self) -> str:
        return f"{self.prefix}/{self.host_addr}/{self.pid}"

    @property
    def announcement_prefix(self) -> str:
        """``<APP_CODE>_<PLATFORM>_<ENVIRONMENT>_<cluster>/~ring/<command>``: where hosts of this platform announce
        that they can run the ring with separated labels. Outside every command's prefix: the original reads each
        ``<base>/<command>`` prefix as a plain string prefix and raises on a key that is not ``<host>/<pid>``."""
        base = self.prefix[: -len(self.command) - 1]
        return f"{base}/~ring/{self.command}"

    @property
    def announcement_path(self) -> str:
        return f"{self.announcement_prefix}/{self.host_addr}/{self.pid}"

    def registry(self) -> Registry:
        """Every instance registered under this command's prefix (this one included, once registered), and the
        hosts that announce this platform's ring."""
        _, keys = consul_call(self.address, self.client.kv.get, self.prefix + "/", keys=True)
        _, announced = consul_call(self.address, self.client.kv.get, self.announcement_prefix + "/", keys=True)
        registry = parse_registry(self.prefix, keys or [])
        hosts = parse_registry(self.announcement_prefix, announced or []).hosts
        return Registry(registry.instances, frozenset(hosts))

    def register(self, targets: Sequence[Any] | None = None, *, force: bool = False) -> bool:
        """Renew the session (at most every :attr:`renew_interval` unless ``force``) and write this instance's
        targets. Returns whether the key is held by this instance's session (False: another session holds it).
        """
        now = time.monotonic()
        if not force and not self.renewal_due():
            return True
        session_id = self._renew_or_create_session()
        value = json.dumps(list(targets or []))
        held = consul_call(self.address, self.client.kv.put, self.path, value, acquire=session_id)
        if held and ring_mode() != ORIGINAL:
            # Held by the same session: it goes when this instance goes.
            consul_call(self.address, self.client.kv.put, self.announcement_path, ANNOUNCEMENT, acquire=session_id)
        self._renewed = now
        if not held:
            logger.warning("consul: %s is held by another session; not registered", self.path)
        return bool(held)

    def _renew_or_create_session(self) -> str:
        if self.session_id is not None:
            try:
                consul_call(self.address, self.client.session.renew, self.session_id)
                return self.session_id
            except consul.NotFound:
                # Expired (the process was paused past twice the TTL, or Consul lost it): its key is gone with it.
                logger.warning("consul: session %s of %s is gone; registering again", self.session_id, self.path)
                self.session_id = None
        self.session_id = consul_call(
            self.address,
            self.client.session.create,
            name=self.path,
            behavior="delete",
            lock_delay=0,
            ttl=self.session_ttl,
        )
        logger.info("consul: registered %s (session %s, ttl %ds)", self.path, self.session_id, self.session_ttl)
        return str(self.session_id)

    def unregister(self) -> None:
        """Destroy the session: Consul deletes the key at once and the other hosts see this one leave."""
        if self.session_id is None:
            return
        consul_call(self.address, self.client.session.destroy, self.session_id)
        logger.info("consul: unregistered %s", self.path)
        self.session_id = None
        self._renewed = float("-inf")
