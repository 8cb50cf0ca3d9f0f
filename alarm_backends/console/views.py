"""The console's pages: the schedule (search, filter, pages), one entry with its recent runs, and the controls.

Every page needs a signed-in user; the controls need staff status or the ``console.operate_schedule`` permission,
a POST with Django's CSRF token, and are written to the audit trail. They go through the same path as
``manage.py beat_schedule pause|resume|run``: a write into the schedule store that the leading beat acts on, fenced
by its lock, so a run asked for here has the guarantees of a scheduled slot. A part that is down (the schedule
store, the run log) is named on the page, and the rest still shows.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alarm_backends.console import fleet, runs
from alarm_backends.console import leadership as leadership_data
from alarm_backends.console.models import ACTIONS, AuditEntry
from alarm_backends.management import utils
from alarm_backends.management.schedule import view
from alarm_backends.management.schedule.reader import Schedule
from patches.redbeat.controls import ControlOutcome, run_now_id

PAGE_SIZE = 100
AUDIT_SHOWN = 20


def can_operate(user: Any) -> bool:
    permitted = user.is_staff or user.has_perm("console.operate_schedule")
    return bool(user.is_authenticated and user.is_active and permitted)


@dataclass
class Loaded:
    """The schedule as read for one page, and what could not be read."""

    schedule: Schedule | None
    rows: list[view.Row] = field(default_factory=list)
    now: float = field(default_factory=time.time)
    leader: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def app_timezone(self) -> str:
        return str(self.schedule.app.conf.timezone or "UTC") if self.schedule else "UTC"


def load(name: str | None = None) -> Loaded:
    """The schedule, or (``name``) only that entry when it is stored: a page about one entry reads its hash alone,
    however large the schedule (an entry not stored is looked for among the configured ones, as the list does)."""
    try:
        schedule = Schedule(utils.backend_app())
    except ValueError as exc:  # a bad redbeat_* setting: the message names it
        return Loaded(None, problems=[f"the scheduler's settings are refused: {exc}"])
    try:
        snapshot = schedule.controls.read() if name is None else schedule.controls.read_one(name)
    except redis.RedisError as exc:
        rows = schedule.flag_problems(schedule.configured_rows(set()))
        problem = f"the schedule store ({schedule.where}) cannot be read: {exc}; the configured entries are listed"
        return Loaded(schedule, rows, leader="unknown (the store cannot be read)", problems=[problem])
    if name is not None:
        if not snapshot.entries:
            return load()
        row = schedule.row(snapshot.entries[0], schedule.definitions(snapshot))
        rows = [flagged for flagged in schedule.flag_problems([row]) if flagged.name == name]
        return Loaded(schedule, rows, snapshot.now, schedule.leader(snapshot))
    stored, rows = schedule.listed(snapshot)
    problems = [] if stored else [schedule.empty_message()]
    return Loaded(schedule, rows, snapshot.now, schedule.leader(snapshot), problems)


def _listed(row: view.Row, now: float, tz: dt.tzinfo) -> dict[str, str]:
    """``beat_schedule list``'s fields of a row, with its missed-run policy and what is wrong with it."""
    return {**view.cells(row, now, tz), "missed_run": view.missed_run_text(row.missed_run), "problem": row.problem}


@login_required
def schedule_list(request: HttpRequest) -> HttpResponse:
    loaded = load()
    tz = timezone.get_default_timezone()
    query = request.GET.get("q", "").strip()
    queue, state = request.GET.get("queue", ""), request.GET.get("state", "")
    needle = query.lower()
    rows = [
        row
        for row in loaded.rows
        if (not needle or needle in row.name.lower() or needle in row.task.lower())
        and (not queue or row.queue == queue)
        and (not state or row.state == state)
    ]
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    window, runs_problem = runs.read_window()
    late = runs.last_lateness(window, {row.name for row in page.object_list})
    listed = [_listed(row, loaded.now, tz) for row in page.object_list]
    for cells in listed:
        cells["late"] = f"{late[cells['name']]:+.1f}s" if cells["name"] in late else "-"
    context = {
        "loaded": loaded,
        "problems": [*loaded.problems, *filter(None, [runs_problem])],
        "rows": listed,
        "page": page,
        "query": query,
        "queue": queue,
        "state": state,
        "queues": sorted({row.queue for row in loaded.rows}),
        "states": sorted({row.state for row in loaded.rows}),
        "total": len(loaded.rows),
        "zone": view.zone_text(tz, loaded.now),
        "audit": AuditEntry.objects.all()[:AUDIT_SHOWN],
        "can_operate": can_operate(request.user),
    }
    return render(request, "console/schedule.html", context)


@login_required
def entry_detail(request: HttpRequest, name: str) -> HttpResponse:
    loaded = load(name)
    row = next((row for row in loaded.rows if row.name == name), None)
    if row is None:
        raise Http404(f"no entry named {name!r} in the schedule")
    tz = timezone.get_default_timezone()
    window, runs_problem = runs.read_window()
    if loaded.schedule is not None:
        row = loaded.schedule.with_overlap_state(row)
    details = view.details(row, loaded.now, tz, loaded.app_timezone)
    if row.next_run is not None:  # crons run in the app's timezone; the page's times are local: UTC as well
        details.insert([label for label, _ in details].index("next run") + 1,
                       ("next run (UTC)", view.when(row.next_run, loaded.now, dt.UTC)))  # fmt: skip
    context = {
        "loaded": loaded,
        "problems": loaded.problems,
        "row": row,
        "details": details,
        "runs": runs.table(runs.slots(window, row.name, row.task), tz),
        "runs_problem": runs_problem,
        "audit": AuditEntry.objects.filter(entry=name)[:AUDIT_SHOWN],
        "can_operate": can_operate(request.user),
        "stored": row.status != view.NOT_SYNCED and not loaded.problems,
    }
    return render(request, "console/entry.html", context)


@login_required
def workers(request: HttpRequest) -> HttpResponse:
    """This host's supervisord programs, and each crontab queue's depth and consumers on the broker."""
    found = fleet.read(utils.backend_app())
    context = {
        "problems": found.problems,  # the banner of what could not be read
        "fleet": found,
        "can_operate": can_operate(request.user),
    }
    return render(request, "console/workers.html", context)


@login_required
def leadership(request: HttpRequest) -> HttpResponse:
    """Who holds the lease and who stands by, the failovers, and the Consul ring with the owner of ``?biz=N``."""
    tz = timezone.get_default_timezone()
    lease = None
    try:
        lease, problem = leadership_data.read_lease(Schedule(utils.backend_app()), tz)
    except ValueError as exc:  # a bad redbeat_* setting: the message names it
        problem = f"the scheduler's settings are refused: {exc}"
    biz, refused = leadership_data.parse_biz(request.GET.get("biz", ""))
    ring = leadership_data.read_ring(biz)
    problems = [text for text in (problem, refused, ring.problem) if text]
    context = {"problems": problems, "lease": lease, "ring": ring, "biz": request.GET.get("biz", "").strip(),
               "can_operate": can_operate(request.user)}  # fmt: skip
    return render(request, "console/leadership.html", context)


def _describe(action: str, name: str, outcome: ControlOutcome) -> str:
    if not outcome.exists:
        return f"{name} is not in the schedule store: nothing was changed"
    if action == "pause":
        return f"paused {name}: the leader skips its slots until it is resumed" if outcome.changed else "already paused"
    if action == "resume":
        return f"resumed {name}: it runs again from its next slot" if outcome.changed else "it was not paused"
    task_id = run_now_id(name, outcome.stamp or 0)
    if outcome.changed:
        return f"requested a run of {name}: the leader publishes it on its next tick as {task_id}"
    return f"a run of {name} is already pending: it runs once, as {task_id}"


@require_POST
def entry_action(request: HttpRequest, action: str, name: str) -> HttpResponse:
    # Refused, not redirected to the sign-in: a control is never a page to come back to.
    if not can_operate(request.user):
        raise PermissionDenied("pausing, resuming and running entries needs the console.operate_schedule permission")
    if action not in ACTIONS:
        raise Http404(f"no action {action!r}")
    try:
        controls = Schedule(utils.backend_app()).controls
        control = {"pause": controls.pause, "resume": controls.resume, "run": controls.request_run}[action]
        text = _describe(action, name, control(name))
        level = messages.SUCCESS
    except (ValueError, redis.RedisError) as exc:
        text, level = f"{action} of {name} failed: {exc}", messages.ERROR
    AuditEntry.objects.create(username=request.user.get_username(), action=action, entry=name, outcome=text[:512])
    messages.add_message(request, level, text)
    return redirect("console:entry", name=name)
