"""``manage.py check`` reports crontab entries that would fail, naming each one."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from alarm_backends.checks import (
    CRONTAB_TAG,
    check_crontab_entries,
    check_ring_address,
    check_settings,
    crontab_problems,
)


def test_shipped_lists_pass() -> None:
    assert check_crontab_entries() == []
    call_command("check", "--tag", CRONTAB_TAG)


def test_unimportable_paths_are_errors_naming_the_entry() -> None:
    with override_settings(
        LONG_TASK_CRONTAB=[
            ("alarm_backends.jobs.log_trim", "0 * * * *", "global"),
            ("no.such.job", "0 * * * *", "global"),
        ],
        API_CRONTAB=[
            ("alarm_backends.jobs.cluster_cache.nothing_here", "* * * * *", "global"),
            ("tests.integration.brokenjob", "* * * * *", "global"),
        ],
    ):
        messages = [(m.id, m.msg) for m in check_crontab_entries()]
    assert messages == [
        ("bkmonitor.E002", "LONG_TASK_CRONTAB[1]: cron job 'no.such.job' cannot be imported: No module named 'no'"),
        (
            "bkmonitor.E002",
            "API_CRONTAB[0]: cron job 'alarm_backends.jobs.cluster_cache.nothing_here' cannot be imported: "
            'Module "alarm_backends.jobs.cluster_cache" does not define a "nothing_here" attribute/class',
        ),
        (
            "bkmonitor.E002",
            "API_CRONTAB[1]: cron job 'tests.integration.brokenjob' cannot be imported: "
            "No module named 'bkm_no_such_dependency'",
        ),
    ]


def test_malformed_entries_and_excluded_paths() -> None:
    with override_settings(
        DEFAULT_CRONTAB=[("a.b", "* *", "global")],
        ACTION_TASK_CRONTAB=[("no.such.job", "* * * * *", "cluster")],
        EXCLUDE_WORKER_TASKS=["no.such.job"],
    ):
        messages = [(m.id, m.msg) for m in check_crontab_entries()]
        with pytest.raises(SystemCheckError, match="DEFAULT_CRONTAB"):
            call_command("check", "--tag", CRONTAB_TAG)
    assert messages == [
        (
            "bkmonitor.E001",
            "DEFAULT_CRONTAB[0] = ('a.b', '* *', 'global'): bad cron '* *': "
            "expected 5 fields (minute hour day_of_week day_of_month month_of_year), got 2",
        )
    ]


def test_settings_are_checked_naming_the_setting() -> None:
    """Values changed after the settings loaded (settings.py enforces the same rules at load) are errors too."""
    assert check_settings() == []
    with override_settings(HOST_ADDR="10.0.0", CONSUL_SESSION_TTL=5):
        messages = [(m.id, m.msg) for m in check_settings()]
    assert messages == [
        ("bkmonitor.E004", "CONSUL_SESSION_TTL=5 (settings): expected a whole number of seconds from 10 to 86400 "
                           "(Consul's bounds)"),
        ("bkmonitor.E004", "HOST_ADDR='10.0.0' (settings): expected this host's IP address, or empty to detect it"),
    ]  # fmt: skip


def test_a_bad_entry_is_located_by_its_list_index_even_after_another_bad_one() -> None:
    with override_settings(
        DEFAULT_CRONTAB=[
            ("a.b", "* *", "global"),
            ("alarm_backends.jobs.heartbeat", "* * * * *", "global"),
            ("no.such.job", "* * * * *", "global"),
        ]
    ):
        found = [(p.id, p.where, p.path, p.malformed) for p in crontab_problems()]
    assert found == [
        ("bkmonitor.E001", "DEFAULT_CRONTAB[0]", "a.b", True),
        ("bkmonitor.E002", "DEFAULT_CRONTAB[2]", "no.such.job", False),
    ]


def test_a_loopback_ring_address_is_refused_when_consul_is_configured() -> None:
    with override_settings(HOST_ADDR="127.0.1.1", CONSUL_ENABLED=False):
        assert check_ring_address() == []
    with override_settings(HOST_ADDR="127.0.1.1", CONSUL_ENABLED=True):
        [message] = check_ring_address()
    assert message.id == "bkmonitor.E003"
    assert "127.0.1.1, a loopback address: set BK_MONITOR_HOST_ADDR" in message.msg
