"""Entry definitions and metas in celery-redbeat's JSON encoding, decoded once per distinct definition."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery.schedules import solar
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

from patches.redbeat.policy import MissedRun, bind_clock
from patches.redbeat.publisher import Template, Templates


class EntryEncoder(RedBeatJSONEncoder):
    """celery-redbeat's encoding, plus Celery's solar schedules (stock redbeat cannot store them at all)."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, solar):
            return {"__type__": "solar", "event": obj.event, "lat": obj.lat, "lon": obj.lon}
        return super().default(obj)


class EntryDecoder(RedBeatJSONDecoder):
    def dict_to_object(self, d: dict[str, Any]) -> Any:
        if d.get("__type__") == "solar":
            return solar(d["event"], d["lat"], d["lon"])
        return super().dict_to_object(d)


@dataclass(slots=True)
class Definition:
    name: str
    task: str
    schedule: Any
    args: Any
    kwargs: Any
    options: dict[str, Any]
    enabled: bool
    missed_run: MissedRun
    _template: Template | None = field(default=None, repr=False)

    def template(self, templates: Templates) -> Template:
        if self._template is None:
            self._template = templates.get(self.task, self.args, self.kwargs, self.options)
        return self._template


def encode_definition(name: str, task: str, schedule: Any, args: Any, kwargs: Any, options: Any) -> str:
    """The stored ``definition`` field, exactly as celery-redbeat writes it."""
    definition = {
        "name": name,
        "task": task,
        "args": args,
        "kwargs": kwargs,
        "options": options,
        "schedule": schedule,
        "enabled": True,
    }
    return json.dumps(definition, cls=EntryEncoder)


def encode_meta(last_run_at: dt.datetime | None, total_run_count: int | None = None) -> str:
    meta: dict[str, Any] = {"last_run_at": last_run_at}
    if total_run_count is not None:
        meta["total_run_count"] = total_run_count
    return json.dumps(meta, cls=RedBeatJSONEncoder)


class MetaWriter:
    """Metas of one tick: every entry dispatched in a tick shares its ``last_run_at``, so the datetime is encoded
    once and each meta is a string format (the encoder's Python hook costs more than the rest of a dispatch)."""

    def __init__(self, last_run_at: dt.datetime) -> None:
        self.prefix = '{"last_run_at": ' + json.dumps(last_run_at, cls=RedBeatJSONEncoder) + ', "total_run_count": '

    def __call__(self, total_run_count: int) -> str:
        return f"{self.prefix}{int(total_run_count)}}}"


def run_count(raw: str | None) -> int:
    """``total_run_count`` of a stored meta, without decoding its datetime."""
    if not raw:
        return 0
    try:
        return int(json.loads(raw).get("total_run_count") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0  # an unreadable meta is rewritten by this run's commit


def decode_meta(raw: str | None) -> tuple[dt.datetime | None, int]:
    if not raw:
        return None, 0
    meta = json.loads(raw, cls=RedBeatJSONDecoder)
    return meta.get("last_run_at"), int(meta.get("total_run_count") or 0)


class Definitions:
    """Decoded definitions by their stored JSON: a periodic entry's definition hardly ever changes, and decoding
    (a crontab object per entry) costs more than the rest of a dispatch."""

    def __init__(self, now: Callable[[], dt.datetime], policies: dict[str, MissedRun], default: MissedRun) -> None:
        self.now = now
        self.policies = policies
        self.default = default
        self._cache: dict[str, Definition] = {}

    def add(self, raw: str, definition: Definition) -> None:
        """Cache a definition the scheduler encoded itself (a static entry), so it is never decoded back."""
        definition.schedule = bind_clock(definition.schedule, self.now)
        self._cache[raw] = definition

    def get(self, raw: str) -> Definition:
        decoded = self._cache.get(raw)
        if decoded is None:
            if len(self._cache) > 200_000:  # entries were redefined many times over: start afresh
                self._cache.clear()
            data = json.loads(raw, cls=EntryDecoder)
            name = str(data["name"])
            decoded = Definition(
                name=name,
                task=data["task"],
                schedule=bind_clock(data["schedule"], self.now),
                args=data.get("args") or (),
                kwargs=data.get("kwargs") or {},
                options=data.get("options") or {},
                enabled=bool(data.get("enabled", True)),
                missed_run=self.policies.get(name, self.default),
            )
            self._cache[raw] = decoded
        return decoded
