"""``manage.py beat_schedule [list | show NAME | run NAME | pause NAME | resume NAME]``: the backend schedule as the
patched RedBeat holds it in Redis, and an operator's controls over it.

* ``list`` (the default; ``--json``): one row per entry — queue, cron, description, next and last run, runs,
  expires, state;
* ``show NAME`` (``--json``): every field of one entry, with its definition and missed-run policy;
* ``run NAME [--wait [SECONDS]]``: the leader publishes the entry once, now, on its next tick;
* ``pause NAME`` / ``resume NAME``: the leader skips the entry's slots until it is resumed.

NAME is an entry's name, its job's dotted path (``alarm_backends.jobs.heartbeat``) or a unique last part of the name.
The command only reads and writes Redis (``patches.redbeat.controls``): the leader does the publishing, fenced by
its lock, so a run asked for here has the guarantees of a scheduled slot.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from typing import Any

import redis
from celery import Celery
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from alarm_backends.checks import crontab_problems
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.schedule import view
from alarm_backends.management.utils import backend_app
from alarm_backends.service.scheduler.crontab import task_name
from patches.redbeat.client import get_redis, redact_url
from patches.redbeat.config import SchedulerConfig
from patches.redbeat.controls import Controls, Snapshot, StoredEntry, run_now_id
from patches.redbeat.entries import Definitions, decode_meta
from patches.redbeat.policy import MissedRun, from_epoch
from patches.redbeat.publisher import Templates
from patches.redbeat.store import Store

DEFAULT_WAIT = 30.0
NAME_HELP = "the entry's name, its job's dotted path, or a unique last part of its name"
BEAT_COMMAND = "celery -A alarm_backends.service.scheduler.app beat"


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
        for name, entry in (app.conf.beat_schedule or {}).items():
            try:
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

    def rows(self, snapshot: Snapshot) -> list[view.Row]:
        definitions = self.definitions(snapshot)
        return [self.row(entry, definitions) for entry in snapshot.entries]

    def row(self, entry: StoredEntry, definitions: Definitions) -> view.Row:
        base = view.Row(
            name=entry.name,
            key=self.store.key(entry.name),
            next_run=entry.score,
            paused_since=entry.paused_since,
            run_requested=entry.requested / 1000 if entry.requested is not None else None,
            static=entry.static,
        )
        try:
            last_run_at, total = decode_meta(entry.meta)
            last_run = last_run_at.timestamp() if last_run_at else None
            base = dataclasses.replace(base, last_run=last_run, total_runs=total)
        except ValueError:
            base = dataclasses.replace(base, problem="unreadable meta (the next run rewrites it)")
        if entry.definition is None:
            return dataclasses.replace(base, problem="no definition (the leader removes it when it is due)")
        try:
            definition = definitions.get(entry.definition)
        except Exception as exc:  # whatever a hand-written definition holds, the rest of the list is still shown
            return dataclasses.replace(base, problem=f"unreadable definition: {exc}")
        decoded = dataclasses.replace(
            base,
            task=definition.task,
            cron=view.cron_text(definition.schedule),
            description=view.describe(definition.schedule),
            enabled=definition.enabled,
            schedule=repr(definition.schedule),
            args=definition.args,
            kwargs=definition.kwargs,
            options=definition.options,
            missed_run=dataclasses.asdict(definition.missed_run),
        )
        try:
            # What the leader publishes: the task's own queue and expires, unless the entry's options say otherwise.
            template = definition.template(self.templates)
        except Exception as exc:
            return dataclasses.replace(decoded, problem=f"cannot be published: {exc}")
        queue = template.declare[0].name if template.declare else template.routing_key
        return dataclasses.replace(decoded, queue=queue or "?", expires=template.expires)

    def leader(self, snapshot: Snapshot) -> str:
        if snapshot.lock_ttl is None:
            return f"no beat holds the lock {self.store.lock_key}: nothing is dispatched until one does"
        return f"a beat leads (lock {self.store.lock_key}, {snapshot.lock_ttl:.0f}s left)"


class Command(OperatorCommand):
    help = "List the backend beat schedule as stored in Redis; show, run now, pause or resume one entry."
    # This command is how an operator sees a malformed crontab entry (an error row): no check stops it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON (list, show)")
        actions = parser.add_subparsers(dest="action", title="actions", metavar="{list,show,run,pause,resume}")
        listing = actions.add_parser("list", help="every entry (the default)")
        show = actions.add_parser("show", help="every field of one entry")
        show.add_argument("name", help=NAME_HELP)
        for sub in (listing, show):
            # SUPPRESS: `beat_schedule --json list` keeps the flag the main parser set.
            sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        run = actions.add_parser("run", help="have the leader publish an entry once, now")
        run.add_argument("name", help=NAME_HELP)
        run.add_argument(
            "--wait",
            nargs="?",
            type=float,
            const=DEFAULT_WAIT,
            metavar="SECONDS",
            help=f"wait until the leader has published it (at most SECONDS, default {DEFAULT_WAIT:.0f})",
        )
        pause = actions.add_parser("pause", help="skip an entry's slots until it is resumed")
        pause.add_argument("name", help=NAME_HELP)
        resume = actions.add_parser("resume", help="run a paused entry again from its next slot")
        resume.add_argument("name", help=NAME_HELP)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action") or "list"
        try:
            schedule = Schedule(backend_app())
        except ValueError as exc:  # a bad redbeat_* setting: the message names it
            raise CommandError(str(exc)) from None
        # Django's TIME_ZONE, by name (the process's local zone is the same, set by Django, but nameless).
        self.tz = timezone.get_default_timezone()
        try:
            snapshot = schedule.controls.read()
            getattr(self, f"_{action}")(schedule, snapshot, options)
        except redis.RedisError as exc:
            raise CommandError(f"cannot use the schedule store ({schedule.where}): {exc}") from None

    def _list(self, schedule: Schedule, snapshot: Snapshot, options: dict[str, Any]) -> None:
        stored = schedule.rows(snapshot)
        rows = schedule.flag_problems(stored + schedule.configured_rows({row.name for row in stored}))
        if options.get("json"):
            self.stdout.write(json.dumps([view.as_json(row, snapshot.now, self.tz) for row in rows], indent=2))
            if not stored:
                self.stderr.write(schedule.empty_message())
            return
        for line in view.table(rows, snapshot.now, self.tz, self.app_timezone(schedule)):
            self.stdout.write(line)
        errors = [row for row in rows if row.status == view.ERROR]
        if errors:
            self.stdout.write("\nErrors (fix the crontab lists; `manage.py check` lists them too):")
            for row in errors:
                self.stdout.write(f"  {row.name}: {row.problem}")
        if not stored:
            self.stdout.write("\n" + schedule.empty_message())
        summary = f"{len(stored)} entries in {schedule.where}"
        for status in (view.NOT_SYNCED, view.ERROR):
            count = sum(row.status == status for row in rows)
            summary += f", {count} {status}" if count else ""
        self.stdout.write(
            f"\n{summary}; {schedule.leader(snapshot)}.\n"
            f"Crons in {view.CRON_ORDER}, evaluated in {self.app_timezone(schedule)}; "
            f"times in {view.zone_text(self.tz, snapshot.now)}."
        )

    def _show(self, schedule: Schedule, snapshot: Snapshot, options: dict[str, Any]) -> None:
        entry = schedule.resolve(snapshot, options["name"])
        row = schedule.row(entry, schedule.definitions(snapshot))
        if options.get("json"):
            self.stdout.write(json.dumps(view.as_json(row, snapshot.now, self.tz, detailed=True), indent=2))
            return
        pairs = view.details(row, snapshot.now, self.tz, self.app_timezone(schedule))
        pairs.append(("leader", schedule.leader(snapshot)))
        for line in view.lines(pairs):
            self.stdout.write(line)

    def _run(self, schedule: Schedule, snapshot: Snapshot, options: dict[str, Any]) -> None:
        name = schedule.resolve(snapshot, options["name"]).name
        outcome = schedule.controls.request_run(name)
        if not outcome.exists or outcome.stamp is None:
            raise CommandError(f"{name!r} was removed from the schedule ({schedule.where}) meanwhile")
        task_id = run_now_id(name, outcome.stamp)
        if outcome.changed:
            self.stdout.write(f"requested a run of {name}: the leader publishes it on its next tick as {task_id}")
        else:
            at = view.when(outcome.stamp / 1000, snapshot.now, self.tz)
            self.stdout.write(f"a run of {name} is already pending (requested {at}): it runs once, as {task_id}")
        if snapshot.lock_ttl is None:
            self.stderr.write(f"warning: {schedule.leader(snapshot)}; the run is published when a beat leads")
        timeout = options.get("wait")
        if timeout is None:
            return
        if not schedule.controls.wait_served(name, outcome.stamp, timeout):
            raise CommandError(
                f"{task_id} was not published within {timeout:.0f}s; the request stays pending until a beat leads "
                f"({schedule.leader(schedule.controls.read())})"
            )
        last_run_at, _ = decode_meta(schedule.controls.meta(name))
        if last_run_at is None or last_run_at.timestamp() < outcome.stamp / 1000 - 0.001:
            raise CommandError(f"the leader dropped {task_id}: the entry could not be published (see the beat log)")
        published = last_run_at.timestamp()
        delay = view.duration(published - outcome.stamp / 1000)
        at = view.stamp(published, self.tz)  # with its UTC offset
        self.stdout.write(f"published {task_id} at {at}, {delay} after the request")

    def _pause(self, schedule: Schedule, snapshot: Snapshot, options: dict[str, Any]) -> None:
        name = schedule.resolve(snapshot, options["name"]).name
        outcome = schedule.controls.pause(name)
        if not outcome.exists:
            raise CommandError(f"{name!r} was removed from the schedule ({schedule.where}) meanwhile")
        since = view.when(outcome.stamp, snapshot.now, self.tz) if outcome.stamp is not None else "?"
        if outcome.changed:
            self.stdout.write(f"paused {name}: the leader skips its slots until `beat_schedule resume {name}`")
        else:
            self.stdout.write(f"{name} was already paused (since {since})")

    def _resume(self, schedule: Schedule, snapshot: Snapshot, options: dict[str, Any]) -> None:
        entry = schedule.resolve(snapshot, options["name"])
        outcome = schedule.controls.resume(entry.name)
        if not outcome.exists:
            raise CommandError(f"{entry.name!r} was removed from the schedule ({schedule.where}) meanwhile")
        if not outcome.changed:
            self.stdout.write(f"{entry.name} is not paused")
            return
        slot = view.when(entry.score, snapshot.now, self.tz)
        self.stdout.write(f"resumed {entry.name}: it runs again from its next slot, {slot}")

    @staticmethod
    def app_timezone(schedule: Schedule) -> str:
        return str(schedule.app.conf.timezone or "UTC")
