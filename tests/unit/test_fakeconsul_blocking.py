"""The fake Consul agent's blocking queries: when they answer, what wakes them, and how a test knows one waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tests.fakeconsul.state import FakeConsulState
from tests.integration.conftest import wait_for
from tests.unit.test_fakeconsul_state import NODE, FakeClock, session

T = TypeVar("T")


def run_in_thread(target: Callable[[], T]) -> tuple[threading.Thread, list[T]]:
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(target()))
    thread.start()
    return thread, results


def parked(state: FakeConsulState, label: str = "") -> None:
    """Until the query a test started waits for a change, so that the change the test makes next, not the query's
    first look, is what answers it."""
    wait_for(lambda: state.waiting(label) == 1, 5, f"the blocking query {label!r} to wait for a change")


def test_blocking_query_returns_at_once_when_the_index_is_newer_or_zero() -> None:
    state = FakeConsulState()
    state.kv_put("k", b"v")
    index, _ = state.kv_get("k")
    started = time.monotonic()
    assert state.blocking_query(0, 5, lambda: state.kv_get("k"))[0] == index
    assert state.blocking_query(index - 1, 5, lambda: state.kv_get("k"))[0] == index
    assert time.monotonic() - started < 1
    assert state.waiting() == 0  # answered without waiting


def test_blocking_query_times_out_with_the_same_index() -> None:
    state = FakeConsulState()
    state.kv_put("k", b"v")
    index, _ = state.kv_get("k")
    started = time.monotonic()
    thread, results = run_in_thread(lambda: state.blocking_query(index, 1, lambda: state.kv_list("k")))
    parked(state)
    state.kv_put("unrelated/", b"x")  # wakes the query, which finds its own index unchanged and waits on
    thread.join(5)
    assert [answered for answered, _ in results] == [index]
    assert 1 <= time.monotonic() - started < 3


def test_blocking_query_wakes_on_a_write() -> None:
    state = FakeConsulState()
    state.kv_put("k", b"v")
    index, _ = state.kv_get("k")
    thread, results = run_in_thread(lambda: state.blocking_query(index, 10, lambda: state.kv_get("k"), "k"))
    parked(state, "k")
    state.kv_put("k", b"w")
    thread.join(2)
    [(new_index, entry)] = results
    assert new_index > index and entry is not None and entry.value == b"w"


def test_blocking_query_wakes_when_an_expiry_deletes_the_key() -> None:
    clock = FakeClock()
    state = FakeConsulState(node_name=NODE, clock=clock)
    sid = session(state, b'{"TTL": "10s", "Behavior": "delete"}')
    assert state.kv_acquire("lock", b"me", sid)
    index, _ = state.kv_list("lock")
    thread, results = run_in_thread(lambda: state.blocking_query(index, 10, lambda: state.kv_list("lock")))
    parked(state)
    clock.advance(20)
    state.reap()
    thread.join(2)
    [(new_index, entries)] = results
    assert new_index > index and entries == []


def test_close_releases_blocking_queries() -> None:
    state = FakeConsulState()
    thread, results = run_in_thread(lambda: state.blocking_query(10**6, 30, lambda: state.kv_get("k")))
    parked(state)
    state.close()
    thread.join(2)
    assert results == [(1, None)]


def test_waiting_counts_the_parked_queries_by_label() -> None:
    state = FakeConsulState()
    state.kv_put("a", b"1")
    index = state.kv_get("a")[0]

    def query(key: str) -> tuple[threading.Thread, list[tuple[int, object]]]:
        return run_in_thread(lambda: state.blocking_query(index, 10, lambda: state.kv_get(key), key))

    queries = [query("a"), query("a"), query("b")]  # b is missing: it reports the table's index, a's ModifyIndex
    wait_for(lambda: state.waiting() == 3, 5, "three parked queries")
    assert (state.waiting("a"), state.waiting("b"), state.waiting("c")) == (2, 1, 0)
    state.kv_put("b", b"1")  # answers the query on b; a's own index has not moved
    queries[2][0].join(2)
    assert (len(queries[2][1]), state.waiting("a"), state.waiting("b")) == (1, 2, 0)
    state.close()
    for thread, _ in queries:
        thread.join(2)
    assert [len(results) for _, results in queries] == [1, 1, 1]
    assert state.waiting() == 0
