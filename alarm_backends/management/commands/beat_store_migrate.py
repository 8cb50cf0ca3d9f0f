"""``manage.py beat_store_migrate [--from-url URL] [--from-prefix PREFIX] [--merge] [--dry-run]``: copy the schedule
into the store the settings name now, from where it was.

The usual move: a schedule on the main Redis (``redbeat:`` in ``REDBEAT_REDIS_DB``) to a Redis Cluster
(``REDBEAT_REDIS_CLUSTER_NODES``, where the prefix becomes ``{redbeat}:``). With the settings of the new store in
place and its beats not yet started, this copies each entry with its run history (``last_run_at``, run count), its
next due time, its pause and any pending run-now request; the old store is only read (``patches.redbeat.migrate``).
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from alarm_backends.core.cluster import get_cluster
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.utils import backend_app
from alarm_backends.service.scheduler.config import main_store, redbeat_key_prefix
from patches.redbeat.client import build_redis, get_redis, redact_url
from patches.redbeat.config import SchedulerConfig
from patches.redbeat.migrate import Copied, MigrationError, copy_schedule
from patches.redbeat.store import Store


class Command(OperatorCommand):
    help = (
        "Copy the beat schedule (entries, run history, pauses, run-now requests) from the store it was in (by "
        "default the main Redis, REDBEAT_REDIS_DB) into the store the settings name (e.g. a Redis Cluster)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from-url", help="the old store's Redis URL (default: the main Redis, REDBEAT_REDIS_DB)")
        parser.add_argument(
            "--from-prefix",
            help="the old store's key prefix (default: REDBEAT_KEY_PREFIX as the platform scopes it by cluster)",
        )
        parser.add_argument(
            "--merge", action="store_true", help="copy into a target that holds entries, keeping those it holds"
        )
        parser.add_argument("--dry-run", action="store_true", help="read both stores, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        app = backend_app()
        conf = SchedulerConfig.from_app(app.conf)
        target = Store(get_redis(app), conf.key_prefix)
        target_where = f"{conf.key_prefix}* in {redact_url(str(app.conf.get('redbeat_redis_url') or ''))}"
        if options["from_url"]:
            source_url, source_options = options["from_url"], None
        else:
            old = main_store(settings)
            source_url, source_options = old["redbeat_redis_url"], old.get("redbeat_redis_options")
        cluster = get_cluster().name
        prefix = options["from_prefix"] or redbeat_key_prefix(
            settings.REDBEAT_KEY_PREFIX, cluster, bool(settings.CLUSTER_SCOPED_NAMES)
        )
        source_where = f"{prefix}* in {redact_url(source_url)}"
        try:
            source = Store(build_redis(source_url, source_options), prefix)
            copied = copy_schedule(source, target, conf.lock_timeout, options["merge"], options["dry_run"])
        except (MigrationError, ValueError) as exc:
            raise CommandError(f"{source_where} -> {target_where}: {exc}") from None
        except redis.RedisError as exc:
            raise CommandError(f"{source_where} -> {target_where}: Redis: {exc}") from None
        self.stdout.write(report(copied, source_where, target_where, options["dry_run"]))


def report(copied: Copied, source: str, target: str, dry_run: bool) -> str:
    verb = "would copy" if dry_run else "copied"
    lines = [
        f"{verb} {copied.entries} entries ({copied.statics} static, {copied.run_now} with a run-now request) "
        f"from {source} to {target}"
    ]
    if copied.kept:
        lines.append(f"kept {copied.kept} entries the target held already (--merge)")
    if copied.orphans:
        shown = ", ".join(copied.orphans[:5]) + (" …" if len(copied.orphans) > 5 else "")
        lines.append(f"left out {len(copied.orphans)} index members with no entry hash: {shown}")
    if not dry_run and copied.entries:
        lines.append("start the beats on the new store now; stop those of the old one")
    return "\n".join(lines)
