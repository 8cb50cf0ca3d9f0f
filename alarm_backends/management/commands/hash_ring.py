"""``manage.py hash_ring [--host H] [--biz_id N] [--type T]``: which host owns which business, as Consul sees it.

Prints, for each registered host with a matching business, ``host: <ip>`` and then one ``- <biz>`` line per
business — the original's format. It only reads Consul: nothing is registered. ``--host localhost`` means this
host (the address registration uses); ``--type`` names the registered command, ``run_access-data`` by default as in
the original (its access processes' ring; ``celerybeat`` is the ring this platform's leader is chosen on).

The businesses: on ``celerybeat``, the leader ring's targets (``BKMONITOR_WORKER_INCLUDE_LIST`` plus
``DEFAULT_BK_BIZ_ID``); on the other rings, the original's — the enabled strategies' business ids, from the function
``HASH_RING_TARGETS_SOURCE`` names, plus the include list — or, without a source, the leader ring's targets, said
on stderr. Stderr also says which ring is in force; stdout keeps the original's format, which scripts parse.

The answer follows the deployment mode, as :mod:`alarm_backends.management.base.leader` does:

* **No Consul configured** (``CONSUL_ENABLED`` false): single node. There is no ring to read — this host leads
  and owns every target — so the command says so and prints this host's targets, instead of failing on an agent
  nobody configured (``localhost:8500`` is only the client's default address).
* **Container mode with Consul** (``DEPLOY_MODE=kubernetes``): beats neither register nor consult the ring (one
  beat per deployment, elected by the Redis lock). The ring is still shown, since hosts outside may register under
  the prefix, but behind a line saying it does not pick the leader; an empty ring is then expected, not an error.
* **Consul configured, host mode**: the ring as Consul lists it; an unreachable agent or an empty ring is an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.core.host import get_host_addr
from alarm_backends.management.base.dispatch import (
    dispatch_all_hosts,
    ring_kind,
    ring_targets,
    separates_labels,
    strategy_targets,
)
from alarm_backends.management.base.leader import LEADER_COMMAND
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.base.service_discovery import ConsulRegistration
from alarm_backends.management.hashring import EmptyRingError
from config.tools.consul import ENABLING_VARS

LOCALHOST = "localhost"
# The original's default: the ring its data-access processes register on.
ACCESS_COMMAND = "run_access-data"


def not_configured_reason(environ: Mapping[str, str] = os.environ) -> str:
    """Why ``CONSUL_ENABLED`` is false: usually no Consul variable is set, but a ``BKAPP_SETTINGS_CONSUL_ENABLED``
    override can switch it off with one set — naming the unset variables then would send the operator astray."""
    if any(environ.get(name) for name in ENABLING_VARS):
        return "CONSUL_ENABLED is overridden to false"
    return " / ".join(ENABLING_VARS) + " unset"


def single_node_header(host_addr: str, container_mode: bool) -> str:
    """The line that replaces the ring when no Consul is configured (the leader check answers yes in both cases)."""
    head = f"single-node mode: Consul is not configured ({not_configured_reason()})"
    if container_mode:
        # In a container deployment the beat may run in another pod; is_leader() still answers yes here.
        return (
            f"{head}, and in container mode (DEPLOY_MODE=kubernetes) one beat runs per deployment, elected by the "
            f"Redis lock, so this host ({host_addr}) counts as the leader and owns every target"
        )
    return f"{head}, so this host ({host_addr}) leads and owns every target"


def container_mode_header(registration: ConsulRegistration) -> str:
    """What ``healthz``'s consul and leader checks say in container mode, for the reader of the ring below it."""
    return (
        f"container mode (DEPLOY_MODE=kubernetes): the ring does not pick the leader — one beat runs per deployment, "
        f"elected by the Redis lock, and beats here do not register; below is what Consul at {registration.address} "
        f"lists under {registration.prefix} (hosts outside the cluster may register)"
    )


def this_host() -> str:
    try:
        return get_host_addr()
    except ValueError as exc:  # a bad HOST_ADDR (BK_MONITOR_HOST_ADDR)
        raise CommandError(str(exc)) from None


class Command(OperatorCommand):
    help = (
        "Show which registered host owns which business id on the hash ring (reads Consul only; without Consul, "
        "single-node mode: this host owns every business)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help=f"only this host; '{LOCALHOST}' means this host")
        parser.add_argument("--biz_id", type=int, help="only this business id")
        parser.add_argument(
            "--type",
            default=ACCESS_COMMAND,
            help=f"the registered command whose ring to show (default: %(default)s; the leader's: {LEADER_COMMAND})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, biz_id = options.get("host"), options.get("biz_id")
        command = options.get("type") or ACCESS_COMMAND
        targets = self._targets(command)
        if not settings.CONSUL_ENABLED:
            self._single_node(host, biz_id, targets)
            return
        try:
            ring = ConsulRegistration(command)
        except ValueError as exc:  # a bad HOST_ADDR or CONSUL_SESSION_TTL
            raise CommandError(str(exc)) from None
        if host == LOCALHOST:
            host = ring.host_addr
        if settings.IS_CONTAINER_MODE:
            # Before reading Consul, so the note stands above an unreachable agent's error too.
            self.stdout.write(container_mode_header(ring))
        try:
            registry = ring.registry()
        except ConsulUnavailableError as exc:
            raise CommandError(str(exc)) from None
        try:
            host_targets = dispatch_all_hosts(registry.hosts, targets, separates_labels(registry))
        except EmptyRingError:
            empty = f"no host is registered under {ring.prefix} (Consul at {ring.address})"
            if settings.IS_CONTAINER_MODE:  # expected there: nothing in the cluster registers
                self.stdout.write(empty)
                return
            raise CommandError(empty) from None
        # On stderr: stdout keeps the original's format, which scripts parse.
        self.stderr.write(ring_kind(registry))
        self._print(host_targets, host, biz_id)

    def _targets(self, command: str) -> list[int]:
        if command == LEADER_COMMAND:
            return ring_targets()
        try:
            targets = strategy_targets()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if targets is None:
            self.stderr.write(
                f"targets: BKMONITOR_WORKER_INCLUDE_LIST and DEFAULT_BK_BIZ_ID (HASH_RING_TARGETS_SOURCE is not set; "
                f"the original's {command} ring also holds every business with an enabled strategy)"
            )
            return ring_targets()
        return targets

    def _single_node(self, host: str | None, biz_id: int | None, targets: list[int]) -> None:
        me = this_host()
        self.stdout.write(single_node_header(me, bool(settings.IS_CONTAINER_MODE)))
        if host and host not in (LOCALHOST, me):
            self.stdout.write(f"{host} owns no target: in single-node mode the only host is this one ({me})")
            return
        # The ring of one host gives it every target; building it (65536 md5s) would change nothing.
        self._print({me: targets}, None, biz_id)

    def _print(self, host_targets: Mapping[str, Sequence[int]], host: str | None, biz_id: int | None) -> None:
        """The original's format: ``host: <ip>`` and its ``- <biz>`` lines, for hosts with a matching business."""
        for target_host, targets in host_targets.items():
            if host and target_host != host:
                continue
            matching = [t for t in targets if not biz_id or t == biz_id]
            if matching:
                self.stdout.write(f"host: {target_host}")
                for target in matching:
                    self.stdout.write(f"- {target}")
