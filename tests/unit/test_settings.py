"""Settings: environment parsing, typed overrides, and start-up failures that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.tools.consul import get_consul_settings
from config.tools.env import EnvError
from config.tools.environment import parse_environment
from config.tools.overrides import OverrideError, apply_overrides
from config.tools.rabbitmq import get_rabbitmq_settings
from config.tools.redis import (
    SENTINEL,
    STANDALONE,
    default_redis_mode,
    get_cache_redis_settings,
    get_redis_settings,
    redis_url,
    sentinel_result_backend,
)

REPO = Path(__file__).resolve().parents[2]


def test_environment_from_conf_module() -> None:
    env = parse_environment({"DJANGO_CONF_MODULE": "conf.worker.production.community", "DEPLOY_MODE": "kubernetes"})
    assert (env.role, env.environment, env.new_env, env.platform) == ("worker", "production", "prod", "community")
    assert env.is_container_mode is True
    assert env.app_code == "bkmonitorv3"


def test_environment_defaults_and_app_code_order() -> None:
    env = parse_environment({"BKPAAS_APP_ID": "paas", "APP_CODE": "plain"})
    assert (env.role, env.new_env, env.is_container_mode, env.app_code) == ("worker", "dev", False, "paas")


@pytest.mark.parametrize(
    ("environ", "module"),
    [
        # The original's construction from the PaaS variables (for this platform's role, the worker).
        ({"BKAPP_DEPLOY_PLATFORM": "ce", "BK_ENV": "production"}, "conf.worker.production.ce"),
        ({"BKPAAS_ENGINE_REGION": "ieod", "BKPAAS_ENVIRONMENT": "stag"}, "conf.worker.testing.ieod"),
        ({"BKAPP_DEPLOY_PLATFORM": "ce"}, "conf.worker.development.ce"),
        # Given, it wins, whatever its first segment (the original's web modules are config.web.…).
        ({"DJANGO_CONF_MODULE": "config.worker.production.ce", "BKAPP_DEPLOY_PLATFORM": "ce"},
         "config.worker.production.ce"),
        ({}, "conf.worker.development.community"),
    ],
)  # fmt: skip
def test_conf_module_as_the_original_builds_it(environ: dict[str, str], module: str) -> None:
    assert parse_environment(environ).conf_module == module


def test_a_platform_other_than_the_modules_warns_and_the_module_wins() -> None:
    with pytest.warns(UserWarning, match="BKAPP_DEPLOY_PLATFORM is 'ee'"):
        env = parse_environment({"DJANGO_CONF_MODULE": "conf.worker.production.ce", "BKAPP_DEPLOY_PLATFORM": "ee"})
    assert env.platform == "ce"


@pytest.mark.parametrize("value", ["worker", "conf.worker.production", "conf.worker.live.community"])
def test_bad_conf_module_names_the_variable(value: str) -> None:
    with pytest.raises(EnvError, match="DJANGO_CONF_MODULE"):
        parse_environment({"DJANGO_CONF_MODULE": value})


@pytest.mark.parametrize(
    ("current", "raw", "expected"),
    [
        (0, "4", 4),
        (True, "false", False),
        (1.5, "2", 2.0),
        ([], '["a", "b"]', ["a", "b"]),
        ((), "[1, 2]", (1, 2)),
        ({}, '{"log": 11}', {"log": 11}),
        ("text", "4", "4"),
        (None, "[1]", "[1]"),
        # Raw values the original took as strings, as they were meant: its `path in "a.b.c"` was a substring test,
        # its "False" a true string.
        ([], "a.b.c", ["a.b.c"]),
        (["x"], "a.b.c, d.e,", ["a.b.c", "d.e"]),
        (True, "False", False),
        (False, "TRUE", True),
    ],
)
def test_overrides_are_typed_by_the_setting(current: object, raw: str, expected: object) -> None:
    namespace = {"NAME": current}
    assert apply_overrides(namespace, {"BKAPP_SETTINGS_NAME": raw}) == ["NAME"]
    assert namespace["NAME"] == expected
    assert type(namespace["NAME"]) is type(expected)


def test_override_names_are_upper_cased_as_the_original_read_them() -> None:
    namespace: dict[str, object] = {"CELERY_WORKERS": 0}
    assert apply_overrides(namespace, {"bkapp_settings_celery_workers": "4"}) == ["CELERY_WORKERS"]
    assert namespace == {"CELERY_WORKERS": 4}


def test_override_of_an_unknown_setting_is_a_string() -> None:
    namespace: dict[str, object] = {}
    apply_overrides(namespace, {"BKAPP_SETTINGS_NEW_THING": "42", "OTHER": "x"})
    assert namespace == {"NEW_THING": "42"}


@pytest.mark.parametrize(
    ("current", "raw", "message"),
    [
        (0, "four", "not valid JSON"),
        (0, "true", "expected a JSON int"),
        (0, "1.5", "expected a JSON int"),
        (False, "1", "expected a JSON bool"),
        ([], '{"a": 1}', "expected a JSON list"),
        ({}, "[]", "expected a JSON dict"),
        ([["a.b", "* * * * *", "global"]], "a.b", "not valid JSON"),  # a list of entries has no raw form
    ],
)
def test_bad_override_names_the_variable(current: object, raw: str, message: str) -> None:
    with pytest.raises(OverrideError, match=f"^BKAPP_SETTINGS_NAME: .*{message}"):
        apply_overrides({"NAME": current}, {"BKAPP_SETTINGS_NAME": raw})


def _django_setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BKAPP_SETTINGS_")} | env
    code = "import django; django.setup(); from django.conf import settings; print(settings.CELERY_WORKERS)"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full, capture_output=True, text=True, timeout=60)


def test_settings_load_order_and_override_end_to_end() -> None:
    done = _django_setup({"BKAPP_SETTINGS_CELERY_WORKERS": "3"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("BKAPP_SETTINGS_CELERY_WORKERS", "three"),
        ("BKAPP_SETTINGS_DEFAULT_CRONTAB", "{}"),
        ("BKAPP_DEFAULT_BK_BIZ_ID", "two"),
        ("BK_MONITOR_REDIS_MODE", "cluster"),
        ("DJANGO_CONF_MODULE", "conf.nosuchrole.development.community"),
    ],
)
def test_bad_value_fails_start_up_naming_the_variable(var: str, value: str) -> None:
    done = _django_setup({var: value})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last
    assert (var if var != "DJANGO_CONF_MODULE" else "config.role.nosuchrole") in last


def test_redis_standalone_from_env_with_fallbacks() -> None:
    conf = get_redis_settings(
        {"REDIS_HOST": "r1", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss"}, default_mode=STANDALONE
    )
    assert (conf.mode, conf.host, conf.port, conf.password) == (STANDALONE, "r1", 6380, "p@ss")
    conf = get_redis_settings({"BK_MONITOR_REDIS_HOST": "r2", "REDIS_HOST": "r1"}, default_mode=STANDALONE)
    assert conf.host == "r2"


def test_redis_sentinel_from_env() -> None:
    conf = get_redis_settings(
        {
            "BK_MONITOR_REDIS_MODE": "sentinel",
            "BK_MONITOR_REDIS_SENTINEL_HOST": "s1,s2:26380",
            "BK_MONITOR_REDIS_SENTINEL_PORT": "26381",
            "BK_MONITOR_REDIS_SENTINEL_MASTER_NAME": "master0",
            "BK_MONITOR_REDIS_SENTINEL_PASSWORD": "spw",
            "BK_MONITOR_REDIS_PASSWORD": "pw",
        },
        default_mode=STANDALONE,
    )
    assert conf.mode == SENTINEL
    assert conf.sentinels == (("s1", 26381), ("s2", 26380))
    assert (conf.master_name, conf.sentinel_password, conf.password) == ("master0", "spw", "pw")


def test_redis_mode_defaults_by_environment() -> None:
    assert default_redis_mode("dev", {}) == STANDALONE
    assert default_redis_mode("prod", {}) == SENTINEL
    assert default_redis_mode("prod", {"BKPAAS_MAJOR_VERSION": "3"}) == STANDALONE


def test_bad_redis_port_names_the_variable() -> None:
    with pytest.raises(EnvError, match="BK_MONITOR_REDIS_PORT='x'"):
        get_redis_settings({"BK_MONITOR_REDIS_PORT": "x"}, default_mode=STANDALONE)


def test_cache_redis_password_falls_back_only_when_unset() -> None:
    # The original's fallbacks were inverted (`X if X is None else REDIS_*`): a set cache password was ignored.
    main = get_redis_settings({"REDIS_PASSWORD": "main"}, default_mode=STANDALONE)
    assert get_cache_redis_settings({"BK_MONITOR_CACHE_REDIS_PASSWORD": "cache"}, main).password == "cache"
    assert get_cache_redis_settings({}, main).password == "main"
    assert get_cache_redis_settings({"BK_MONITOR_CACHE_REDIS_HOST": "c1"}, main).host == "c1"
    sentinel = get_redis_settings(
        {"BK_MONITOR_REDIS_MODE": "sentinel", "BK_MONITOR_REDIS_SENTINEL_PASSWORD": "spw"}, default_mode=STANDALONE
    )
    cache = get_cache_redis_settings(
        {"BK_MONITOR_CACHE_REDIS_SENTINEL_HOST": "cs", "BK_MONITOR_CACHE_REDIS_SENTINEL_PASSWORD": "cspw"}, sentinel
    )
    assert (cache.sentinels, cache.sentinel_password) == ((("cs", 26379),), "cspw")
    assert get_cache_redis_settings({"BK_MONITOR_CACHE_REDIS_SENTINEL_HOST": "cs"}, sentinel).sentinel_password == "spw"


@pytest.mark.parametrize(
    ("environ", "sentinels"),
    [
        # The original's format: `;`-separated hosts sharing one port.
        ({"BK_MONITOR_REDIS_SENTINEL_HOST": "10.0.0.1;10.0.0.2;10.0.0.3", "BK_MONITOR_REDIS_SENTINEL_PORT": "16379"},
         (("10.0.0.1", 16379), ("10.0.0.2", 16379), ("10.0.0.3", 16379))),
        # Its fallback: a deployment that names its sentinels only in REDIS_HOST / REDIS_PORT.
        ({"REDIS_HOST": "s1;s2;", "REDIS_PORT": "26000"}, (("s1", 26000), ("s2", 26000))),
        ({"BK_MONITOR_REDIS_SENTINEL_HOST": "s1", "REDIS_HOST": "ignored", "REDIS_PORT": "26000"}, (("s1", 26000),)),
        # IPv6, bare or bracketed with a port of its own.
        ({"REDIS_HOST": "fd00::1;[fd00::2]:1234"}, (("fd00::1", 26379), ("fd00::2", 1234))),
    ],
)  # fmt: skip
def test_sentinel_host_lists_as_the_original_reads_them(
    environ: dict[str, str], sentinels: tuple[tuple[str, int], ...]
) -> None:
    conf = get_redis_settings({"BK_MONITOR_REDIS_MODE": "sentinel", **environ}, default_mode=STANDALONE)
    assert conf.sentinels == sentinels
    assert (conf.host, conf.port) == sentinels[0]


def test_a_sentinel_host_list_item_that_is_not_host_or_host_port_names_the_variable() -> None:
    with pytest.raises(EnvError, match=r"REDIS_HOST: 's2:x' is not host or host:port"):
        get_redis_settings({"BK_MONITOR_REDIS_MODE": "sentinel", "REDIS_HOST": "s1;s2:x"}, default_mode=STANDALONE)


def test_redis_urls_quote_the_password() -> None:
    conf = get_redis_settings({"REDIS_PASSWORD": "p@ss/w:rd"}, default_mode=STANDALONE)
    assert redis_url(conf, 9) == "redis://:p%40ss%2Fw%3Ard@127.0.0.1:6379/9"
    assert redis_url(get_redis_settings({}, default_mode=STANDALONE), 0) == "redis://127.0.0.1:6379/0"
    sentinel = get_redis_settings(
        {"BK_MONITOR_REDIS_MODE": "sentinel", "BK_MONITOR_REDIS_SENTINEL_HOST": "a,b", "REDIS_PASSWORD": "p@"},
        default_mode=STANDALONE,
    )
    urls, options = sentinel_result_backend(sentinel, 9)
    assert urls == "sentinel://:p%40@a:26379/9;sentinel://:p%40@b:26379/9"
    assert options == {"master_name": "mymaster"}


def test_rabbitmq_settings_and_url() -> None:
    conf = get_rabbitmq_settings({}, app_code="bkmonitorv3")
    assert conf.broker_url() == "amqp://bkmonitorv3:@rabbitmq.service.consul:5672/bkmonitorv3"
    conf = get_rabbitmq_settings(
        {
            "BK_MONITOR_RABBITMQ_HOST": "127.0.0.1",
            "BK_MONITOR_RABBITMQ_VHOST": "/",
            "BK_MONITOR_RABBITMQ_USERNAME": "guest",
            "BK_MONITOR_RABBITMQ_PASSWORD": "a/b@c",
        },
        app_code="x",
    )
    assert conf.broker_url() == "amqp://guest:a%2Fb%40c@127.0.0.1:5672/%2F"


def test_consul_settings() -> None:
    off = get_consul_settings({})
    assert (off.enabled, off.address) == (False, "http://localhost:8500")
    on = get_consul_settings(
        {"BK_MONITOR_CONSUL_HOST": "c", "BK_MONITOR_CONSUL_PORT": "8501", "CONSUL_HTTP_TOKEN": "t"}
    )
    assert (on.enabled, on.address, on.token) == (True, "http://c:8501", "t")
    addr = get_consul_settings({"CONSUL_HTTP_ADDR": "127.0.0.1:18500"})
    assert (addr.enabled, addr.host, addr.port) == (True, "127.0.0.1", 18500)
    https = get_consul_settings({"CONSUL_HTTP_ADDR": "https://consul.local:8501"})
    assert (https.address, https.host) == ("https://consul.local:8501", "consul.local")
    tls = get_consul_settings({"CONSUL_HOST": "c", "BK_CONSUL_HTTPS_PORT": "8443", "BK_HOME": "/opt/bk"})
    assert (tls.address, tls.ca_file) == ("https://c:8443", "/opt/bk/cert/bkce-root.crt")


def test_consul_tls_files_and_ipv6_as_the_original() -> None:
    named = get_consul_settings(
        {"CONSUL_HOST": "c", "BK_CONSUL_HTTPS_PORT": "8443", "BK_HOME": "/opt/bk", "BK_CONSUL_CA_FILE": "ca.crt",
         "BK_CONSUL_CLIENT_CERT_FILE": "client.pem", "BK_CONSUL_CLIENT_KEY_FILE": "client.key"}
    )  # fmt: skip
    assert (named.ca_file, named.cert_file, named.key_file) == (
        "/opt/bk/cert/ca.crt", "/opt/bk/cert/client.pem", "/opt/bk/cert/client.key"
    )  # fmt: skip
    # An IPv6 host in brackets, as a URL needs it (the original's is_v6 rule), given bare or in CONSUL_HTTP_ADDR.
    assert get_consul_settings({"BK_MONITOR_CONSUL_HOST": "fd00::1"}).address == "http://[fd00::1]:8500"
    v6 = get_consul_settings({"CONSUL_HTTP_ADDR": "https://[fd00::2]:8501"})
    assert (v6.host, v6.port, v6.address) == ("[fd00::2]", 8501, "https://[fd00::2]:8501")
