"""The kombu internals patches/kombu_redis relies on: present in the installed kombu (the upgrade gate), and a
change to one is refused at install, naming it."""

from __future__ import annotations

import pytest
from kombu.transport import redis as stock

from patches import kombu_redis


def test_the_installed_kombu_has_every_internal_the_transport_uses() -> None:
    kombu_redis.check_kombu()


def test_a_renamed_internal_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(stock.Channel, "_q_for_pri")
    with pytest.raises(kombu_redis.KombuChangedError, match=r"kombu \S+ changed .*: Channel\._q_for_pri is gone"):
        kombu_redis.install()


def test_a_reshaped_internal_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stock.Channel, "_lookup", lambda self, exchange, key: [])
    with pytest.raises(kombu_redis.KombuChangedError, match=r"Channel\._lookup no longer takes routing_key"):
        kombu_redis.check_kombu()


def test_install_applies_to_a_scheme_the_process_resolved_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # kombu caches a scheme's class on first use: a Connection made before install() (a test, a job module, a
    # library) must not pin the stock transport for the rest of the process.
    import kombu.transport
    from kombu import Connection

    monkeypatch.setattr(kombu.transport, "TRANSPORT_ALIASES", dict(kombu.transport.TRANSPORT_ALIASES))
    monkeypatch.setattr(kombu_redis, "TRANSPORT_ALIASES", kombu.transport.TRANSPORT_ALIASES)
    monkeypatch.setattr(kombu.transport, "_transport_cache", {})
    kombu.transport.TRANSPORT_ALIASES.update(redis="kombu.transport.redis:Transport",
                                             sentinel="kombu.transport.redis:SentinelTransport")  # fmt: skip
    assert type(Connection("redis://127.0.0.1:1/0").transport) is stock.Transport
    assert type(Connection("sentinel://127.0.0.1:1").transport) is stock.SentinelTransport

    kombu_redis.install()

    assert type(Connection("redis://127.0.0.1:1/0").transport) is kombu_redis.Transport
    assert type(Connection("rediss://127.0.0.1:1/0").transport) is kombu_redis.Transport
    assert type(Connection("sentinel://127.0.0.1:1").transport) is kombu_redis.SentinelTransport

    # BROKER_REDIS_TRANSPORT = "kombu": kombu's own again, also after the reliable one was resolved
    kombu_redis.install("kombu")
    assert type(Connection("redis://127.0.0.1:1/0").transport) is stock.Transport
    assert type(Connection("sentinel://127.0.0.1:1").transport) is stock.SentinelTransport
    with pytest.raises(ValueError, match="BROKER_REDIS_TRANSPORT='stock' must be one of reliable, kombu"):
        kombu_redis.install("stock")


def test_a_kombu_without_its_transport_cache_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import kombu.transport

    monkeypatch.delattr(kombu.transport, "_transport_cache")
    with pytest.raises(kombu_redis.KombuChangedError, match=r"kombu\.transport\._transport_cache is gone"):
        kombu_redis.check_kombu()
