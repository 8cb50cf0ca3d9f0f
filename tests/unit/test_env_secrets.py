"""Which variables a rendered supervisord config leaves out because they hold a secret: exact vectors of the rule
(``alarm_backends.management.supervisor.env_secrets``), and both renderers applying it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from alarm_backends.management.supervisor import saas as saas_supervisor
from alarm_backends.management.supervisor.control import default_template
from alarm_backends.management.supervisor.env_secrets import configured_secrets, holds_secret, name_words, secret_name
from alarm_backends.management.supervisor.render import Host, passthrough_environment, render, withheld_environment

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "support-files" / "templates"
SECRET = "s3cr3t-P@ss/w%rd"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("BK_MONITOR_REDIS_PASSWORD", ["BK", "MONITOR", "REDIS", "PASSWORD"]),
        ("apiKey", ["API", "KEY"]),
        ("APIKey", ["APIKEY"]),
        ("client.secret-id", ["CLIENT", "SECRET", "ID"]),
        ("__", []),
    ],
)
def test_name_words(name: str, words: list[str]) -> None:
    assert name_words(name) == words


@pytest.mark.parametrize(
    "name",
    [
        "PASSWORD", "password", "BK_MONITOR_REDIS_PASSWORD", "BKAPP_DB_PASSWORD", "dbPassword", "DBPASSWORD",
        "passwd", "ssh_passphrase", "RABBITMQ_PASS", "dbpass", "pwd", "BKAPP_SECRET_KEY", "clientSecret",
        "CONSUL_HTTP_TOKEN", "accessToken", "max_tokens", "credentials", "SECRET_KEY", "API_KEY", "apiKey",
        "APIKEY", "private_key", "routing_key", "BYPASS",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "KEY_PREFIX", "REDBEAT_KEY_PREFIX", "BKAPP_SETTINGS_REDBEAT_KEY_PREFIX", "key", "KEY", "keys", "key_id",
        "CONSUL_CLIENT_KEY_FILE", "key_file", "PASSTHROUGH", "BKAPP_SETTINGS_PASSTHROUGH_X", "passive",
        "compassion", "ENGINE", "HOST", "REDIS_DB_PLAN", "BK_MONITOR_REDIS_HOST", "DJANGO_CONF_MODULE", "",
    ],
)  # fmt: skip
def test_not_secret_names(name: str) -> None:
    assert not secret_name(name)


CONFIGURED = frozenset({SECRET, "db-pw-123"})
DATABASES = json.dumps({"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "m", "PASSWORD": "x"}})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # 1. the name
        ("BK_MONITOR_REDIS_PASSWORD", ""),
        ("CONSUL_HTTP_TOKEN", "t"),
        # 2. URL credentials in the value
        ("BKAPP_SETTINGS_BROKER_URL", "amqp://u:pw@host:5672/"),
        ("BKAPP_SETTINGS_X", "redis://:pw@127.0.0.1:6379/0"),
        ("BKAPP_SETTINGS_X", "https://ghp_token@github.com/org/repo"),
        ("BKAPP_SETTINGS_X", "a;sentinel://:p%40ss@h:26379"),
        # 3. inside JSON: a key, nested in objects and lists, or a string with URL credentials
        ("BKAPP_SETTINGS_DATABASES", DATABASES),
        ("BKAPP_SETTINGS_X", '{"a": {"b": [{"c": {"api_key": "v"}}]}}'),
        ("BKAPP_SETTINGS_X", '[{"Password": null}]'),
        ("BKAPP_SETTINGS_X", '{"clients": [{"name": "cmdb", "credentials": {"id": "c"}}]}'),
        ("BKAPP_SETTINGS_X", '{"a": ["x", {"url": "redis://:pw@h:1/0"}]}'),
        ("BKAPP_SETTINGS_X", '{"a": "{\\"token\\": \\"t\\"}"}'),  # JSON serialized in a JSON string
        # 4. a configured secret, raw, URL-quoted or JSON-escaped, anywhere in the value
        ("BKAPP_SETTINGS_X", f"prefix-{SECRET}-suffix"),
        ("BKAPP_SETTINGS_X", f"x={quote(SECRET, safe='')}"),
        ("BKAPP_SETTINGS_X", f"x={quote(SECRET)}"),
        ("BKAPP_SETTINGS_X", json.dumps({"dsn": "host=h dbname=m user=u password=db-pw-123"})),
        ("BKAPP_SETTINGS_X", '{"a": "db\\u002dpw\\u002d123"}'),
        ("BKAPP_SETTINGS_X", '{"n": 123, "s": "db-pw-123"}'),
        # too deep to inspect: left out rather than guessed
        ("BKAPP_SETTINGS_X", "[" * 100_000 + "]" * 100_000),
    ],
)
def test_holds_secret(name: str, value: str) -> None:
    assert holds_secret(name, value, CONFIGURED)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BKAPP_SETTINGS_REDIS_DB_PLAN", '{"log": 11, "cache": 12, "queue": 13, "service": 14}'),
        ("BKAPP_SETTINGS_REDBEAT_KEY_PREFIX", "redbeat:"),
        ("BKAPP_SETTINGS_X", '{"KEY_PREFIX": "bk", "key": "a", "keys": ["b"], "cache": {"key_file": "/k.pem"}}'),
        ("BKAPP_SETTINGS_X", "http://host/path?mail=ops@example.com"),
        ("BKAPP_SETTINGS_X", "mailto:ops@example.com"),
        ("BKAPP_SETTINGS_X", '{"n": 123}'),
        ("BKAPP_SETTINGS_X", "not {json"),
        ("BKAPP_SETTINGS_X", "null"),
        ("BK_MONITOR_REDIS_HOST", "10.0.0.2"),
    ],
)
def test_holds_no_secret(name: str, value: str) -> None:
    assert not holds_secret(name, value, CONFIGURED)


def test_an_empty_configured_secret_matches_nothing() -> None:
    assert not holds_secret("BKAPP_SETTINGS_X", "anything", frozenset({""}))


def test_configured_secrets_of_the_settings() -> None:
    conf = SimpleNamespace(
        REDIS_PASSWORD="r",
        REDIS_SENTINEL_PASSWORD="rs",
        CACHE_REDIS_PASSWORD="c",
        CACHE_REDIS_SENTINEL_PASSWORD="",
        RABBITMQ_PASS="mq",
        CONSUL_ACL_TOKEN="ct",
        SECRET_KEY="sk",
        DATABASES={"default": {"PASSWORD": "d1"}, "other": {"PASSWORD": 42}, "sqlite": {"NAME": "x"}},
    )
    assert configured_secrets(conf) == {"r", "rs", "c", "mq", "ct", "sk", "d1", "42"}
    # A SaaS host's settings have no RabbitMQ or Redis passwords: what is missing is skipped.
    assert configured_secrets(SimpleNamespace(SECRET_KEY="sk")) == {"sk"}


ENVIRON = {
    "BKAPP_SETTINGS_DATABASES": json.dumps({"default": {"ENGINE": "e", "PASSWORD": "db-pw-123"}}),
    "BKAPP_SETTINGS_CUSTOM": json.dumps({"outer": {"inner": [{"app_secret": SECRET}]}}),
    "BKAPP_SETTINGS_COPY": "the db password is db-pw-123",
    "BKAPP_SETTINGS_REDIS_DB_PLAN": '{"log": 11}',
    "HOME": "/root",
}


def test_passthrough_and_withheld() -> None:
    assert passthrough_environment(ENVIRON, CONFIGURED) == {"BKAPP_SETTINGS_REDIS_DB_PLAN": '{"log": 11}'}
    assert withheld_environment(ENVIRON, CONFIGURED) == (
        "left out of environment= (they hold a secret; programs inherit them from supervisord's environment): "
        "BKAPP_SETTINGS_COPY, BKAPP_SETTINGS_CUSTOM, BKAPP_SETTINGS_DATABASES"
    )
    assert withheld_environment({"HOME": "/root", "BKAPP_SETTINGS_REDIS_DB_PLAN": "{}"}, CONFIGURED) is None
    # The renderer writes its own BKM_RUN_DIR whatever the environment holds: it is never reported as left out.
    assert withheld_environment({"BKM_RUN_DIR": "/srv/db-pw-123/run"}, CONFIGURED) is None


def test_both_renderers_leave_secrets_out(tmp_path: Path) -> None:
    host = Host(str(REPO), sys.executable, str(tmp_path), str(tmp_path), str(tmp_path / "s.sock"))
    backend = render(default_template(str(REPO)).read_text(), host, environ=ENVIRON, secrets=CONFIGURED)
    saas = saas_supervisor.render_saas(
        (TEMPLATES / saas_supervisor.TEMPLATE_NAME).read_text(),
        (TEMPLATES / saas_supervisor.BEAT_TEMPLATE_NAME).read_text(),
        saas_supervisor.SaasHost(host=host, app_code="bkm"),
        saas_supervisor.DEV,
        environ=ENVIRON,
        secrets=CONFIGURED,
    )
    for text in (backend, saas):
        assert "BKAPP_SETTINGS_REDIS_DB_PLAN=" in text
        for leaked in (
            "db-pw-123",
            SECRET,
            quote(SECRET, safe=""),
            "BKAPP_SETTINGS_DATABASES",
            "BKAPP_SETTINGS_CUSTOM",
        ):
            assert leaked not in text
