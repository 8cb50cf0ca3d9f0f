"""``manage.py beat_schedule [list | show NAME | run NAME | pause NAME | resume NAME]``: the backend schedule as the
patched RedBeat holds it in Redis, and an operator's controls over it.

* ``list`` (the default; ``--json``): one row per entry — queue, cron, description, next and last run, runs,
  expires, state;
* ``show NAME`` (``--json``): every field of one entry, with its definition and missed-run policy;
* ``run NAME [--wait [SECONDS]]``: the leader publishes the entry once, now, on its next tick;
* ``backfill NAME --from T1 --to T2 [--overlap sequential|allow|skip] [--limit N] [--dry-run]``: every slot of the
  entry in that past range, published once under the scheduler's own slot ids (``schedule.backfill``);
* ``pause NAME`` / ``resume NAME``: the leader skips the entry's slots until it is resumed.

NAME is an entry's name, its job's dotted path (``alarm_backends.jobs.heartbeat``) or a unique last part of the name.
The command only reads and writes Redis (``patches.redbeat.controls``): the leader does the publishing, fenced by
its lock, so a run asked for here has the guarantees of a scheduled slot.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import redis
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from alarm_backends.management import utils
from alarm_backends.management.base.operator import OperatorCommand
from alarm_backends.management.schedule import backfill as backfills
from alarm_backends.management.schedule import view
from alarm_backends.management.schedule.reader import Schedule
from patches.redbeat.controls import Snapshot, run_now_id
from patches.redbeat.entries import decode_meta

DEFAULT_WAIT = 30.0
NAME_HELP = "the entry's name, its job's dotted path, or a unique last part of its name"


class Command(OperatorCommand):
    help = "List the backend beat schedule as stored in Redis; show, run now, backfill, pause or resume one entry."
    # This command is how an operator sees a malformed crontab entry (an error row): no check stops it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON (list, show)")
        actions = parser.add_subparsers(dest="action", title="actions", metavar="{list,show,run,backfill,pause,resume}")
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
        backfills.add_parser(actions, NAME_HELP)
        pause = actions.add_parser("pause", help="skip an entry's slots until it is resumed")
        pause.add_argument("name", help=NAME_HELP)
        resume = actions.add_parser("resume", help="run a paused entry again from its next slot")
        resume.add_argument("name", help=NAME_HELP)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action") or "list"
        try:
            schedule = Schedule(utils.backend_app())  # looked up when called: the tests give theirs
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
        stored, rows = schedule.listed(snapshot)
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
        row = schedule.with_overlap_state(schedule.row(entry, schedule.definitions(snapshot)))
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

    def _backfill(self, schedule: Schedule, snapshot: Snapshot, options: dict[str, Any]) -> None:
        entry = schedule.resolve(snapshot, options["name"])
        if entry.definition is None:
            raise CommandError(f"{entry.name} has no definition in the store: there is nothing to backfill")
        definition = schedule.definitions(snapshot).get(entry.definition, schedule.store.key(entry.name))
        # The configured schedule when there is one: it carries the entry's zone, which the stored crontab does not.
        configured = (schedule.app.conf.beat_schedule or {}).get(entry.name, {}).get("schedule")
        try:
            start = backfills.parse_time(options["start"], self.tz)
            end = backfills.parse_time(options["end"], self.tz)
            sched = backfills.on_app(configured or definition.schedule, schedule.app)
            sent = {"args": tuple(definition.args or ()), "kwargs": dict(definition.kwargs or {}),
                    "options": dict(definition.options or {})}  # fmt: skip
            planned = backfills.plan(entry.name, definition.task, sched, start, end, snapshot.now, options["overlap"],
                                     options["limit"], **sent)  # fmt: skip
            planned, ran = backfills.without_runs(planned, backfills.logged_since(start))
        except backfills.BackfillError as exc:
            raise CommandError(f"backfill of {entry.name}: {exc}") from None
        span = f"{view.stamp(start, self.tz)} to {view.stamp(end, self.tz)}"
        if ran:
            self.stdout.write(f"{ran} slot(s) from {span} already ran (the run log): left out")
        if not planned.slots:
            self.stdout.write(f"{entry.name} has no slot left to run from {span}: nothing to publish")
            return
        if options["dry_run"]:
            for slot, run_id in zip(planned.slots, planned.ids, strict=True):
                self.stdout.write(f"{view.stamp(slot, self.tz)}  {run_id}")
            self.stdout.write(f"{len(planned.slots)} slot(s) from {span}; --dry-run: nothing published")
            return
        try:
            backfills.publish(schedule.app, planned)
        except Exception as exc:  # kombu's and the transport's errors alike: the broker refused
            raise CommandError(f"backfill of {entry.name}: the broker refused it: {exc}") from None
        how = {backfills.SEQUENTIAL: "one after another", "allow": "all at once",
               "skip": "all at once, a slot skipped while a run of the entry runs"}[planned.rule]  # fmt: skip
        self.stdout.write(
            f"published {len(planned.slots)} slot(s) of {entry.name} from {span}, {how}: {planned.ids[0]} to "
            f"{planned.ids[-1]}; one that ran meanwhile is dropped by the workers"
        )

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
