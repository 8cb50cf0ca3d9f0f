"""The scheduler store's client is built from the app's lowercase redbeat settings (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery
from redis.sentinel import SentinelConnectionPool

from patches.redbeat.client import get_redis, redact_url, reset_redis, retry_policy

PASSWORD = "p@ss/w:rd"
QUOTED = "p%40ss%2Fw%3Ard"

SENTINEL_OPTIONS: dict[str, Any] = {
    "sentinels": [("10.0.0.1", 26379), ("10.0.0.2", 26380)],
    "password": PASSWORD,
    "service_name": "bkmonitor",
    "socket_timeout": 10,
    "retry_period": 60,
    "sentinel_kwargs": {"password": "sentinel-secret"},
}


def make_app(**conf: Any) -> Celery:
    app = Celery("t", set_as_current=False)
    app.conf.update(conf)
    return app


def kwargs_of(client: redis.Redis) -> dict[str, Any]:
    return dict(client.connection_pool.connection_kwargs)


def test_standalone_url_with_quoted_password() -> None:
    client = get_redis(make_app(redbeat_redis_url=f"redis://:{QUOTED}@redis.example:6380/9"))
    kwargs = kwargs_of(client)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example", 6380, 9)
    assert kwargs["password"] == PASSWORD
    assert kwargs["decode_responses"] is True
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"], kwargs["health_check_interval"]) == (5, 10, 30)
    assert kwargs["retry"].get_retries() == 3


def test_client_options_pass_through_but_scheduler_keys_do_not() -> None:
    app = make_app(
        redbeat_redis_url="redis://127.0.0.1:6379/15",
        redbeat_redis_options={
            "client_name": "beat",
            "socket_connect_timeout": 2,
            "health_check_interval": 7,
            "decode_responses": False,
            "retry_period": 0,
            "service_name": "ignored",
        },
    )
    kwargs = kwargs_of(get_redis(app))
    assert (kwargs["client_name"], kwargs["socket_connect_timeout"], kwargs["health_check_interval"]) == ("beat", 2, 7)
    # The store's Lua results and keys are handled as text, whatever the options say.
    assert kwargs["decode_responses"] is True
    assert kwargs["retry"].get_retries() == 0
    assert not {"retry_period", "service_name", "sentinels", "sentinel_kwargs"} & kwargs.keys()


def test_unix_socket_url() -> None:
    kwargs = kwargs_of(get_redis(make_app(redbeat_redis_url="unix:///run/redis.sock?db=4")))
    assert (kwargs["path"], kwargs["db"], kwargs["decode_responses"]) == ("/run/redis.sock", 4, True)


def test_sentinel_from_lowercase_options() -> None:
    app = make_app(
        redbeat_redis_url="redis-sentinel://redis-sentinel:26379/3",
        redbeat_redis_options=SENTINEL_OPTIONS,
    )
    client = get_redis(app)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "bkmonitor"
    kwargs = kwargs_of(client)
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (3, PASSWORD, 10)
    assert kwargs["decode_responses"] is True
    manager = pool.sentinel_manager
    addresses = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in manager.sentinels
    ]
    assert addresses == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    for sentinel in manager.sentinels:
        sentinel_kwargs = sentinel.connection_pool.connection_kwargs
        assert sentinel_kwargs["password"] == "sentinel-secret"
        # Given sentinel_kwargs must not cost the sentinel sockets their timeouts.
        assert sentinel_kwargs["socket_timeout"] == 10
        assert sentinel_kwargs["socket_connect_timeout"] == 5
        assert sentinel_kwargs["retry"].get_retries() == 0


def test_sentinel_service_name_defaults_to_mymaster() -> None:
    options = {"sentinels": [("127.0.0.1", 26379)]}
    app = make_app(redbeat_redis_url="redis-sentinel://redis-sentinel:26379", redbeat_redis_options=options)
    pool = get_redis(app).connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert (pool.service_name, pool.connection_kwargs["db"]) == ("mymaster", 0)


def test_sentinel_url_without_sentinels_is_an_error() -> None:
    app = make_app(redbeat_redis_url="redis-sentinel://redis-sentinel:26379/3", redbeat_redis_options={"password": "x"})
    with pytest.raises(ValueError, match=r"redbeat_redis_options\['sentinels'\]"):
        get_redis(app)


def test_upper_case_options_are_not_read() -> None:
    """The original's bug was the reverse lookup; only the lowercase name configures the store."""
    app = make_app(redbeat_redis_url="redis-sentinel://redis-sentinel:26379/3")
    app.conf["REDBEAT_REDIS_OPTIONS"] = SENTINEL_OPTIONS
    with pytest.raises(ValueError, match="sentinels"):
        get_redis(app)


@pytest.mark.parametrize(
    "url",
    [f"http://:{QUOTED}@redis.example:6379/0", f"sentinel://:{PASSWORD}@redis.example:26379/0", f"{PASSWORD}@host"],
)
def test_bad_scheme_is_an_error_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="redbeat_redis_url") as caught:
        get_redis(make_app(redbeat_redis_url=url))
    message = str(caught.value)
    assert "scheme" in message
    for secret in (PASSWORD, QUOTED, "p@ss", "w:rd"):
        assert secret not in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://:Zq/Wk:Jv@redis.example:6379/0",
        "redis://:Zq:Jv/Wk@redis.example:6379/0",
        "redis-sentinel://:Zq/Wk@redis-sentinel:26379/3",
    ],
)
def test_unquoted_password_errors_do_not_quote_it(url: str) -> None:
    options = {"sentinels": [("127.0.0.1", 26379)]}
    with pytest.raises(ValueError, match="redbeat_redis_url") as caught:
        get_redis(make_app(redbeat_redis_url=url, redbeat_redis_options=options))
    message = str(caught.value)
    for fragment in ("Zq", "Wk", "Jv"):
        assert fragment not in message


def test_missing_url_and_db_option_are_errors() -> None:
    with pytest.raises(ValueError, match="redbeat_redis_url is not set"):
        get_redis(make_app())
    app = make_app(redbeat_redis_url="redis://127.0.0.1:6379/3", redbeat_redis_options={"db": 5})
    with pytest.raises(ValueError, match=r"redbeat_redis_options\['db'\]"):
        get_redis(app)


@pytest.mark.parametrize("period", [-1, "60", True])
def test_retry_period_must_be_a_bounded_number(period: Any) -> None:
    app = make_app(redbeat_redis_url="redis://127.0.0.1:6379/3", redbeat_redis_options={"retry_period": period})
    with pytest.raises(ValueError, match="retry_period"):
        get_redis(app)


@pytest.mark.parametrize(
    ("period", "attempt", "sleeps"),
    [
        (0, 10.0, []),
        (5, 10.0, []),  # 1 s of backoff and a 10 s attempt: no retry fits
        (5, 0.1, [1, 2]),  # 1.1 + 2.1 = 3.2 s; a third (+4.1) would take 7.3
        (60, 10.0, [1, 2, 4, 8]),  # 11 + 12 + 14 + 18 = 55 s; a fifth (+20) would take 75
        (60, 5.0, [1, 2, 4, 8, 10]),  # 50 s (the backoff is capped at 10 s); a sixth (+15) would take 65
        (600, 10.0, [1, 2, 4, 8] + [10] * 27),  # 55 + 27 x 20 = 595 s; one more would take 615
    ],
)
def test_retry_fits_within_retry_period(
    period: float, attempt: float, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retries as redis-py runs them (a command failing every time, the sleeps between attempts recorded):
    each retry's backoff plus a worst-case attempt fits within the period, and one more would not."""
    slept: list[float] = []
    monkeypatch.setattr(redis.retry, "sleep", slept.append)
    failures = [redis.ConnectionError("refused"), redis.TimeoutError("timed out")]  # both kinds are retried
    attempts: list[int] = []

    def command() -> None:
        attempts.append(1)
        raise failures[len(attempts) % 2]

    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        retry_policy(period, attempt).call_with_retry(command, lambda error: None)
    assert slept == sleeps
    assert len(attempts) == len(sleeps) + 1


def test_sixty_second_period_still_retries_through_a_failover() -> None:
    assert retry_policy(60, 10.0).get_retries() >= 3


def test_client_is_cached_per_app_and_reset_drops_it() -> None:
    url = "redis://127.0.0.1:6379/15"
    first, other = make_app(redbeat_redis_url=url), make_app(redbeat_redis_url=url)
    client = get_redis(first)
    assert get_redis(first) is client
    assert get_redis(other) is not client
    reset_redis(first)
    rebuilt = get_redis(first)
    assert rebuilt is not client
    assert get_redis(first) is rebuilt
    reset_redis(make_app())  # nothing cached: a no-op


def test_reset_redis_disconnects_a_sentinel_client() -> None:
    app = make_app(redbeat_redis_url="redis-sentinel://s:26379/3", redbeat_redis_options=SENTINEL_OPTIONS)
    client = get_redis(app)
    reset_redis(app)
    assert get_redis(app) is not client


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:secret@h/1", "rediss://user:***@h/1"),
        ("redis://secret@h/1", "redis://***@h/1"),
        ("redis://h:6379/0?password=secret&db=2", "redis://h:6379/0?password=***&db=2"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("secret@h", "***@h"),
        ("redis://:p@ss/w?rd@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://us@er:secret@h/0", "redis://***@h/0"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
