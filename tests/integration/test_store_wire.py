"""The scripts' wire format on the real Redis: a round trip that sets every field of every record (``store.WIRE``),
and a record that leaves a field out is an error on either side, never a shift of the fields after it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from patches.redbeat.store import WIRE, Seed, Store, Update, lua_prelude, records
from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_REDBEAT_DB

pytestmark = pytest.mark.redis

PREFIX = "wire:"
TOKEN = "host:1:token"


@pytest.fixture
def client(redis_dbs: None) -> Iterator[redis.Redis]:
    with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_REDBEAT_DB, decode_responses=True) as client:
        yield client


def test_every_field_of_every_record_makes_the_round_trip(client: redis.Redis) -> None:
    store = Store(client, PREFIX)
    assert store.acquire(TOKEN, 30)
    past, later, last = time.time() - 60, time.time() + 600, time.time() + 1200
    # seed: every field (name, definition, meta, score).
    seeds = [
        Seed("due", '{"task": "t.due"}', '{"last_run_at": null}', past),
        Seed("next", '{"task": "t.next"}', '{"m": "next"}', later),
        Seed("after", '{"task": "t.after"}', '{"m": "after"}', last),
    ]
    assert store.seed(TOKEN, [], seeds) == (0, 3)
    client.hset(store.key("due"), "paused", "1700000000.5")
    client.hset(store.run_now_key, "due", "1700000000123")

    due = store.fetch_due(TOKEN)
    # header: every field.
    assert due.owned and abs(due.now - time.time()) < 5
    assert (due.head, due.after_head) == (pytest.approx(later), pytest.approx(last))
    assert due.head_entry is not None
    assert (due.head_entry.key, due.head_entry.definition, due.head_entry.meta) == (
        PREFIX + "next",
        '{"task": "t.next"}',
        '{"m": "next"}',
    )
    # entry: every field.
    [entry] = due.entries
    assert (entry.key, entry.score, entry.definition, entry.meta) == (
        PREFIX + "due",
        pytest.approx(past),
        '{"task": "t.due"}',
        '{"last_run_at": null}',
    )
    assert (entry.paused, entry.requested, entry.due) == (True, 1700000000123, True)

    # update: every field (key, score, meta, served).
    assert store.commit(TOKEN, [Update(PREFIX + "due", later + 60, '{"m": "ran"}', served=1700000000123)]) == 1
    assert client.zscore(store.schedule_key, PREFIX + "due") == pytest.approx(later + 60)
    assert client.hget(store.key("due"), "meta") == '{"m": "ran"}'
    assert client.hget(store.run_now_key, "due") is None


def test_a_script_record_without_a_field_is_an_error_not_a_shift(client: redis.Redis) -> None:
    script = client.register_script(lua_prelude() + "local out = {}\nemit(out, 'entry', {key = 'k'})\nreturn out")
    with pytest.raises(redis.ResponseError, match="wire: entry record without score"):
        script()


def test_a_reply_that_is_not_whole_records_is_refused() -> None:
    width = len(WIRE["entry"])
    assert records(list(range(2 * width)), "entry")[1]["key"] == width
    with pytest.raises(ValueError, match=f"{width + 1} values are not a whole number of entry records"):
        records(list(range(width + 1)), "entry")
