"""``manage.py hash_ring [--host H] [--biz_id N] [--type T]``: which host owns which business, as Consul sees it.

Prints, for each registered host with a matching business, ``host: <ip>`` and then one ``- <biz>`` line per
business — the original's format. It only reads Consul: nothing is registered. ``--host localhost`` means this
host (the address registration uses); ``--type`` names the registered command. The default is ``celerybeat``, the
ring the leader is chosen on (the original defaulted to its access processes' ``run_access-data``); the businesses
are this platform's ring targets, ``BKMONITOR_WORKER_INCLUDE_LIST`` plus ``DEFAULT_BK_BIZ_ID``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.management.base.dispatch import dispatch_all_hosts, ring_targets
from alarm_backends.management.base.service_discovery import ConsulRegistration
from alarm_backends.management.hashring import EmptyRingError
from alarm_backends.management.leader import LEADER_COMMAND


class Command(BaseCommand):
    help = "Show which registered host owns which business id on the hash ring (reads Consul only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="only this host; 'localhost' means this host")
        parser.add_argument("--biz_id", type=int, help="only this business id")
        parser.add_argument(
            "--type",
            default=LEADER_COMMAND,
            help=f"the registered command whose ring to show (default: {LEADER_COMMAND})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            ring = ConsulRegistration(options.get("type") or LEADER_COMMAND)
        except ValueError as exc:  # a bad HOST_ADDR or CONSUL_SESSION_TTL
            raise CommandError(str(exc)) from None
        host = options.get("host")
        if host == "localhost":
            host = ring.host_addr
        biz_id = options.get("biz_id")
        try:
            registry = ring.registry()
        except ConsulUnavailableError as exc:
            raise CommandError(str(exc)) from None
        try:
            host_targets = dispatch_all_hosts(registry.hosts, ring_targets())
        except EmptyRingError:
            raise CommandError(f"no host is registered under {ring.prefix} (Consul at {ring.address})") from None
        for target_host, targets in host_targets.items():
            if host and target_host != host:
                continue
            matching = [t for t in targets if not biz_id or t == biz_id]
            if matching:
                self.stdout.write(f"host: {target_host}")
                for target in matching:
                    self.stdout.write(f"- {target}")
