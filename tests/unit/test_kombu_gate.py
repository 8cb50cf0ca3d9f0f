"""The kombu internals patches/kombu_redis.py relies on: present in the installed kombu (the upgrade gate), and a
change to one is refused at install, naming it."""

from __future__ import annotations

import pytest
from kombu.transport import redis as stock

from patches import kombu_redis


def test_the_installed_kombu_has_every_internal_the_put_back_uses() -> None:
    kombu_redis.check_kombu()


def test_a_renamed_internal_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(stock.Channel, "_q_for_pri")
    with pytest.raises(kombu_redis.KombuChangedError, match=r"kombu \S+ changed .*: Channel\._q_for_pri is gone"):
        kombu_redis.install()


def test_a_reshaped_internal_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stock.Channel, "_lookup", lambda self, exchange, key: [])
    with pytest.raises(kombu_redis.KombuChangedError, match=r"Channel\._lookup no longer takes routing_key"):
        kombu_redis.check_kombu()
