"""A bad setting stops every process the same way: one line naming the variable, the value and what is expected,
exit status 2, no traceback — and under supervisord the program goes FATAL with that line in its log instead of
restarting in a loop.

Before, ``REDBEAT_LOCK_TIMEOUT=-5`` or a malformed ``REDBEAT_MISSED_RUN`` passed ``manage.py check`` and beat died
with a ~58-line traceback (a restart loop under supervisord); ``REDBEAT_LOCK_TIMEOUT=0`` silently became 30; a
negative ``REDBEAT_STANDBY_INTERVAL`` busy-looped a standby and ``0`` became 1 s; a non-JSON ``BKAPP_SETTINGS_*``
value stopped ``manage.py`` under a ~60-line traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from alarm_backends.management.supervisor.control import Supervisor
from alarm_backends.management.supervisor.render import Host, command_line, env_value, program_section
from config.tools.validation import EXIT_CONFIG
from tests.integration.conftest import wait_for
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
BEAT = [sys.executable, "-m", "celery", "-A", "alarm_backends.service.scheduler.app", "beat", "-l", "info"]
CHECK = [sys.executable, "manage.py", "check"]

# (environment, the one line every process prints). Each names the variable, its value and what is expected.
CASES: list[tuple[dict[str, str], str]] = [
    ({"BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT": "-5"},
     "BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT='-5': expected the leader's lease: a number of seconds from 1 to 86400"),
    ({"BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT": "0"},
     "BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT='0': expected the leader's lease: a number of seconds from 1 to 86400"),
    ({"BKAPP_SETTINGS_REDBEAT_STANDBY_INTERVAL": "-1"},
     "BKAPP_SETTINGS_REDBEAT_STANDBY_INTERVAL='-1': expected a number of seconds from 0.1 to 60"),
    ({"BKAPP_SETTINGS_REDBEAT_STANDBY_INTERVAL": "0"},
     "BKAPP_SETTINGS_REDBEAT_STANDBY_INTERVAL='0': expected a number of seconds from 0.1 to 60"),
    ({"BKAPP_SETTINGS_REDBEAT_STANDBY_INTERVAL": "45"},
     "BKAPP_SETTINGS_REDBEAT_STANDBY_INTERVAL='45': expected a number of seconds shorter than REDBEAT_LOCK_TIMEOUT "
     "(30s): a standby would miss leases"),
    ({"BKAPP_SETTINGS_REDBEAT_MISSED_RUN": '{"policy": "sometimes"}'},
     """BKAPP_SETTINGS_REDBEAT_MISSED_RUN='{"policy": "sometimes"}': expected a JSON object {"policy": "once"|"skip"|"""
     """"all", "grace": seconds ≥ 0, "max_catchup": whole number ≥ 1}"""),
    ({"BKAPP_SETTINGS_REDBEAT_MISSED_RUN": "once"},
     "BKAPP_SETTINGS_REDBEAT_MISSED_RUN: 'once' is not valid JSON (Expecting value)"),
    ({"BKAPP_SETTINGS_CRON_DEFAULT_OVERLAP": "forbid"},
     """BKAPP_SETTINGS_CRON_DEFAULT_OVERLAP='forbid': expected "allow", "skip", "buffer_one" or "replace\""""),
    ({"BKAPP_SETTINGS_CRON_RUN_LEASE": "0"},
     "BKAPP_SETTINGS_CRON_RUN_LEASE='0': expected a number of seconds from 1 to 3600"),
    ({"BKAPP_SETTINGS_REDBEAT_FIRST_RUN": "later"},
     """BKAPP_SETTINGS_REDBEAT_FIRST_RUN='later': expected "now" or "next\""""),
    ({"BKAPP_SETTINGS_CELERY_WORKERS": "three"},
     "BKAPP_SETTINGS_CELERY_WORKERS: 'three' is not valid JSON (Expecting value)"),
    ({"BKAPP_SETTINGS_CELERY_WORKERS": "-2"},
     "BKAPP_SETTINGS_CELERY_WORKERS='-2': expected a whole number of processes ≥ 0 (0: int(cpu ** 0.6 * 1.85))"),
    ({"BKAPP_SETTINGS_CELERY_SERIALIZER": "yaml"},
     """BKAPP_SETTINGS_CELERY_SERIALIZER='yaml': expected "json" or "pickle\""""),
    ({"BKAPP_SETTINGS_CRON_DEFAULT_TIMEZONE": "Mars/Base"},
     """BKAPP_SETTINGS_CRON_DEFAULT_TIMEZONE='Mars/Base': expected an IANA time zone name (e.g. "Asia/Shanghai"), """
     '''or ""'''),
    ({"BKAPP_SETTINGS_CRON_TASK_RAISE_ERRORS": "1"},
     "BKAPP_SETTINGS_CRON_TASK_RAISE_ERRORS: expected a JSON bool for this setting, got '1'"),
    ({"BKAPP_SETTINGS_METRICS_EXPORTER_HOST": "0.0.0.0"},
     "BKAPP_SETTINGS_METRICS_EXPORTER_HOST='0.0.0.0': expected a loopback address (127.0.0.1, ::1 or localhost)"),
    ({"BKAPP_SETTINGS_METRICS_EXPORTER_PORT": "70000"},
     "BKAPP_SETTINGS_METRICS_EXPORTER_PORT='70000': expected a TCP port 1-65535, or 0 to leave the exporter out"),
    ({"BKAPP_SETTINGS_CONSOLE_HOST": "0.0.0.0"},
     "BKAPP_SETTINGS_CONSOLE_HOST='0.0.0.0': expected a loopback address (127.0.0.1, ::1 or localhost)"),
    ({"BKAPP_SETTINGS_CONSOLE_PORT": "-1"},
     "BKAPP_SETTINGS_CONSOLE_PORT='-1': expected a TCP port 1-65535, or 0 to leave the console out"),
    ({"BKAPP_SETTINGS_REDIS_DB_PLAN": '{"log": 7}'},
     """BKAPP_SETTINGS_REDIS_DB_PLAN='{"log": 7}': expected a JSON object of the DB numbers (≥ 0) of exactly log, """
     "cache, queue, service"),
    ({"BKAPP_SETTINGS_REDBEAT_REDIS_DB": "-1"},
     "BKAPP_SETTINGS_REDBEAT_REDIS_DB='-1': expected a Redis DB number ≥ 0"),
    ({"BKAPP_SETTINGS_REDBEAT_REDIS_CLUSTER_NODES": '["10.0.0.1:7000", "10.0.0.2"]'},
     """BKAPP_SETTINGS_REDBEAT_REDIS_CLUSTER_NODES='["10.0.0.1:7000", "10.0.0.2"]': expected a JSON list of """
     '"host:port" (empty: no cluster)'),
    ({"BKAPP_SETTINGS_REDBEAT_COMMIT_REPLICAS": "-1"},
     "BKAPP_SETTINGS_REDBEAT_COMMIT_REPLICAS='-1': expected a whole number of replicas from 0 to 16"),
    ({"BKAPP_SETTINGS_CONSUL_SESSION_TTL": "5"},
     "BKAPP_SETTINGS_CONSUL_SESSION_TTL='5': expected a whole number of seconds from 10 to 86400 (Consul's bounds)"),
    ({"BKAPP_SETTINGS_CONSUL_TIMEOUT": "0"},
     "BKAPP_SETTINGS_CONSUL_TIMEOUT='0': expected a number of seconds above 0, at most 60"),
    ({"BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME": "Bad Name!"},
     "BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME='Bad Name!': invalid cluster name 'Bad Name!': use 1-64 characters from "
     "a-z, 0-9, '-' and '_' (ALARM_BACKEND_CLUSTER_NAME)"),
    ({"BK_MONITOR_ALARM_BACKEND_CLUSTER_CODE": "12345"},
     "BK_MONITOR_ALARM_BACKEND_CLUSTER_CODE='12345': invalid cluster code '12345': must be an integer 0-9999 "
     "(ALARM_BACKEND_CLUSTER_CODE)"),
    ({"BKAPP_LOG_LEVEL": "verbose"},
     "BKAPP_LOG_LEVEL='verbose': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL (LOG_LEVEL)"),
    ({"BKAPP_LOG_FORMAT": "xml"},
     """BKAPP_LOG_FORMAT='xml': expected "text" or "json" (LOG_FORMAT)"""),
    ({"BK_MONITOR_HOST_ADDR": "10.0.0"},
     "BK_MONITOR_HOST_ADDR='10.0.0': expected this host's IP address, or empty to detect it (HOST_ADDR)"),
    ({"BKAPP_SETTINGS_BKMONITOR_WORKER_INCLUDE_LIST": '["2"]'},
     """BKAPP_SETTINGS_BKMONITOR_WORKER_INCLUDE_LIST='["2"]': expected a JSON list of business ids (whole numbers)"""),
    ({"BKAPP_SETTINGS_DEFAULT_CRONTAB": "alarm_backends.jobs.heartbeat"},
     "BKAPP_SETTINGS_DEFAULT_CRONTAB: 'alarm_backends.jobs.heartbeat' is not valid JSON (Expecting value)"),
    ({"BKAPP_DEFAULT_BK_BIZ_ID": "two"},
     "BKAPP_DEFAULT_BK_BIZ_ID='two' is not an integer"),
    ({"BK_MONITOR_REDIS_PORT": "6379x"},
     "BK_MONITOR_REDIS_PORT='6379x' is not an integer"),
    ({"BKAPP_SETTINGS_TIME_ZONE": "Mars/Olympus_Mons"},
     "BKAPP_SETTINGS_TIME_ZONE='Mars/Olympus_Mons': expected an IANA time zone name, e.g. Asia/Shanghai"),
    ({"BK_MONITOR_REDIS_MODE": "cluster"},
     "BK_MONITOR_REDIS_MODE='cluster' must be one of standalone, sentinel"),
    ({"DJANGO_CONF_MODULE": "conf.worker.prod.community"},
     "DJANGO_CONF_MODULE='conf.worker.prod.community': environment must be one of development, testing, production"),
]  # fmt: skip
IDS = [next(iter(env)) + "=" + next(iter(env.values())) for env, _ in CASES]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=os.environ | env, capture_output=True, text=True, timeout=60)


def test_the_table_is_large_and_every_case_is_distinct() -> None:
    assert len(CASES) >= 20
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize(("env", "line"), CASES, ids=IDS)
def test_check_and_beat_refuse_with_one_line_and_status_2(env: dict[str, str], line: str) -> None:
    # Both at once: each is a second of imports.
    procs = [subprocess.Popen(argv, cwd=REPO, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for argv in (CHECK, BEAT)]  # fmt: skip
    for argv, proc in zip((CHECK, BEAT), procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, err, out) == (EXIT_CONFIG, f"bkmonitor: {line}\n", ""), argv


@pytest.mark.parametrize("program", ["worker", "metrics_exporter"])
def test_a_worker_and_the_exporter_refuse_the_same_way(program: str) -> None:
    env, line = CASES[0]
    argv = [*BEAT[:-3], "worker", "-Q", "celery_cron"] if program == "worker" else [*CHECK[:-1], program]
    result = run(argv, env)
    assert (result.returncode, result.stderr) == (EXIT_CONFIG, f"bkmonitor: {line}\n")


def test_several_bad_values_are_one_line_each() -> None:
    result = run(CHECK, {"BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT": "0", "BKAPP_SETTINGS_CELERY_SERIALIZER": "yaml"})
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.splitlines() == [
        """bkmonitor: BKAPP_SETTINGS_CELERY_SERIALIZER='yaml': expected "json" or "pickle\"""",
        "bkmonitor: BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT='0': expected the leader's lease: a number of seconds from 1 "
        "to 86400",
    ]


# --- under supervisord -----------------------------------------------------------------------------------------

# supervisord spawns every program at once: a few per supervisord keep each spawn well inside startsecs (5 s) on
# two busy cores, which is what a host's one beat has.
CHUNK = 6
HEADER = """\
[unix_http_server]
file={run}/supervisor.sock
chmod=0700

[supervisord]
logfile={run}/supervisord.log
pidfile={run}/supervisord.pid
childlogdir={run}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

"""


@pytest.fixture
def supervised() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The supervisords a test starts, stopped (by their process group) whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        stop_group(proc)


def start_beats(tmp_path: Path, cases: list[tuple[dict[str, str], str]]) -> tuple[Supervisor, str]:
    """A supervisord of the test's own running one beat per case, each in the platform's program section."""
    run_dir = tmp_path / f"sv{len(list(tmp_path.iterdir()))}"
    run_dir.mkdir()
    host = Host(repo_dir=str(REPO), python=sys.executable, run_dir=str(run_dir), log_dir=str(run_dir),
                socket_path=str(run_dir / "supervisor.sock"))  # fmt: skip
    sections = []
    for index, (env, _) in enumerate(cases):
        quoted = {name: env_value(value) for name, value in env.items()}
        assert None not in quoted.values(), env
        environment = ",".join(f"{name}={value}" for name, value in quoted.items())
        sections.append(program_section(host, f"beat_{index}", BEAT, environment, 100))
    config = run_dir / "supervisord.conf"
    config.write_text(HEADER.format(run=run_dir) + "\n".join(sections))
    assert command_line(BEAT) in config.read_text()
    return Supervisor(host.socket_path), str(config)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_under_supervisord_each_bad_beat_goes_fatal_with_its_line(
    tmp_path: Path, supervised: list[subprocess.Popen[bytes]]
) -> None:
    for first in range(0, len(CASES), CHUNK):
        cases = CASES[first : first + CHUNK]
        supervisor, config = start_beats(tmp_path, cases)
        argv = [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", config]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, start_new_session=True)
        supervised.append(proc)
        wait_for(supervisor.answers, 30, "supervisord to answer")

        def settled(supervisor: Supervisor = supervisor) -> list | None:
            states = supervisor.processes()
            return states if all(p.state in ("FATAL", "EXITED") for p in states) else None

        # startretries=3 with supervisord's growing back-off (1+2+3 s) and four short-lived spawns.
        wait_for(settled, 90, "every bad beat to stop for good")
        infos = sorted(supervisor.call("getAllProcessInfo"), key=lambda info: int(info["name"].rpartition("_")[2]))
        for info, (env, line) in zip(infos, cases, strict=True):
            log = Path(info["stdout_logfile"]).read_text().splitlines()
            # Each spawn says only the one line; never a traceback.
            assert log and set(log) == {f"bkmonitor: {line}"}, (env, log)
            if info["statename"] == "FATAL":
                assert len(log) == 4, (env, log)  # the first spawn and three retries
            else:
                # A spawn slower than startsecs to refuse (a loaded host) counts as started; its exit status 2 is
                # the program's one expected code, so it is not restarted either: EXITED, no loop.
                assert (info["statename"], info["exitstatus"]) == ("EXITED", 2), (env, info, log)
                assert len(log) <= 4, (env, log)
        stop_group(proc)
