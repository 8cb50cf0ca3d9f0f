"""``Cache(backend)``'s routing: role names, ``<role>-<name>`` through ``REDIS_CACHE_<NAME>_URL``, and the URL forms.

The oracle for the URL fields is kombu's ``parse_url``, which the original's router reads them with (its
cache_conf_with_router: host ← hostname, master name ← userid, sentinel password ← virtual_host)."""

from __future__ import annotations

import pytest
from kombu.utils.url import parse_url

from alarm_backends.core.storage.cache import Route, route
from config.tools.env import EnvError
from config.tools.redis import SENTINEL, STANDALONE, RedisSettings, parse_redis_url


@pytest.mark.parametrize(
    ("backend", "role"),
    [("log", "log"), ("cache", "cache"), ("queue", "queue"), ("celery", "queue"), ("service", "service")],
)
def test_the_originals_backend_names_use_their_roles_db(backend: str, role: str) -> None:
    assert route(backend, {}) == Route(backend, role)


def test_a_routed_backend_without_its_variable_is_its_roles_own_server() -> None:
    assert route("cache-cmdb", {}) == Route("cache-cmdb", "cache", None, "REDIS_CACHE_CMDB_URL")
    # The variable is named by the part after the first dash, whatever the role (the original's template).
    assert route("service-strategy-v2", {}).variable == "REDIS_CACHE_STRATEGY-V2_URL"


def test_a_routed_backend_on_its_own_server() -> None:
    env = {"REDIS_CACHE_CMDB_URL": "redis://:s3cret@10.0.0.5:6380/4"}
    assert route("cache-cmdb", env, "main") == Route(
        "cache-cmdb", "cache", RedisSettings(STANDALONE, "10.0.0.5", 6380, "s3cret"), "REDIS_CACHE_CMDB_URL"
    )


@pytest.mark.parametrize("backend", ["", "nosuch", "nosuch-cmdb", "cache-", "-cmdb"])
def test_unknown_backends_are_refused_by_name(backend: str) -> None:
    with pytest.raises(ValueError, match=f"unknown redis backend {backend!r}"):
        route(backend, {})


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pw@10.0.0.5:6380/3",
        "redis://10.0.0.5",
        "sentinel://mymaster2:pw@10.0.0.1:26380/spw",
        "sentinel://m:p%40ss@sentinel.local:26379/",
    ],
)
def test_url_fields_agree_with_kombus_parser(url: str) -> None:
    oracle = parse_url(url)
    parsed = parse_redis_url(url, "V", default_password="main")
    assert parsed.host == oracle["hostname"]
    assert parsed.port == (oracle["port"] or (6379 if oracle["transport"] == "redis" else 26379))
    assert parsed.password == (oracle["password"] or "main")
    if oracle["transport"] == "sentinel":
        assert parsed.mode == SENTINEL
        assert parsed.master_name == oracle["userid"]
        assert parsed.sentinel_password == (oracle["virtual_host"] or "").lstrip("/")
        assert parsed.sentinels == ((oracle["hostname"], parsed.port),)
    else:
        assert parsed.mode == STANDALONE


def test_sentinel_urls_take_the_originals_host_list_and_keep_their_own_password() -> None:
    parsed = parse_redis_url("sentinel://mymaster@10.0.0.1;10.0.0.2;[fd00::3]:26380/spw", "V", "main")
    assert parsed.sentinels == (("10.0.0.1", 26380), ("10.0.0.2", 26380), ("fd00::3", 26380))
    assert (parsed.master_name, parsed.password, parsed.sentinel_password) == ("mymaster", "main", "spw")
    # The original replaced a sentinel URL's password with the main Redis's (REDIS_PASSWD); the URL's wins here.
    assert parse_redis_url("sentinel://m:own@10.0.0.1/", "V", "main").password == "own"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("rediss://10.0.0.1", "expected a redis:// or sentinel:// URL"),
        ("redis://:pw@/0", "names no host"),
        ("redis://10.0.0.1:notaport", "REDIS_CACHE_X_URL='redis://10.0.0.1:notaport'"),
        ("sentinel://m@/", "names no sentinel"),
    ],
)
def test_bad_urls_name_the_variable(url: str, problem: str) -> None:
    with pytest.raises(EnvError, match="REDIS_CACHE_X_URL") as caught:
        route("cache-x", {"REDIS_CACHE_X_URL": url})
    assert problem in str(caught.value)
