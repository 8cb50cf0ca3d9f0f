"""Entry definitions and metas in celery-redbeat's JSON encoding, decoded once per distinct definition."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
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
    _template: Template | None = field(default=None, repr=False)
    raw_hash: int = field(default=0, repr=False)  # a static entry's: hash() of the JSON the sync writes for it

    @classmethod
    def of_entry(cls, entry: Any, missed_run: MissedRun) -> Definition:
        """A static entry's definition, from Celery's ScheduleEntry: kept instead of the entry (with 100k entries
        the entries alone weigh ~100 MB)."""
        return cls(name=entry.name, task=entry.task, schedule=entry.schedule, args=entry.args,
                   kwargs=entry.kwargs or EMPTY, options=entry.options or EMPTY, enabled=True,
                   missed_run=missed_run)  # fmt: skip

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


class Definitions:
    """Decoded definitions by their stored JSON: a periodic entry's definition hardly ever changes, and decoding
    (a crontab object per entry) costs more than the rest of a dispatch."""

    def __init__(
        self, now: Callable[[], dt.datetime], policies: dict[str, MissedRun], default: MissedRun, key_prefix: str = ""
    ) -> None:
        self.now = now
        self.policies = policies
        self.default = default
        self._cache: dict[str, Definition] = {}
        # The static entries, by name. Their JSON is not kept (~230 bytes per entry, most of what a beat holds per
        # entry): a stored definition is recognised as this beat's own by its hash, and the sync encodes it again.
        self.static: dict[str, Definition] = {}
        self.key_prefix = key_prefix  # an entry's key is this and its name (Store.key)

    def add_static(self, definition: Definition) -> None:
        """A static entry: never decoded back while the store holds the JSON the sync writes for it."""
        definition.schedule = bind_clock(definition.schedule, self.now)
        definition.raw_hash = hash(definition.encode())
        self.static[definition.name] = definition

    def get(self, raw: str, key: str | None = None) -> Definition:
        """The decoded definition ``raw`` of the entry stored under ``key``. A static entry's is its own while the
        stored JSON is the one the sync wrote: same 64-bit hash (a changed definition that hashes the same as the
        one it replaced, about one chance in 2**64, would be served as the static one)."""
        if key is not None and key.startswith(self.key_prefix):
            static = self.static.get(key[len(self.key_prefix) :])
            if static is not None and static.raw_hash == hash(raw):
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
            )
            self._cache[raw] = decoded
        return decoded
