"""A definition's stored JSON is exactly what celery-redbeat writes: the oracle is stock's own
``RedBeatSchedulerEntry.save()``, its write captured on the way to Redis. The platform builds the JSON from parts
(each schedule encoded once), and recognises its static entries in the store by that JSON: one character off and
every stock tool would read a different definition, and the scheduler would decode every entry again."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redbeat.schedulers as stock
from celery.schedules import crontab, schedule, solar

from patches.redbeat.entries import EMPTY, Definitions, EntryEncoder, encode_definition
from patches.redbeat.policy import MissedRun, from_epoch
from tests.unit.test_redbeat_client import make_app


class Recorder:
    """The pipeline stock's save() writes through: keeps the definition it sets."""

    def __init__(self) -> None:
        self.written: dict[str, str] = {}

    def pipeline(self) -> Recorder:
        return self

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def hset(self, key: str, field: str, value: str) -> None:
        self.written[field] = value

    def hsetnx(self, key: str, field: str, value: str) -> None:
        pass

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        pass

    def execute(self) -> None:
        pass


@pytest.fixture
def stock_save(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    recorder = Recorder()
    monkeypatch.setattr(stock, "get_redis", lambda app: recorder)
    app = make_app(redbeat_redis_url="redis://127.0.0.1:1/0")

    def save(name: str, task: str, sched: Any, args: Any, kwargs: Any, options: Any) -> str:
        entry = stock.RedBeatSchedulerEntry(name, task, sched, args, kwargs, options=options, app=app)
        entry.save()
        return recorder.written["definition"]

    yield save


CASES = [
    ("plain", "alarm_backends.jobs.heartbeat", crontab(minute="*/5"), (), {}, {}),
    ("args", "t.job", crontab(minute="0", hour="*/7", day_of_week="mon-fri"), ("a", 1, 2.5, None, True), {}, {}),
    ("kwargs", "t.job", schedule(run_every=dt.timedelta(seconds=90)), [], {"b": [1, {"c": "d"}], "e": 1.0}, {}),
    ("options", "t.job", schedule(run_every=30.0, relative=True), (), {}, {"queue": "celery_cron", "expires": 299}),
    ("unicode 监控", "t.任务", crontab(minute="1,31"), ("é", "监控"), {"k": "ü"}, {"headers": {"x": "y"}}),
    ("datetime", "t.job", crontab(), (dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC),), {}, {}),  # encoder's path
    ("list of strings", "t.job", crontab(hour="3"), ["a", 'b"c', "\n"], {"k": []}, {"priority": 5}),
    ("nested", "t.job", crontab(), [["a"], ("b",)], {}, {}),
    ("empty list", "t.job", crontab(), [], {}, {}),
]


@pytest.mark.parametrize(("name", "task", "sched", "args", "kwargs", "options"), CASES, ids=[c[0] for c in CASES])
def test_a_definition_is_encoded_as_stock_writes_it(
    stock_save: Any, name: str, task: str, sched: Any, args: Any, kwargs: Any, options: Any
) -> None:
    written = stock_save(name, task, sched, args, kwargs, options)
    assert encode_definition(name, task, sched, args, kwargs, options) == written
    assert encode_definition(name, task, sched, args, kwargs, options) == written  # the schedule's JSON reused


def test_a_solar_schedule_is_encoded_with_the_rest_as_stock_would() -> None:
    # Stock cannot encode a solar schedule at all; the rest of the definition is stock's dict, key for key.
    sched = solar("sunset", 22.5, 114.1)
    definition = {"name": "s", "task": "t", "args": [], "kwargs": {}, "options": {}, "schedule": sched,
                  "enabled": True}  # fmt: skip
    assert encode_definition("s", "t", sched, [], {}, {}) == json.dumps(definition, cls=EntryEncoder)


def test_a_static_entry_is_recognised_by_its_stored_json_and_nothing_else(stock_save: Any) -> None:
    sched = crontab(minute="*/5")
    raw = stock_save("e1", "t.job", sched, ("x",), {}, {})
    definitions = Definitions(lambda: from_epoch(0), {}, MissedRun(), key_prefix="redbeat:")
    definitions.static.set_schedule({"e1": {"task": "t.job", "schedule": sched, "args": ("x",)}})
    static = definitions.static["e1"]
    assert static.encode() == raw  # what the sync writes again
    # Built from beat_schedule (its own schedule object, its args as given), not decoded from the store.
    recognised = definitions.get(raw, "redbeat:e1")
    assert recognised == static and recognised.schedule is sched and recognised.args == ("x",)
    # The same entry stored with another definition (stock's entry API, an operator): decoded from the store.
    changed = stock_save("e1", "t.job", sched, ("y",), {}, {})
    decoded = definitions.get(changed, "redbeat:e1")
    assert decoded.schedule is not sched and decoded.args == ["y"]
    # Another key, or no key: never the static entry.
    for other in (definitions.get(raw, "other:e1"), definitions.get(raw)):
        assert other.schedule is not sched and other.args == ["x"]


def test_the_static_entries_are_read_from_beat_schedule_and_what_was_added_beside_it() -> None:
    beat_schedule = {"a": {"task": "t.a", "schedule": 60.0}, "b": {"task": "t.b", "schedule": crontab()}}
    definitions = Definitions(lambda: from_epoch(0), {}, MissedRun())
    static = definitions.static
    static.set_schedule(beat_schedule)
    static.add("a", beat_schedule["a"])  # beat_schedule's own entry: read from there, not copied
    static.add("celery.backend_cleanup", {"task": "celery.backend_cleanup", "schedule": crontab("0", "4", "*")})
    assert static.added.keys() == {"celery.backend_cleanup"}
    assert list(static) == ["a", "b", "celery.backend_cleanup"] and len(static) == 3
    # Built as stock's beat builds its entry: a number becomes one schedule object, shared by every build.
    first, again = static["a"], static["a"]
    assert first == again and first.schedule is again.schedule and first.schedule.run_every.total_seconds() == 60
    assert (first.args, first.kwargs, first.options) == (None, {}, {})
    # An entry added with a name of beat_schedule wins over it (a later update_from_dict).
    static.add("b", {"task": "t.b2", "schedule": crontab()})
    assert static["b"].task == "t.b2" and len(static) == 3
    with pytest.raises(KeyError):
        static["nope"]


def test_the_shared_empty_mapping_reads_as_an_empty_dict_and_refuses_changes() -> None:
    from celery.utils.saferepr import saferepr

    # What Celery's beat and stock write for an entry without kwargs: "{}" in JSON, in kwargsrepr, in a copy.
    assert (json.dumps(EMPTY), saferepr(EMPTY), repr(dict(EMPTY)), {**EMPTY}) == ("{}", "{}", "{}", {})
    for change in (lambda m: m.__setitem__("k", 1), lambda m: m.update(k=1), lambda m: m.setdefault("k", 1),
                   lambda m: m.pop("k", None), lambda m: m.clear()):  # fmt: skip
        with pytest.raises(TypeError, match="shared empty mapping"):
            change(EMPTY)
    assert EMPTY == {}


def test_the_static_schedule_is_stored_as_a_stock_beat_stores_it(stock_save: Any) -> None:
    """Stock's beat builds its entries as ``RedBeatSchedulerEntry(**dict(entry, name=name, app=app))`` and saves
    them; the scheduler's sync writes the same JSON, so after a takeover each entry is the same definition (an entry
    without args included: stock stores ``"args": null``, where Celery's own entry would say ``[]``)."""
    from patches.redbeat.client import reset_redis
    from patches.redbeat.schedulers import RedBeatScheduler

    schedule_ = {
        "no args": {"task": "t.job", "schedule": crontab(minute="*/5")},
        "args none": {"task": "t.job", "schedule": 30.0, "args": None},
        "args empty": {"task": "t.job", "schedule": crontab(), "args": ()},
        "args": {"task": "t.job", "schedule": crontab(hour="1"), "args": ["a"], "kwargs": {"k": 1}, "options": {}},
    }
    app = make_app(redbeat_redis_url="redis://127.0.0.1:1/0", broker_url="memory://", beat_schedule=schedule_)
    scheduler = RedBeatScheduler(app=app)  # builds its client, but connects only in a tick
    try:
        for name, raw in schedule_.items():
            entry = stock.RedBeatSchedulerEntry(**dict(raw, name=name, app=app))
            entry.save()
            assert scheduler.definitions.static[name].encode() == stock_save_last(entry), name
    finally:
        reset_redis(app)


def stock_save_last(entry: Any) -> str:
    return str(stock.get_redis(entry.app).written["definition"])
