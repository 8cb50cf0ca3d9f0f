"""Entry definitions and metas in celery-redbeat's JSON encoding, decoded once per distinct definition."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from celery.schedules import maybe_schedule, solar
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


class _Empty(dict[str, Any]):
    """An empty dict that refuses to change: one shared by every definition without kwargs or options, instead of
    two empty dicts per entry (128 bytes each, 12 MiB per 100k entries). A dict, so it encodes and prints as ``{}``
    wherever a definition's kwargs or options go (JSON, Celery's argsrepr); changing it would change every entry."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("shared empty mapping: copy it (dict(...)) to change it")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse


EMPTY: Mapping[str, Any] = _Empty()


@dataclass(slots=True)
class Definition:
    name: str
    task: str
    schedule: Any
    args: Any
    kwargs: Any
    options: Mapping[str, Any]
    enabled: bool
    missed_run: MissedRun
    jitter: float = 0.0  # seconds each slot's publish may be delayed by (policy.jitter_offset); crontabs only
    _template: Template | None = field(default=None, repr=False, compare=False)

    def template(self, templates: Templates) -> Template:
        if self._template is None:
            # Celery's beat sends None arguments as (): a static entry keeps None, as stock stores it ("args": null).
            self._template = templates.get(self.task, self.args or (), self.kwargs, self.options)
        return self._template

    def encode(self) -> str:
        """The stored ``definition`` field of this entry (:func:`encode_definition`)."""
        return encode_definition(self.name, self.task, self.schedule, self.args, self.kwargs, self.options)


# json.dumps's own defaults (separators, ASCII), without an encoder class: the C encoder, no Python hook per value.
_plain = json.JSONEncoder().encode
_SCHEDULES_KEPT = 4096
_schedule_json: dict[int, tuple[Any, str]] = {}  # id → (the schedule, kept so its id is not reused; its JSON)


def schedule_json(schedule: Any) -> str:
    """A schedule's JSON as celery-redbeat's encoder writes it, encoded once per schedule object: entries share
    their schedule objects, and the encoder's Python hook is most of the cost of encoding a definition."""
    kept = _schedule_json.get(id(schedule))
    if kept is not None and kept[0] is schedule:
        return kept[1]
    encoded = json.dumps(schedule, cls=EntryEncoder)
    if len(_schedule_json) >= _SCHEDULES_KEPT:
        _schedule_json.clear()
    _schedule_json[id(schedule)] = (schedule, encoded)
    return encoded


def _json(value: Any) -> str:
    """``json.dumps(value)``, faster for what definitions mostly hold: empty kwargs and options, a list of strings
    as arguments (the C encoder costs ~1.5 µs to set up per container, ~0.1 µs per string)."""
    if type(value) in (list, tuple) and all(type(item) is str for item in value):
        return "[" + ", ".join(map(_plain, value)) + "]"
    if not value and isinstance(value, dict):
        return "{}"
    return _plain(value)


def encode_definition(name: str, task: str, schedule: Any, args: Any, kwargs: Any, options: Any) -> str:
    """The stored ``definition`` field, exactly as celery-redbeat writes it (``json.dumps`` of the dict below with
    its encoder), built from its parts: the schedule's JSON comes from :func:`schedule_json`."""
    try:
        head = (
            f'{{"name": {_plain(name)}, "task": {_plain(task)}, "args": {_json(args)}, '
            f'"kwargs": {_json(kwargs)}, "options": {_json(options)}, "schedule": '
        )
    except TypeError:  # a value only the entry encoder knows (a datetime among the arguments, ...)
        definition = {"name": name, "task": task, "args": args, "kwargs": kwargs, "options": options,
                      "schedule": schedule, "enabled": True}  # fmt: skip
        return json.dumps(definition, cls=EntryEncoder)
    return f'{head}{schedule_json(schedule)}, "enabled": true}}'


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


class StaticEntries(Mapping[str, Definition]):
    """The static schedule by name: the app's ``beat_schedule`` (by reference) and the entries added to the scheduler
    beside it (``celery.backend_cleanup``, ``update_from_dict``). A definition is built from the entry Celery already
    holds each time it is asked for, not kept: kept, the definitions were ~200 bytes per entry, most of what a beat
    held per entry beyond ``beat_schedule`` itself. Entries are validated when they are set up (the scheduler's
    ``update_from_dict``), so building one cannot fail."""

    def __init__(self, build: Callable[[str, Mapping[str, Any]], Definition]) -> None:
        self._build = build
        self.schedule: Mapping[str, Mapping[str, Any]] = {}
        self.added: dict[str, Mapping[str, Any]] = {}

    def set_schedule(self, schedule: Mapping[str, Mapping[str, Any]]) -> None:
        self.schedule, self.added = schedule, {}

    def add(self, name: str, entry: Mapping[str, Any]) -> None:
        if self.schedule.get(name) is not entry:  # beat_schedule's own entries are read from it
            self.added[name] = entry

    def entry(self, name: str) -> Mapping[str, Any] | None:
        """The entry as the app or the caller of ``update_from_dict`` gave it (a later one wins)."""
        added = self.added.get(name)
        return added if added is not None else self.schedule.get(name)

    def __getitem__(self, name: str) -> Definition:
        entry = self.entry(name)
        if entry is None:
            raise KeyError(name)
        return self._build(name, entry)

    def __iter__(self) -> Iterator[str]:
        yield from self.schedule
        yield from (name for name in self.added if name not in self.schedule)

    def __len__(self) -> int:
        return len(self.schedule) + sum(1 for name in self.added if name not in self.schedule)

    def __contains__(self, name: object) -> bool:
        return name in self.added or name in self.schedule


_SCHEDULES_NORMALISED: dict[int, tuple[Any, Any]] = {}  # id → (an entry's schedule value, Celery's schedule for it)


def normalised_schedule(value: Any, relative: bool, app: Any) -> Any:
    """``maybe_schedule``: a number or timedelta becomes a ``schedule``, once per value (entries share their values,
    and each new object would be encoded anew by :func:`schedule_json`)."""
    if not isinstance(value, int | float | dt.timedelta):
        return maybe_schedule(value, relative, app=app)
    kept = _SCHEDULES_NORMALISED.get(id(value))
    if kept is not None and kept[0] is value and kept[1].relative == relative:
        return kept[1]
    if len(_SCHEDULES_NORMALISED) >= _SCHEDULES_KEPT:
        _SCHEDULES_NORMALISED.clear()
    normalised = maybe_schedule(value, relative, app=app)
    _SCHEDULES_NORMALISED[id(value)] = (value, normalised)
    return normalised


class Definitions:
    """Decoded definitions by their stored JSON: a periodic entry's definition hardly ever changes, and decoding
    (a crontab object per entry) costs more than the rest of a dispatch."""

    def __init__(
        self,
        now: Callable[[], dt.datetime],
        policies: dict[str, MissedRun],
        default: MissedRun,
        key_prefix: str = "",
        app: Any = None,
    ) -> None:
        self.now = now
        self.policies = policies
        self.default = default
        self.jitters: dict[str, float] = {}  # the entries with a jitter (see Definition.jitter)
        self.app = app
        self._cache: dict[str, Definition] = {}
        self.static = StaticEntries(self.build)
        self.key_prefix = key_prefix  # an entry's key is this and its name (Store.key)

    def build(self, name: str, entry: Mapping[str, Any]) -> Definition:
        """A static entry's definition from its ``beat_schedule`` form, as stock's beat builds its entry: no args is
        None (stored ``"args": null``), no kwargs or options the shared empty mapping."""
        schedule = normalised_schedule(entry.get("schedule"), bool(entry.get("relative", False)), self.app)
        return Definition(name=name, task=cast(str, entry.get("task")), schedule=bind_clock(schedule, self.now),
                          args=entry.get("args"), kwargs=entry.get("kwargs") or EMPTY,
                          options=entry.get("options") or EMPTY, enabled=True,
                          missed_run=self.policies.get(name, self.default),
                          jitter=self.jitters.get(name, 0.0))  # fmt: skip

    def get(self, raw: str, key: str | None = None) -> Definition:
        """The decoded definition ``raw`` of the entry stored under ``key``. A static entry's is built from its
        ``beat_schedule`` form, not decoded, while the stored JSON is the one the sync writes for it."""
        if key is not None and key.startswith(self.key_prefix):
            name = key[len(self.key_prefix) :]
            entry = self.static.entry(name)
            if entry is not None:
                static = self.build(name, entry)
                if static.encode() == raw:
                    return static
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
                kwargs=data.get("kwargs") or EMPTY,
                options=data.get("options") or EMPTY,
                enabled=bool(data.get("enabled", True)),
                missed_run=self.policies.get(name, self.default),
                jitter=self.jitters.get(name, 0.0),
            )
            self._cache[raw] = decoded
        return decoded
