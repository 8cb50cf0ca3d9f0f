"""The backend schedule as the patched RedBeat holds it in Redis, read the way the scheduler reads it: one
:class:`Schedule` per app, its rows (``view.Row``) for ``beat_schedule`` and the console, and its controls."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import weakref
from typing import Any

import redis
from celery import Celery
from django.core.management.base import CommandError

from alarm_backends.checks import crontab_problems
from alarm_backends.management.schedule import view
from alarm_backends.service.scheduler.crontab import task_name
from alarm_backends.service.scheduler.overlap import ALLOW
from alarm_backends.service.scheduler.overlap.lease import state as overlap_state
from patches.redbeat.client import get_redis, redact_url
from patches.redbeat.config import SchedulerConfig
from patches.redbeat.controls import Controls, Snapshot, StoredEntry
from patches.redbeat.entries import Definitions, decode_meta
from patches.redbeat.policy import MissedRun, entry_jitter, from_epoch
from patches.redbeat.publisher import Templates
from patches.redbeat.store import Store

BEAT_COMMAND = "celery -A alarm_backends.service.scheduler.app beat"


def holder_text(holder: str | None) -> str:
    """Who holds the lock, from its value: ``<host>:<pid>:<nonce>`` as this scheduler's beats write it (a stock
    beat's, during a rolling upgrade, is a bare token)."""
    host, pid, nonce = (holder or "").rsplit(":", 2) if (holder or "").count(":") >= 2 else ("", "", "")
    if host and pid.isdigit() and nonce:
        return f"host {host}, pid {pid}"
    return f"lock token {holder}" if holder else "holder unknown"


# A stored definition's fields as a listing shows them, by app and by the definition's JSON: decoding and describing
# 10,000 definitions was most of a listing's time, and a definition hardly ever changes (the scheduler caches its
# decoded definitions by their JSON the same way). Bounded: a schedule redefined over and over starts afresh.
_DEFINITION_FIELDS: weakref.WeakKeyDictionary[Celery, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()
_FIELDS_KEPT = 100_000


@functools.lru_cache(maxsize=65_536)
def _meta(raw: str | None) -> tuple[float | None, int]:
    """A stored meta's last run (epoch seconds) and run count; ValueError when unreadable."""
    last_run_at, total = decode_meta(raw)
    return (last_run_at.timestamp() if last_run_at else None), total


@functools.lru_cache(maxsize=256)
def _policy_fields(policy: MissedRun) -> dict[str, Any]:
    """A missed-run policy's fields (a schedule has a handful of distinct policies, shared by its entries)."""
    return dataclasses.asdict(policy)


class Schedule:
    """The app's schedule store, and its entries decoded the way the scheduler decodes them."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.conf = SchedulerConfig.from_app(app.conf)
        self.store = Store(get_redis(app), self.conf.key_prefix)
        self.controls = Controls(self.store)
        self.where = f"{self.conf.key_prefix}* in {redact_url(str(app.conf.get('redbeat_redis_url') or ''))}"
        self.templates = Templates(app)
        self.policies: dict[str, MissedRun] = {}
        # What the configuration gives an entry beside its stored definition (which is a plain crontab, as stock's):
        # its zone and its jitter, as the leader applies them.
        self.zones: dict[str, str] = {}
        self.jitters: dict[str, float] = {}
        # And its overlap policy, which the workers apply (the loader puts it in the entry beside the jitter).
        self.overlaps: dict[str, str] = {}
        for name, entry in (app.conf.beat_schedule or {}).items():
            self.zones[name] = view.schedule_zone(entry.get("schedule"))
            self.overlaps[name] = str(entry.get("overlap") or ALLOW)
            try:
                self.jitters[name] = entry_jitter(name, entry.get("jitter"), entry.get("schedule"))
                self.policies[name] = MissedRun.parse(entry.get("missed_run"), self.conf.missed_run)
            except ValueError:  # a hand-made entry the loader would skip; the default is shown
                continue

    def empty_message(self) -> str:
        return (
            f"the schedule store ({self.where}) holds no entries: no beat has synced the schedule into it yet "
            f"(the configured entries are listed as {view.NOT_SYNCED!r}). Start one (`make run`, or "
            f"`{BEAT_COMMAND}`) and look again."
        )

    def resolve(self, snapshot: Snapshot, given: str) -> StoredEntry:
        """The entry ``given`` names: its exact name, its job's dotted path, or a unique last part of its name."""
        if not snapshot.entries:
            raise CommandError(self.empty_message())
        by_name = {entry.name: entry for entry in snapshot.entries}
        for candidate in (given, task_name(given)):
            if candidate in by_name:
                return by_name[candidate]
        tails = [name for name in by_name if name.endswith(("." + given, "_" + given))]
        if len(tails) == 1:
            return by_name[tails[0]]
        if tails:
            matches = ", ".join(sorted(tails))
            raise CommandError(f"{given!r} matches {len(tails)} entries ({matches}): give its full name")
        close = difflib.get_close_matches(given, by_name, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(name) for name in close)}?" if close else ""
        raise CommandError(
            f"no entry named {given!r} in the schedule ({self.where}); `beat_schedule list` shows them.{hint}"
        )

    def configured_rows(self, stored: set[str]) -> list[view.Row]:
        """The app's entries no beat has written into the store yet (a store no beat has synced, or an entry added
        to the config since the leader's last sync), as the config defines them."""
        rows = []
        for name, entry in sorted((self.app.conf.beat_schedule or {}).items()):
            if name in stored:
                continue
            task = self.app.tasks.get(entry.get("task"))
            expires = getattr(task, "expires", None)
            rows.append(
                view.Row(
                    name=name,
                    key=self.store.key(name),
                    task=str(entry.get("task")),
                    queue=str(getattr(task, "queue", None) or "?"),
                    cron=view.cron_text(entry.get("schedule")),
                    zone=view.schedule_zone(entry.get("schedule")),
                    description=view.describe(entry.get("schedule")),
                    expires=expires if isinstance(expires, int | float) else None,
                    static=True,
                    status=view.NOT_SYNCED,
                )
            )
        return rows

    @staticmethod
    def flag_problems(rows: list[view.Row]) -> list[view.Row]:
        """Every crontab entry that will not run, as an error row: a malformed one (the loader skips it) gets a row
        of its own, one whose job does not import marks its registered entry's row."""
        problems = crontab_problems()
        by_name = {row.name: index for index, row in enumerate(rows)}
        flagged = list(rows)
        for problem in problems:
            index = None if problem.malformed else by_name.get(task_name(problem.path), by_name.get(problem.path))
            if index is None:
                flagged.append(view.Row(name=problem.path or problem.where, key=problem.where, status=view.ERROR,
                                        problem=problem.message))  # fmt: skip
            else:
                flagged[index] = dataclasses.replace(flagged[index], status=view.ERROR, problem=problem.message)
        return flagged

    def definitions(self, snapshot: Snapshot) -> Definitions:
        """The scheduler's decoder, on the snapshot's (the Redis server's) clock."""
        return Definitions(lambda: from_epoch(snapshot.now), self.policies, self.conf.missed_run)

    def listed(self, snapshot: Snapshot) -> tuple[list[view.Row], list[view.Row]]:
        """The stored rows, and every row a listing shows: those, the configured entries not synced yet, and the
        crontab entries that will not run (``flag_problems``)."""
        stored = self.rows(snapshot)
        return stored, self.flag_problems(stored + self.configured_rows({row.name for row in stored}))

    def rows(self, snapshot: Snapshot) -> list[view.Row]:
        definitions = self.definitions(snapshot)
        return [self.row(entry, definitions) for entry in snapshot.entries]

    def row(self, entry: StoredEntry, definitions: Definitions) -> view.Row:
        # The fields gathered first and the row made once: a list of 10,000 entries makes 10,000 rows.
        fields: dict[str, Any] = {
            "name": entry.name,
            "key": self.store.key(entry.name),
            "next_run": entry.score,
            "paused_since": entry.paused_since,
            "run_requested": entry.requested / 1000 if entry.requested is not None else None,
            "static": entry.static,
        }
        try:
            fields["last_run"], fields["total_runs"] = _meta(entry.meta)
        except ValueError:
            fields["problem"] = "unreadable meta (the next run rewrites it)"
        if entry.definition is None:
            return view.Row(**{**fields, "problem": "no definition (the leader removes it when it is due)"})
        cache = _DEFINITION_FIELDS.setdefault(self.app, {})
        decoded = cache.get(entry.definition)
        if decoded is None:
            decoded = self.decoded(entry.definition, definitions)
            if len(cache) >= _FIELDS_KEPT:
                cache.clear()
            cache[entry.definition] = decoded
        fields.update(decoded)
        policy = self.policies.get(entry.name, self.conf.missed_run)
        zone = self.zones.get(entry.name) or fields.get("zone", "")
        fields.update(missed_run=dict(_policy_fields(policy)), zone=zone, jitter=self.jitters.get(entry.name, 0.0),
                      overlap=self.overlaps.get(entry.name, ALLOW))  # fmt: skip
        return view.Row(**fields)

    @staticmethod
    def with_overlap_state(row: view.Row) -> view.Row:
        """``row`` with what the service DB says of its overlap now (one entry's page: three reads)."""
        try:
            found: dict[str, Any] = dict(overlap_state(row.name))
        except redis.RedisError as exc:
            found = {"problem": f"its state cannot be read (service DB unavailable: {exc})"}
        return dataclasses.replace(row, overlaps=found)

    def decoded(self, raw: str, definitions: Definitions) -> dict[str, Any]:
        """The fields a stored definition gives a row (the same for every entry with that JSON), or its problem."""
        try:
            definition = definitions.get(raw)
        except Exception as exc:  # whatever a hand-written definition holds, the rest of the list is still shown
            return {"problem": f"unreadable definition: {exc}"}
        fields: dict[str, Any] = {
            "task": definition.task,
            "cron": view.cron_text(definition.schedule),
            "zone": view.schedule_zone(definition.schedule),
            "description": view.describe(definition.schedule),
            "enabled": definition.enabled,
            "schedule": repr(definition.schedule),
            "args": definition.args,
            "kwargs": definition.kwargs,
            "options": definition.options,
        }
        try:
            # Where the leader publishes it and for how long: the task's own queue and expires, unless the entry's
            # options say otherwise (shared by every entry of the task and options: the body is not needed).
            template = self.templates.base(definition.task, definition.options)
        except Exception as exc:
            return {**fields, "problem": f"cannot be published: {exc}"}
        queue = template.declare[0].name if template.declare else template.routing_key
        return {**fields, "queue": queue or "?", "expires": template.expires}

    def leader(self, snapshot: Snapshot) -> str:
        return self.leader_line(snapshot.lock_ttl, snapshot.lock_holder)

    def leader_line(self, ttl: float | None, holder: str | None) -> str:
        """Who leads, from the lock's TTL left and its value."""
        if ttl is None:
            return f"no beat holds the lock {self.store.lock_key}: nothing is dispatched until one does"
        return f"a beat leads ({holder_text(holder)}; lock {self.store.lock_key}, {ttl:.0f}s left)"
