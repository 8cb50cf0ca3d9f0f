"""Consul's session and KV semantics through py-consul, against ``consul_agent``: the fake, or a real agent when
``TEST_CONSUL_HTTP_ADDR`` names one. Only documented Consul behaviour is asserted here, so both must pass; the
fake's own extras (ACL token, stop()) are tested on private fakes at the end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import consul
import pytest
import requests
from consul.callback import CB
from consul.exceptions import ACLPermissionDenied, ClientError, ConsulException, NotFound

from tests.fakeconsul import FakeConsul
from tests.fakeconsul.fixture import ConsulAgent, consul_agent  # noqa: F401
from tests.fakeconsul.parked import start_blocking

SessionFactory = Callable[..., str]


@pytest.fixture
def client(consul_agent: ConsulAgent) -> consul.Consul:  # noqa: F811
    return consul_agent.client()


@pytest.fixture
def prefix(client: consul.Consul) -> Iterator[str]:
    """A KV prefix of this test's own, deleted afterwards."""
    path = f"bkm-test/{uuid.uuid4()}/"
    yield path
    client.kv.delete(path, recurse=True)


@pytest.fixture
def new_session(client: consul.Consul) -> Iterator[SessionFactory]:
    """``new_session(**create_kwargs)``: a session destroyed after the test."""
    created: list[str] = []

    def create(**kwargs: Any) -> str:
        kwargs.setdefault("name", "bkm-test")
        session_id: str = client.session.create(**kwargs)
        created.append(session_id)
        return session_id

    yield create
    for session_id in created:
        client.session.destroy(session_id)


def raw_create(client: consul.Consul, body: dict[str, Any]) -> Any:
    """PUT /v1/session/create with a body py-consul's own checks would not let through."""
    return client.http.put(CB.json(is_id=True), "/v1/session/create", data=json.dumps(body))


# -- agent and sessions --------------------------------------------------------------------------------------------


def test_agent_self_names_the_node_and_datacenter(client: consul.Consul) -> None:
    info = client.agent.self()
    assert info["Config"]["Datacenter"]
    assert info["Config"]["NodeName"] == info["Member"]["Name"]


def test_session_lifecycle(client: consul.Consul, new_session: SessionFactory) -> None:
    node = client.agent.self()["Config"]["NodeName"]
    sid = new_session(ttl=30, lock_delay=5, behavior="delete")
    index, info = client.session.info(sid)
    assert int(index) >= 1
    assert (info["ID"], info["Node"], info["Name"]) == (sid, node, "bkm-test")
    assert (info["Behavior"], info["TTL"], info["LockDelay"]) == ("delete", "30s", 5_000_000_000)
    assert sid in [s["ID"] for s in client.session.list()[1]]
    assert sid in [s["ID"] for s in client.session.node(node)[1]]
    renewed = client.session.renew(sid)
    assert (renewed["ID"], renewed["TTL"]) == (sid, "30s")
    assert client.session.destroy(sid) is True
    assert client.session.info(sid)[1] is None
    assert sid not in [s["ID"] for s in client.session.list()[1]]
    with pytest.raises(NotFound):
        client.session.renew(sid)


def test_default_session(client: consul.Consul, new_session: SessionFactory) -> None:
    info = client.session.info(new_session())[1]
    assert (info["Behavior"], info["TTL"], info["LockDelay"]) == ("release", "", 15_000_000_000)


@pytest.mark.parametrize("ttl", ["5s", "86401s"])
def test_session_ttl_must_be_between_10s_and_24h(client: consul.Consul, ttl: str) -> None:
    with pytest.raises(ConsulException, match="Invalid Session TTL"):
        raw_create(client, {"TTL": ttl})


def test_session_behavior_must_be_release_or_delete(client: consul.Consul) -> None:
    with pytest.raises(ConsulException, match=r"(?i)behavior"):
        raw_create(client, {"Behavior": "keep"})


def test_unknown_datacenter(client: consul.Consul, prefix: str) -> None:
    with pytest.raises(ConsulException, match="No path to datacenter"):
        client.kv.get(prefix + "k", dc="bkm-no-such-dc")


# -- KV ------------------------------------------------------------------------------------------------------------


def test_kv_put_get_flags_and_indexes(client: consul.Consul, prefix: str) -> None:
    key = prefix + "k"
    index, missing = client.kv.get(key)
    assert missing is None and int(index) >= 1
    assert client.kv.put(key, "v1", flags=42) is True
    index, entry = client.kv.get(key)
    assert (entry["Key"], entry["Value"], entry["Flags"], entry["LockIndex"]) == (key, b"v1", 42, 0)
    assert "Session" not in entry
    assert int(index) == entry["ModifyIndex"] == entry["CreateIndex"]
    assert client.kv.put(key, None) is True
    index, updated = client.kv.get(key)
    assert (updated["Value"], updated["Flags"]) == (None, 0)
    assert updated["CreateIndex"] == entry["CreateIndex"] and updated["ModifyIndex"] > entry["ModifyIndex"]


def test_kv_recurse_and_keys(client: consul.Consul, prefix: str) -> None:
    for key in ("b", "a", "dir/x", "dir/sub/y"):
        client.kv.put(prefix + key, key)
    _, entries = client.kv.get(prefix, recurse=True)
    assert [e["Key"] for e in entries] == [prefix + k for k in ("a", "b", "dir/sub/y", "dir/x")]
    assert client.kv.get(prefix, keys=True)[1] == [prefix + k for k in ("a", "b", "dir/sub/y", "dir/x")]
    assert client.kv.get(prefix, keys=True, separator="/")[1] == [prefix + k for k in ("a", "b", "dir/")]
    assert client.kv.get(prefix + "nothing/", recurse=True)[1] is None
    assert client.kv.get(prefix + "nothing/", keys=True)[1] is None


def test_kv_cas(client: consul.Consul, prefix: str) -> None:
    key = prefix + "k"
    assert client.kv.put(key, "1", cas=0) is True
    assert client.kv.put(key, "2", cas=0) is False  # 0: only if the key does not exist
    modify_index = client.kv.get(key)[1]["ModifyIndex"]
    assert client.kv.put(key, "2", cas=modify_index + 1000) is False
    assert client.kv.put(key, "2", cas=modify_index) is True
    assert client.kv.get(key)[1]["Value"] == b"2"


def test_kv_delete(client: consul.Consul, prefix: str) -> None:
    for key in ("a", "b", "tree/1", "tree/2"):
        client.kv.put(prefix + key, "v")
    modify_index = client.kv.get(prefix + "a")[1]["ModifyIndex"]
    assert client.kv.delete(prefix + "a", cas=modify_index + 1000) is False
    assert client.kv.delete(prefix + "a", cas=modify_index) is True
    assert client.kv.delete(prefix + "b") is True
    assert client.kv.delete(prefix + "tree/", recurse=True) is True
    assert client.kv.get(prefix, recurse=True)[1] is None


# -- locks ---------------------------------------------------------------------------------------------------------


def test_acquire_and_release(client: consul.Consul, prefix: str, new_session: SessionFactory) -> None:
    key = prefix + "lock"
    first, second = new_session(), new_session()
    assert client.kv.put(key, "first", acquire=first) is True
    entry = client.kv.get(key)[1]
    assert (entry["Session"], entry["LockIndex"], entry["Value"]) == (first, 1, b"first")
    assert client.kv.put(key, "second", acquire=second) is False
    assert client.kv.put(key, "second", release=second) is False
    assert client.kv.put(key, "again", acquire=first) is True  # the holder updates without a new LockIndex
    entry = client.kv.get(key)[1]
    assert (entry["Session"], entry["LockIndex"], entry["Value"]) == (first, 1, b"again")
    assert client.kv.put(key, "released", release=first) is True
    entry = client.kv.get(key)[1]
    assert ("Session" not in entry, entry["LockIndex"], entry["Value"]) == (True, 1, b"released")
    assert client.kv.put(key, "second", acquire=second) is True  # an explicit release leaves no lock-delay
    assert client.kv.get(key)[1]["LockIndex"] == 2


def test_acquire_needs_a_live_session(client: consul.Consul, prefix: str) -> None:
    with pytest.raises(ConsulException):
        client.kv.put(prefix + "lock", "x", acquire=str(uuid.uuid4()))


def test_destroy_releases_locks_then_lock_delay_applies(
    client: consul.Consul, prefix: str, new_session: SessionFactory
) -> None:
    delayed, undelayed, other = new_session(), new_session(lock_delay=0), new_session()
    assert client.kv.put(prefix + "delayed", "v", acquire=delayed) is True
    assert client.kv.put(prefix + "undelayed", "v", acquire=undelayed) is True
    client.session.destroy(delayed)
    client.session.destroy(undelayed)
    entry = client.kv.get(prefix + "delayed")[1]
    assert ("Session" not in entry, entry["Value"], entry["LockIndex"]) == (True, b"v", 1)
    assert client.kv.put(prefix + "delayed", "x", acquire=other) is False  # 15s lock-delay, for every session
    assert client.kv.put(prefix + "undelayed", "x", acquire=other) is True


def test_delete_behavior_deletes_held_keys(client: consul.Consul, prefix: str, new_session: SessionFactory) -> None:
    sid = new_session(behavior="delete", lock_delay=0)
    assert client.kv.put(prefix + "ephemeral", "v", acquire=sid) is True
    client.kv.put(prefix + "kept", "v")
    client.session.destroy(sid)
    assert client.kv.get(prefix + "ephemeral")[1] is None
    assert client.kv.get(prefix + "kept")[1]["Value"] == b"v"


# -- blocking queries ----------------------------------------------------------------------------------------------


def test_blocking_get_wakes_on_a_write(consul_agent: ConsulAgent, client: consul.Consul, prefix: str) -> None:  # noqa: F811
    key = prefix + "k"
    client.kv.put(key, "v1")
    index, _ = client.kv.get(key)
    thread, results = start_blocking(
        consul_agent.client(), f"/v1/kv/{key}", lambda c: c.kv.get(key, index=index, wait="10s"), consul_agent.fake
    )
    started = time.monotonic()
    client.kv.put(key, "v2")
    thread.join(5)
    assert time.monotonic() - started < 5  # woken by the write, not answered at the end of its wait
    [(new_index, entry)] = results
    assert int(new_index) > int(index) and entry["Value"] == b"v2"


def test_blocking_get_answers_after_wait_without_a_change(client: consul.Consul, prefix: str) -> None:
    key = prefix + "k"
    client.kv.put(key, "v")
    index, _ = client.kv.get(key)
    started = time.monotonic()
    new_index, entry = client.kv.get(key, index=index, wait="1s")
    assert 0.9 <= time.monotonic() - started < 3
    assert new_index == index and entry["Value"] == b"v"


def test_blocking_get_wakes_when_a_destroy_releases_the_lock(
    consul_agent: ConsulAgent,  # noqa: F811
    client: consul.Consul,
    prefix: str,
    new_session: SessionFactory,
) -> None:
    key = prefix + "lock"
    sid = new_session(lock_delay=0)
    client.kv.put(key, "v", acquire=sid)
    index, _ = client.kv.get(key)
    thread, results = start_blocking(
        consul_agent.client(), f"/v1/kv/{key}", lambda c: c.kv.get(key, index=index, wait="10s"), consul_agent.fake
    )
    client.session.destroy(sid)
    thread.join(5)
    [(new_index, entry)] = results
    assert int(new_index) > int(index) and "Session" not in entry


def test_session_info_blocks_until_the_session_goes(
    consul_agent: ConsulAgent,  # noqa: F811
    client: consul.Consul,
    new_session: SessionFactory,
) -> None:
    sid = new_session()
    index, _ = client.session.info(sid)
    thread, results = start_blocking(
        consul_agent.client(),
        f"/v1/session/info/{sid}",
        lambda c: c.session.info(sid, index=index, wait="10s"),
        consul_agent.fake,
    )
    client.session.destroy(sid)
    thread.join(5)
    [(new_index, info)] = results
    assert int(new_index) > int(index) and info is None


@pytest.mark.slow
def test_ttl_expiry_deletes_the_key_and_wakes_watchers(
    client: consul.Consul, prefix: str, new_session: SessionFactory
) -> None:
    # Consul promises a TTL session lives at least its TTL; it invalidates it within 2 x TTL without renewals.
    ttl = 10
    key = prefix + "ephemeral"
    sid = new_session(ttl=ttl, behavior="delete", lock_delay=0)
    started = time.monotonic()
    assert client.kv.put(key, "v", acquire=sid) is True
    deadline = started + 2 * ttl + 3
    index, entry = client.kv.get(key)
    while entry is not None and time.monotonic() < deadline:
        remaining = max(int(deadline - time.monotonic()), 1)
        index, entry = client.kv.get(key, index=index, wait=f"{remaining}s")
    elapsed = time.monotonic() - started
    assert entry is None, f"the key outlived 2 x TTL + 3s ({elapsed:.1f}s)"
    assert elapsed >= ttl - 0.5
    assert client.session.info(sid)[1] is None


def test_unknown_routes_and_methods(client: consul.Consul) -> None:
    assert client.http.get(CB.json(), "/v1/bkm-no-such-endpoint") is None  # 404
    with pytest.raises(ClientError, match="405"):
        client.http.post(CB.json(), "/v1/kv/bkm-test")


# -- the fake's own features ---------------------------------------------------------------------------------------


def test_fake_acl_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)  # py-consul would send it instead of the token given
    with FakeConsul(acl_token="s3cret") as fake:
        anonymous = consul.Consul(host=fake.host, port=fake.port)
        with pytest.raises(ACLPermissionDenied):
            anonymous.kv.put("k", "v")
        with pytest.raises(ACLPermissionDenied):
            anonymous.session.create()
        with pytest.raises(ACLPermissionDenied):
            consul.Consul(host=fake.host, port=fake.port, token="wrong").kv.get("k")
        allowed = consul.Consul(host=fake.host, port=fake.port, token="s3cret")
        assert allowed.kv.put("k", "v") is True
        assert allowed.kv.get("k")[1]["Value"] == b"v"
        with pytest.raises(ACLPermissionDenied):
            anonymous.kv.get("k")
        assert anonymous.kv.get("", recurse=True)[1] is None  # listings are filtered, not refused
        bearer = requests.get(f"{fake.url}/v1/kv/k", headers={"Authorization": "Bearer s3cret"}, timeout=5)
        assert bearer.status_code == 200
        assert requests.get(f"{fake.url}/v1/kv/k?token=s3cret", timeout=5).status_code == 200


def test_fake_stops_promptly_with_a_blocking_query_in_flight() -> None:
    fake = FakeConsul().start()
    blocked = consul.Consul(host=fake.host, port=fake.port)
    idle = consul.Consul(host=fake.host, port=fake.port)
    assert idle.kv.put("k", "v") is True  # leaves an idle keep-alive connection open
    index, _ = blocked.kv.get("k")
    thread, results = start_blocking(blocked, "/v1/kv/k", lambda c: c.kv.get("k", index=index, wait="60s"), fake)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1.5
    thread.join(2)
    assert not thread.is_alive()
    # The query ended: answered as the server shut down, or cut off with the connection.
    assert len(results) == 1
    assert isinstance(results[0], requests.RequestException) or results[0][1]["Value"] == b"v"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fake.url}/v1/agent/self", timeout=2)
