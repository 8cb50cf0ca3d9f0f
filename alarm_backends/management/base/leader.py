"""Which host leads: the owner of ``DEFAULT_BK_BIZ_ID`` on the ring of the hosts registered in Consul.

* Container mode (``DEPLOY_MODE=kubernetes``): always the leader — one beat runs per deployment.
* No Consul configured: single node, always the leader.
* Otherwise: whether ``get_host_addr()`` owns ``DEFAULT_BK_BIZ_ID`` on the ring of the live hosts. The original
  asked whether the business was among this host's *targets*, so a ``DEFAULT_BK_BIZ_ID`` without enabled strategies
  meant no leader at all; here the ring is asked about the business directly.

The ring is that of the beats, registered under ``celerybeat`` (the original read its access processes'
``run_access-data`` ring; this platform has no access processes, and writing beats into that ring would hand them
access work). Beat is gated by it (:class:`LeaderGate`, installed as ``redbeat_leader_gate`` when Consul is
configured): a beat that is not the ring's leader does not dispatch and gives up the Redis lock, so the leader takes
it at once. The Redis lock still fences every write, so a change of ring membership seen at different moments by
two beats can delay a tick, never run one twice.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.management.base.dispatch import (
    dispatch_all_hosts,
    dispatch_for_instance,
    ring_for,
    ring_targets,
    separates_labels,
)
from alarm_backends.management.base.registry import Registry
from alarm_backends.management.base.service_discovery import ConsulRegistration
from config.tools.consul import uses_ring

logger = logging.getLogger(__name__)

# The command every beat registers under: its hosts form the leader's ring.
LEADER_COMMAND = "celerybeat"


def ring_leader(registry: Registry, conf: Any = settings) -> str | None:
    """The host owning ``DEFAULT_BK_BIZ_ID`` on the ring of ``registry``'s hosts; None with no host."""
    if not registry.hosts:
        return None
    return ring_for(registry.hosts, separates_labels(registry, conf)).get_node(int(conf.DEFAULT_BK_BIZ_ID))


def is_leader(registration: ConsulRegistration | None = None) -> bool:
    """Whether this host leads (see the module docstring); raises ConsulUnavailableError if Consul cannot be read."""
    if not uses_ring(settings):
        return True
    registration = registration or ConsulRegistration(LEADER_COMMAND)
    return owner_of_ring(registration) == registration.host_addr


def owner_of_ring(registration: ConsulRegistration) -> str | None:
    """The ring's leader host as Consul lists it now (one read); None, logged, when no host is registered."""
    leader = ring_leader(registration.registry())
    if leader is None:
        logger.error("leader: no host is registered under %s, so there is no leader", registration.prefix)
    return leader


class LeaderGate:
    """Registers this beat under the leader's ring and answers, each tick, whether it may dispatch.

    Beat must tick at least every :attr:`max_interval` so the registration is renewed in time.

    The gate is advice; the Redis lock is the fence. While Consul cannot be read the gate has no opinion and lets
    every beat through: the beat holding the lock keeps it, the others keep trying it, and scheduling goes on
    however long the outage lasts (the original never gated beat on Consul). A gate that withdrew its answer after a
    session TTL stopped all scheduling until Consul came back: every beat gave the lock up and stood by. Once Consul
    answers again every beat registers again; the leader keeps the lock, because a host that owns a business on the
    ring still owns it on the ring of any subset of hosts that includes it (hosts registering one by one never show
    another host as the owner of the leader's business while the leader is registered).
    """

    def __init__(self, app: Any = None, registration: ConsulRegistration | None = None) -> None:
        self.registration = registration or ConsulRegistration(LEADER_COMMAND)
        self.leading: bool | None = None
        self._reason = ""
        self._outage: str | None = None  # why Consul could not be read, while it cannot
        self._registered_for: frozenset[str] = frozenset()  # the instances the registered targets were computed for

    @property
    def max_interval(self) -> float:
        return self.registration.renew_interval

    def allows(self) -> bool:
        try:
            leading, reason = self._check()
        except ConsulUnavailableError as exc:
            if self._outage is None:
                logger.error("leader: %s; until it answers, the Redis lock alone decides which beat leads", exc)
            self._outage = str(exc)
            return True
        if self._outage is not None:
            logger.info("leader: Consul answers again (it did not: %s)", self._outage)
            self._outage = None
        self._report(leading, reason)
        return leading

    def _check(self) -> tuple[bool, str]:
        registration = self.registration
        me = registration.host_addr
        registry = registration.registry()
        if not registry.has(me, registration.pid) or self._members(registry) != self._registered_for:
            # First tick, a session that expired while this process was paused, or instances that came or went
            # (the registered targets change with them): register now, not at the next renewal.
            registration.register(self._targets(registry, me), force=True)
            registry = registration.registry()
            self._registered_for = self._members(registry)
        elif registration.renewal_due():
            try:
                registration.register(self._targets(registry, me))
            except ConsulUnavailableError as exc:  # the registry was just read: decide on it, renew next tick
                logger.warning("leader: could not renew the registration: %s", exc)
        leader = ring_leader(registry)
        if leader is None:
            return False, f"no host is registered under {registration.prefix}"
        if leader != me:
            return False, f"{leader} owns business {settings.DEFAULT_BK_BIZ_ID} on the ring"
        return True, f"this host owns business {settings.DEFAULT_BK_BIZ_ID} on the ring of {len(registry.hosts)}"

    def _members(self, registry: Registry) -> frozenset[str]:
        """Every registered instance, ``host/pid``, this one included."""
        mine = f"{self.registration.host_addr}/{self.registration.pid}"
        return frozenset(name for host in registry.hosts for name in registry.instance_names(host)) | {mine}

    def _targets(self, registry: Registry, me: str) -> list[int]:
        """This instance's share of the businesses its host owns (all of them with one beat per host)."""
        hosts = registry.hosts if me in registry.hosts else [*registry.hosts, me]
        instance = f"{me}/{self.registration.pid}"
        instances = registry.instance_names(me)
        if instance not in instances:
            instances.append(instance)
        mine = dispatch_all_hosts(hosts, ring_targets(), separates_labels(registry))[me]
        return dispatch_for_instance(mine, instances, instance)

    def _report(self, leading: bool, reason: str) -> None:
        if leading != self.leading:
            log = logger.info if leading else logger.warning
            log("leader: %s is %s (%s)", self.registration.path, "the leader" if leading else "not the leader", reason)
        elif not leading and reason != self._reason:
            logger.info("leader: still not the leader (%s)", reason)
        self.leading, self._reason = leading, reason

    def close(self) -> None:
        try:
            self.registration.unregister()
        except ConsulUnavailableError as exc:
            logger.warning("leader: could not unregister (the session expires by itself): %s", exc)
