"""The fake Consul agent's state machine, driven by a fake clock: sessions, TTLs, behaviors, lock-delay, KV, indexes."""

from __future__ import annotations

import pytest

from tests.fakeconsul.errors import ConsulError
from tests.fakeconsul.sessions import SessionRequest, decode_session_request
from tests.fakeconsul.state import FakeConsulState

NODE = "fake-consul"
SECOND = 1_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> FakeConsulState:
    return FakeConsulState(node_name=NODE, clock=clock)


def session(state: FakeConsulState, body: bytes = b"") -> str:
    return state.create_session(decode_session_request(body, NODE))


def value(state: FakeConsulState, key: str) -> bytes | None:
    _, entry = state.kv_get(key)
    assert entry is not None
    return entry.value


# -- session creation ----------------------------------------------------------------------------------------------


def test_session_defaults(state: FakeConsulState) -> None:
    sid = session(state)
    index, info = state.session_info(sid)
    assert info is not None and index == info.create_index == info.modify_index
    assert info.to_json() == {
        "ID": sid,
        "Name": "",
        "Node": NODE,
        "LockDelay": 15 * SECOND,
        "Behavior": "release",
        "TTL": "",
        "NodeChecks": ["serfHealth"],
        "ServiceChecks": None,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def test_session_body_keys_are_case_insensitive(state: FakeConsulState) -> None:
    # py-consul sends lower-case keys; Go's JSON decoding matches field names case-insensitively.
    sid = session(state, b'{"name": "n", "lockdelay": "0s", "behavior": "delete", "ttl": "30s", "checks": []}')
    _, info = state.session_info(sid)
    assert info is not None
    assert (info.name, info.lock_delay, info.behavior, info.ttl, info.node_checks) == ("n", 0, "delete", "30s", [])


@pytest.mark.parametrize(
    ("lock_delay", "nanos"),
    [('"15s"', 15 * SECOND), ('"500ms"', SECOND // 2), ("5", 5 * SECOND), ("1500", 1500), ("2000000000", 2 * SECOND)],
)
def test_lock_delay_numbers_below_1000_are_seconds(state: FakeConsulState, lock_delay: str, nanos: int) -> None:
    sid = session(state, b'{"LockDelay": %s}' % lock_delay.encode())
    _, info = state.session_info(sid)
    assert info is not None and info.lock_delay == nanos


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"TTL": "5s"}', 500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"),
        (b'{"TTL": "86401s"}', 500, "Invalid Session TTL '86401000000000', must be between [10s=24h0m0s]"),
        (b'{"TTL": "soon"}', 500, "Session TTL 'soon' invalid: time: invalid duration \"soon\""),
        (b'{"Behavior": "keep"}', 500, "Invalid Behavior setting 'keep'"),
        (b'{"Node": "elsewhere"}', 500, "Missing node registration"),
        (b'{"Node": ""}', 500, "Must provide Node"),
        (b'{"NodeChecks": ["serfHealth", "disk"]}', 500, "Missing check 'disk' registration"),
        (b'{"Name": 3}', 400, "Request decode failed"),
        (b"{not json", 400, "Request decode failed"),
        (b'{"LockDelay": "soon"}', 400, "Request decode failed: time: invalid duration"),
    ],
)
def test_invalid_sessions_are_refused_with_consuls_messages(
    state: FakeConsulState, body: bytes, status: int, message: str
) -> None:
    with pytest.raises(ConsulError) as caught:
        session(state, body)
    assert caught.value.status == status
    assert caught.value.message.startswith(message)
    assert state.session_list()[1] == []


def test_zero_ttl_means_none(state: FakeConsulState, clock: FakeClock) -> None:
    sid = session(state, b'{"TTL": "0s"}')
    clock.advance(10**6)
    assert state.reap() is None
    assert state.session_info(sid)[1] is not None


# -- TTL expiry ----------------------------------------------------------------------------------------------------


def test_ttl_session_expires_after_twice_its_ttl(state: FakeConsulState, clock: FakeClock) -> None:
    sid = session(state, b'{"TTL": "10s"}')
    clock.advance(19.9)
    assert state.reap() == pytest.approx(0.1)
    assert state.session_info(sid)[1] is not None
    clock.advance(0.1)
    assert state.session_info(sid)[1] is None  # expiry is lazy too: any call notices it
    with pytest.raises(ConsulError) as caught:
        state.renew_session(sid)
    assert (caught.value.status, caught.value.message) == (404, f"Session id '{sid}' not found")


def test_renew_restarts_the_timer_without_moving_indexes(state: FakeConsulState, clock: FakeClock) -> None:
    sid = session(state, b'{"TTL": "10s"}')
    index = state.session_info(sid)[0]
    clock.advance(15)
    renewed = state.renew_session(sid)
    assert renewed.ttl == "10s" and renewed.modify_index == index
    clock.advance(15)
    assert state.session_info(sid) == (index, renewed)
    clock.advance(5)
    assert state.session_info(sid)[1] is None


def test_ttl_multiplier_is_configurable(clock: FakeClock) -> None:
    state = FakeConsulState(node_name=NODE, clock=clock, ttl_multiplier=1.0)
    sid = session(state, b'{"TTL": "10s"}')
    clock.advance(10)
    assert state.session_info(sid)[1] is None


# -- invalidation: behaviors and lock-delay ------------------------------------------------------------------------


def test_release_behavior_keeps_the_value_and_lock_index(state: FakeConsulState) -> None:
    sid = session(state)
    assert state.kv_acquire("lock", b"me", sid)
    _, held = state.kv_get("lock")
    state.destroy_session(sid)
    index, entry = state.kv_get("lock")
    assert entry is not None and held is not None
    assert (entry.value, entry.session, entry.lock_index) == (b"me", "", 1)
    assert entry.modify_index == index > held.modify_index


def test_delete_behavior_deletes_held_keys(state: FakeConsulState) -> None:
    sid = session(state, b'{"Behavior": "delete"}')
    state.kv_put("other", b"x")
    assert state.kv_acquire("lock", b"me", sid)
    state.destroy_session(sid)
    assert state.kv_get("lock")[1] is None
    assert value(state, "other") == b"x"


def test_expiry_invalidates_like_destroy(state: FakeConsulState, clock: FakeClock) -> None:
    sid = session(state, b'{"TTL": "10s", "Behavior": "delete"}')
    assert state.kv_acquire("lock", b"me", sid)
    clock.advance(20)
    state.reap()
    assert state.kv_get("lock")[1] is None


def test_lock_delay_blocks_every_session_after_invalidation(state: FakeConsulState, clock: FakeClock) -> None:
    first, second = session(state), session(state)
    assert state.kv_acquire("lock", b"", first)
    state.destroy_session(first)
    assert not state.kv_acquire("lock", b"", second)
    clock.advance(14.9)
    assert not state.kv_acquire("lock", b"", second)
    clock.advance(0.1)
    assert state.kv_acquire("lock", b"", second)


def test_lock_delay_is_capped_at_60s(state: FakeConsulState, clock: FakeClock) -> None:
    first, second = session(state, b'{"LockDelay": "10m"}'), session(state)
    assert state.kv_acquire("lock", b"", first)
    state.destroy_session(first)
    clock.advance(60)
    assert state.kv_acquire("lock", b"", second)


def test_explicit_release_and_zero_lock_delay_leave_no_delay(state: FakeConsulState) -> None:
    first, second = session(state), session(state, b'{"LockDelay": "0s"}')
    assert state.kv_acquire("a", b"", first)
    assert state.kv_release("a", b"", first)
    assert state.kv_acquire("a", b"", second)
    state.destroy_session(second)
    assert state.kv_acquire("a", b"", first)


# -- locks ---------------------------------------------------------------------------------------------------------


def test_acquire_and_release_rules(state: FakeConsulState) -> None:
    first, second = session(state), session(state)
    assert state.kv_acquire("lock", b"v1", first)
    assert not state.kv_acquire("lock", b"v2", second)
    assert not state.kv_release("lock", b"v2", second)
    assert state.kv_acquire("lock", b"v3", first)  # re-acquiring updates the value, not the LockIndex
    _, entry = state.kv_get("lock")
    assert entry is not None and (entry.value, entry.lock_index, entry.session) == (b"v3", 1, first)
    assert state.kv_release("lock", None, first)  # the release's (empty) value replaces the stored one
    _, entry = state.kv_get("lock")
    assert entry is not None and (entry.value, entry.lock_index, entry.session) == (None, 1, "")
    assert state.kv_acquire("lock", b"v4", second)
    assert state.kv_get("lock")[1].lock_index == 2  # type: ignore[union-attr]


def test_acquire_with_an_unknown_session_is_an_error(state: FakeConsulState) -> None:
    with pytest.raises(ConsulError) as caught:
        state.kv_acquire("lock", b"", "00000000-0000-0000-0000-000000000000")
    assert (caught.value.status, caught.value.message) == (
        500,
        'invalid session "00000000-0000-0000-0000-000000000000"',
    )


def test_plain_put_on_a_locked_key_keeps_the_holder(state: FakeConsulState) -> None:
    # Locks are advisory: the write lands and the holder stays. The request's LockIndex (0) is stored, as in
    # Consul's kvsSetTxn.
    sid = session(state)
    assert state.kv_acquire("lock", b"mine", sid)
    assert state.kv_put("lock", b"theirs")
    _, entry = state.kv_get("lock")
    assert entry is not None and (entry.value, entry.session, entry.lock_index) == (b"theirs", sid, 0)


# -- KV: cas, delete, indexes, listing -----------------------------------------------------------------------------


def test_cas(state: FakeConsulState) -> None:
    assert state.kv_cas("k", b"1", 0)
    assert not state.kv_cas("k", b"2", 0)
    _, entry = state.kv_get("k")
    assert entry is not None
    assert not state.kv_cas("k", b"2", entry.modify_index + 100)
    assert state.kv_cas("k", b"2", entry.modify_index)
    assert not state.kv_cas("nothere", b"x", 5)
    assert value(state, "k") == b"2"


def test_delete_cas(state: FakeConsulState) -> None:
    state.kv_put("k", b"1")
    _, entry = state.kv_get("k")
    assert entry is not None
    assert not state.kv_delete_cas("k", 0)
    assert not state.kv_delete_cas("k", entry.modify_index + 1)
    assert state.kv_delete_cas("k", entry.modify_index)
    assert state.kv_get("k")[1] is None
    assert state.kv_delete_cas("k", 123)  # Consul reports success for a missing key


def test_indexes(state: FakeConsulState) -> None:
    assert state.kv_get("missing") == (1, None)  # never 0
    state.kv_put("a/1", b"x", flags=7)
    _, first = state.kv_get("a/1")
    assert first is not None and first.flags == 7 and first.create_index == first.modify_index
    state.kv_put("a/1", b"x", flags=7)  # a write that changes nothing keeps the ModifyIndex
    assert state.kv_get("a/1")[1] == first
    state.kv_put("a/1", b"y")
    index, second = state.kv_get("a/1")
    assert second is not None and index == second.modify_index > first.modify_index
    assert second.create_index == first.create_index and second.flags == 0
    state.kv_put("b", b"z")
    assert state.kv_get("missing")[0] == state.kv_get("b")[0]  # a missing key reports the table's index
    assert state.kv_list("a/")[0] == second.modify_index  # a prefix reports its own newest index
    state.kv_delete("a/1")
    deleted_at, entries = state.kv_list("a/")
    assert entries == [] and deleted_at > state.kv_get("b")[0]  # ... including its tombstones


def test_delete_tree_and_empty_values(state: FakeConsulState) -> None:
    for key in ("p/a", "p/b/c", "q"):
        state.kv_put(key, b"")
    assert value(state, "q") is None  # an empty value is stored as null, as Consul does
    assert state.kv_delete_tree("p/")
    assert [e.key for e in state.kv_list("")[1]] == ["q"]
    assert state.kv_delete("nothere")


def test_keys_fold_at_the_separator(state: FakeConsulState) -> None:
    for key in ("foo", "foo/bar", "foo/bar/baz", "foo/bar/zip/zam", "foo/bar/zip/zorp", "other"):
        state.kv_put(key, b"v")
    assert state.kv_keys("foo/bar/", "/")[1] == ["foo/bar/baz", "foo/bar/zip/"]
    assert state.kv_keys("", "/")[1] == ["foo", "foo/", "other"]
    assert state.kv_keys("foo")[1] == ["foo", "foo/bar", "foo/bar/baz", "foo/bar/zip/zam", "foo/bar/zip/zorp"]


# -- session reads -------------------------------------------------------------------------------------------------


def test_session_reads_use_the_sessions_table_index(state: FakeConsulState) -> None:
    assert state.session_info("nope") == (1, None)
    sid = session(state)
    state.kv_put("k", b"v")
    index, sessions = state.session_list()
    assert [s.id for s in sessions] == [sid] and index == sessions[0].create_index
    assert state.node_sessions(NODE.upper()) == (index, sessions)
    assert state.node_sessions("other") == (index, [])
    state.destroy_session(sid)
    state.destroy_session(sid)  # destroying a dead session is fine
    assert state.session_list()[0] > index


def test_default_session_request_is_the_agents_node() -> None:
    state = FakeConsulState(node_name="n1")
    sid = state.create_session()
    assert state.session_info(sid)[1].node == "n1"  # type: ignore[union-attr]
    assert state.create_session(SessionRequest(node="N1", ttl="10s"))
