"""The supervisord config of the scheduler group: programs, flags, profiles, the local Redis, and validation with
supervisord's own parser."""

from __future__ import annotations

import shlex
import stat
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from supervisor.datatypes import RestartWhenExitUnexpected, dict_of_key_value_pairs
from supervisor.options import ServerOptions, expand

from alarm_backends.core.cluster import reset_cluster
from alarm_backends.management.supervisor.control import SupervisorError, default_template, validate_config
from alarm_backends.management.supervisor.programs import BEAT, EXPORTER
from alarm_backends.management.supervisor.render import (
    Host,
    LocalRedis,
    check_host,
    env_value,
    passthrough_environment,
    render,
    substitute,
)
from alarm_backends.management.supervisor.workers import NOGMH, PIPELINE_WORKERS, PRODUCTION, SMALL, Sizing, workers

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = default_template(str(REPO)).read_text()

CELERY_APP = ("-m", "celery", "-A", "alarm_backends.service.scheduler.app")
SERVICE = "celery_worker_service"
# program -> (queues, production -c, max-tasks-per-child, nogmh, pool): the original's topology (its supervisord
# template), in its order.
# The -c of celery_worker_service is the formula: see FORMULA_C.
EXPECTED = {
    "celery_worker_api_cron": ("celery_api_cron", 5, None, True, "gevent"),
    "celery_worker_report_cron": ("celery_report_cron", 4, None, True, None),
    "celery_worker_action": ("celery_running_action", 8, 200, True, None),
    "celery_worker_webhook_action": ("celery_webhook_action", 8, 200, True, None),
    SERVICE: ("celery_service", None, 1000, True, None),
    "celery_worker_service_access_event": ("celery_service_access_event", 2, 1000, True, None),
    "celery_worker_cron": ("celery_cron", 8, 1, True, None),
    "celery_worker_alert": ("celery_alert_manager,celery_alert_builder", 8, 50, False, None),
    "celery_worker_composite": ("celery_composite", 2, 10000, False, None),
    "celery_worker_fta_action": ("celery_action,celery_interval_action", 8, 100, False, None),
    "celery_worker_converge": ("celery_converge", 8, 1000, False, None),
    "celery_worker_action_cron": ("celery_action_cron", 8, 1000, False, None),
    "celery_worker_long_task_cron": ("celery_long_task_cron", 2, 1000, True, None),
    "celery_metadata_task_worker": ("celery_metadata_task_worker", 2, 1, True, None),
}
FORMULA_C = {2: 2, 8: 6, 32: 14}  # int(cpu ** 0.6 * 1.85)
CRON = ["celery_worker_api_cron", "celery_worker_report_cron", "celery_worker_cron", "celery_worker_action_cron",
        "celery_worker_long_task_cron"]  # fmt: skip
PIPELINE_QUEUES = ",".join(q for name, (queues, *_) in EXPECTED.items() if name not in CRON for q in queues.split(","))


@pytest.fixture
def host(tmp_path: Path) -> Host:
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    return Host(
        repo_dir=str(REPO),
        python=sys.executable,
        run_dir=str(run_dir),
        log_dir=str(run_dir / "logs"),
        socket_path=str(run_dir / "supervisor.sock"),
    )


def parse(text: str, tmp_path: Path) -> ServerOptions:
    """The rendered text as supervisord reads it."""
    path = tmp_path / "supervisord.conf"
    path.write_text(text)
    options = ServerOptions()
    options.configfile = str(path)
    options.process_config(do_usage=False)
    return options


def programs(options: ServerOptions) -> dict[str, Any]:
    return {p.name: p for g in options.process_group_configs for p in g.process_configs}


def option_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def worker_argv(procs: dict[str, Any], name: str) -> list[str]:
    argv = shlex.split(procs[name].command)
    assert argv[:8] == [sys.executable, *CELERY_APP, "worker", "-l", "info"]
    assert option_value(argv, "-n") == f"{name}@%h"
    assert argv[-2:] == ["-O", "fair"]
    return argv


def check_flags(argv: list[str], max_tasks: int | None, nogmh: bool, pool: str | None) -> None:
    limits = [a for a in argv if a.startswith("--max-tasks-per-child")]
    assert limits == ([f"--max-tasks-per-child={max_tasks}"] if max_tasks else [])
    assert all((flag in argv) is nogmh for flag in NOGMH)
    assert ("-P" in argv) is (pool is not None)
    if pool:
        assert option_value(argv, "-P") == pool


@pytest.mark.parametrize("cpu", sorted(FORMULA_C))
def test_production_has_the_originals_programs_queues_and_flags(tmp_path: Path, host: Host, cpu: int) -> None:
    options = parse(render(TEMPLATE, replace(host, cpu_count=cpu), PRODUCTION), tmp_path)
    procs = programs(options)
    assert list(procs) == [BEAT, *EXPECTED]  # the original's order
    groups = {g.name: sorted(p.name for p in g.process_configs) for g in options.process_group_configs}
    assert groups == {"scheduler": sorted([BEAT, *EXPECTED])}
    for name, (queues, concurrency, max_tasks, nogmh, pool) in EXPECTED.items():
        argv = worker_argv(procs, name)
        assert option_value(argv, "-Q") == queues
        assert int(option_value(argv, "-c")) == (FORMULA_C[cpu] if concurrency is None else concurrency)
        check_flags(argv, max_tasks, nogmh, pool)
    beat = shlex.split(procs[BEAT].command)
    pidfile = f"--pidfile={host.run_dir}/celerybeat.pid"
    assert beat == [sys.executable, *CELERY_APP, "beat", "-l", "info", "-S", "redbeat.RedBeatScheduler", pidfile]


def test_celery_workers_setting_sizes_the_service_worker(tmp_path: Path, host: Host) -> None:
    procs = programs(parse(render(TEMPLATE, replace(host, cpu_count=32, celery_workers=3), PRODUCTION), tmp_path))
    assert option_value(shlex.split(procs[SERVICE].command), "-c") == "3"
    assert option_value(shlex.split(procs["celery_worker_cron"].command), "-c") == "8"  # fixed in the original


def test_small_profile_covers_every_queue_with_fewer_processes(tmp_path: Path, host: Host) -> None:
    procs = programs(parse(render(TEMPLATE, replace(host, cpu_count=32), SMALL), tmp_path))
    assert list(procs) == [BEAT, *CRON, "celery_worker_pipeline"]
    for name in CRON:  # the crontab workers keep their flags, with one or two processes
        queues, _, max_tasks, nogmh, pool = EXPECTED[name]
        argv = worker_argv(procs, name)
        assert option_value(argv, "-Q") == queues
        assert int(option_value(argv, "-c")) in (1, 2)
        check_flags(argv, max_tasks, nogmh, pool)
    pipeline = worker_argv(procs, "celery_worker_pipeline")
    assert option_value(pipeline, "-Q") == PIPELINE_QUEUES
    assert option_value(pipeline, "-c") == "2"
    small = {q for w in workers(SMALL) for q in w.queues}
    assert small == {q for w in workers(PRODUCTION) for q in w.queues}
    assert len(small) == 16


def test_every_program_is_supervised_the_same_way(host: Host, tmp_path: Path) -> None:
    options = parse(render(TEMPLATE, host, SMALL, environ={"HOME": "/root"}), tmp_path)
    for name, proc in programs(options).items():
        p = SimpleNamespace(**vars(proc))
        assert p.directory == str(REPO)
        assert (p.autostart, p.autorestart, p.startsecs, p.stopwaitsecs) == (True, RestartWhenExitUnexpected, 5, 30)
        # Only the configuration-refused exit status is not restarted (config.tools.validation.EXIT_CONFIG).
        assert (p.exitcodes, p.startretries) == ([2], 3)
        assert (p.stopasgroup, p.killasgroup, p.redirect_stderr) == (True, True, True)
        assert p.stdout_logfile == f"{host.log_dir}/{name}.log"
        assert p.environment == {
            "DJANGO_SETTINGS_MODULE": "settings",
            "BKM_RUN_DIR": host.run_dir,
            "PROMETHEUS_MULTIPROC_DIR": f"{host.run_dir}/metrics",
        }


def test_the_metrics_exporter_is_a_program_unless_its_port_is_0(host: Host, tmp_path: Path) -> None:
    assert EXPORTER not in programs(parse(render(TEMPLATE, host, SMALL), tmp_path))
    procs = programs(parse(render(TEMPLATE, replace(host, metrics_port=9300), SMALL), tmp_path))
    assert shlex.split(procs[EXPORTER].command) == [sys.executable, f"{REPO}/manage.py", "metrics_exporter"]
    # Every program writes its samples where the exporter reads them.
    assert {p.environment["PROMETHEUS_MULTIPROC_DIR"] for p in procs.values()} == {f"{host.run_dir}/metrics"}


def test_the_programs_run_the_conf_module_the_render_was_made_with(host: Host, tmp_path: Path) -> None:
    """Written into the file: a production render made without DJANGO_CONF_MODULE ran the development config."""
    dev = replace(host, conf_module="conf.worker.development.ce", platform="ce")
    small = programs(parse(render(TEMPLATE, dev, SMALL), tmp_path))
    assert {p.environment["DJANGO_CONF_MODULE"] for p in small.values()} == {"conf.worker.development.ce"}
    # The production profile: the original's environ.sh module, unless one is given.
    assert 'DJANGO_CONF_MODULE="conf.worker.production.ce"' in render(TEMPLATE, dev, PRODUCTION)
    given = {"DJANGO_CONF_MODULE": "conf.worker.testing.ce"}
    assert 'DJANGO_CONF_MODULE="conf.worker.testing.ce"' in render(TEMPLATE, dev, PRODUCTION, environ=given)


@pytest.mark.parametrize(
    ("address", "port", "error"),
    [
        ("0.0.0.0", 9108, "METRICS_EXPORTER_HOST='0.0.0.0' is not a loopback address"),
        ("10.0.0.1", 9108, "METRICS_EXPORTER_HOST='10.0.0.1' is not a loopback address"),
        ("127.0.0.1", 70000, "METRICS_EXPORTER_PORT=70000 is not a TCP port"),
    ],
)
def test_the_exporter_address_is_checked_when_rendering(address: str, port: int, error: str, host: Host) -> None:
    with override_settings(METRICS_EXPORTER_HOST=address, METRICS_EXPORTER_PORT=port):
        # Read as is: `platform stop` and `status` must work whatever the exporter's settings say.
        read = Host.from_settings(settings, sys.executable)
    assert (read.metrics_host, read.metrics_port) == (address, port)
    with pytest.raises(ValueError) as exc:
        render(TEMPLATE, replace(host, metrics_host=address, metrics_port=port), SMALL)
    assert error in str(exc.value)
    assert EXPORTER not in render(TEMPLATE, replace(host, metrics_host="0.0.0.0", metrics_port=0), SMALL)  # off
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert f"[program:{EXPORTER}]" in render(TEMPLATE, replace(host, metrics_host=loopback, metrics_port=9300))


def test_container_mode_logs_to_stdout(host: Host, tmp_path: Path) -> None:
    options = parse(render(TEMPLATE, replace(host, log_to_stdout=True), PRODUCTION), tmp_path)
    assert options.configroot.supervisord.logfile == "/dev/stdout"
    for proc in programs(options).values():
        assert (proc.stdout_logfile, proc.stdout_logfile_maxbytes, proc.stdout_logfile_backups) == ("/dev/stdout", 0, 0)


def test_server_is_a_private_unix_socket(host: Host, tmp_path: Path) -> None:
    text = render(TEMPLATE, host, PRODUCTION)
    assert "C_FORCE_ROOT" not in text
    assert "inet_http_server" not in text
    assert "/dev/null" not in text
    options = parse(text, tmp_path)
    section = options.configroot.supervisord
    [server] = section.server_configs
    assert (server["file"], server["chmod"]) == (host.socket_path, 0o700)
    assert section.pidfile == f"{host.run_dir}/supervisord.pid"
    assert section.logfile == f"{host.log_dir}/supervisord.log"
    assert section.childlogdir == host.log_dir
    assert f"serverurl=unix://{host.socket_path}\n" in text
    assert options.configroot.supervisord.rpcinterface_factories


def test_small_profile_keeps_the_process_count_modest() -> None:
    # Prefork: the main process plus -c children; gevent: one process.
    sizing = Sizing(SMALL, cpu_count=64)
    total = 1 + sum(1 if w.pool == "gevent" else 1 + w.concurrency_for(sizing) for w in workers(SMALL))
    assert total <= 14
    assert all(w.concurrency_for(sizing) in (1, 2) for w in workers(SMALL))
    assert all(w.concurrency_for(sizing) == 1 for w in PIPELINE_WORKERS)


def test_queue_names_are_scoped_by_cluster(host: Host, tmp_path: Path) -> None:
    text = render(TEMPLATE, host, SMALL, queue_name=lambda q: f"east-{q}")
    procs = programs(parse(text, tmp_path))
    for name in CRON:
        assert option_value(shlex.split(procs[name].command), "-Q") == f"east-{EXPECTED[name][0]}"
    assert option_value(shlex.split(procs["celery_worker_pipeline"].command), "-Q").startswith("east-celery_running")


def test_local_redis_program_starts_first(host: Host, tmp_path: Path) -> None:
    text = render(TEMPLATE, host, SMALL, redis=LocalRedis("/opt/redis/bin/redis-server", 6390))
    procs = programs(parse(text, tmp_path))
    redis = procs["redis"]
    assert shlex.split(redis.command) == [
        "/opt/redis/bin/redis-server",
        *("--bind", "127.0.0.1", "--port", "6390", "--save", ""),
        # An append-only file in the run dir: a restart keeps the schedule's history (an empty store makes every
        # entry new) and the queued messages.
        *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", host.run_dir),
    ]
    assert '--save ""' in text
    assert all(redis.priority < p.priority for n, p in procs.items() if n != "redis")
    assert "[program:redis]" not in render(TEMPLATE, host, SMALL)


def test_environment_passthrough_leaves_secrets_out() -> None:
    env = passthrough_environment(
        {
            "HOME": "/root",
            "DJANGO_CONF_MODULE": "conf.worker.production.community",
            "BKAPP_SETTINGS_REDIS_DB_PLAN": '{"log": 11}',
            "BK_MONITOR_REDIS_HOST": "10.0.0.2",
            "BK_MONITOR_REDIS_PASSWORD": "s3cret",
            "BKAPP_SECRET_KEY": "k",
            "CONSUL_HTTP_TOKEN": "t",
            "BKAPP_SETTINGS_BROKER_URL": "amqp://u:pw@host:5672/",
        }
    )
    assert env == {
        "BKAPP_SETTINGS_REDIS_DB_PLAN": '{"log": 11}',
        "BK_MONITOR_REDIS_HOST": "10.0.0.2",
        "DJANGO_CONF_MODULE": "conf.worker.production.community",
    }


@pytest.mark.parametrize(
    "value",
    ["", "plain", "a,b=c", '{"log": 11, "cache": 12}', "it's", "50%", "%(here)s", "a b", "C:\\dir", "x;y"],
)
def test_env_value_round_trips_through_supervisor(value: str) -> None:
    quoted = env_value(value)
    assert quoted is not None
    assert dict_of_key_value_pairs(expand(f"A={quoted},B=1", {"here": "/x"}, "environment")) == {"A": value, "B": "1"}


@pytest.mark.parametrize("value", ["a\nb", "'quoted'", "both ' and \"", "x ;comment"])
def test_env_value_refuses_what_supervisor_cannot_read(value: str, host: Host, tmp_path: Path) -> None:
    assert env_value(value) is None
    procs = programs(parse(render(TEMPLATE, host, SMALL, environ={"BKM_ODD": value}), tmp_path))
    assert "BKM_ODD" not in procs[BEAT].environment  # inherited instead


def test_host_checks(host: Host) -> None:
    with pytest.raises(ValueError, match="unix:// socket"):
        Host.from_settings(SimpleNamespace(SUPERVISOR_SERVER="http://127.0.0.1:9001"), python=sys.executable)
    with pytest.raises(ValueError, match="cannot be written into a supervisord config"):
        check_host(Host(**{**vars(host), "run_dir": "/tmp/100%"}))
    with pytest.raises(ValueError, match="longer than"):
        check_host(Host(**{**vars(host), "socket_path": "/tmp/" + "x" * 120 + ".sock"}))
    with pytest.raises(ValueError, match="unknown profile"):
        render(TEMPLATE, host, "huge")


def test_template_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"\$\{nope\}, which has no value"):
        substitute("x=${nope}", {"a": "1"})
    with pytest.raises(ValueError, match="malformed"):
        substitute("price=$5", {})


# --- the command ----------------------------------------------------------------------------------------------


def test_command_check_passes(tmp_path: Path, fake_redis_binary: str, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "supervisord.conf"
    call_command("render_supervisor", "--check", "--output", str(output), "--redis", "yes", "--profile", PRODUCTION)
    out = capsys.readouterr().out
    # redis, beat, the 14 workers, the exporter, the console, healthz_daemon
    assert "supervisord accepts it: 19 programs" in out
    assert f"command={fake_redis_binary} --bind 127.0.0.1" in out  # the config it would write
    assert "-c 8 " in out
    assert not output.parent.exists()  # --check writes nothing
    call_command("render_supervisor", "--output", str(output), "--redis", "yes", "--profile", PRODUCTION)
    text = output.read_text()
    assert f"command={fake_redis_binary} --bind 127.0.0.1" in text
    # Only the operator may read it; re-rendering over a wider file narrows it again.
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    output.chmod(0o644)
    call_command("render_supervisor", "--output", str(output), "--redis", "no")
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert "[program:redis]" not in output.read_text()


@pytest.mark.parametrize(("scoped", "queue"), [(False, "celery_cron"), (True, "east-celery_cron")])
def test_command_uses_the_cluster_queue_names(tmp_path: Path, scoped: bool, queue: str) -> None:
    output = tmp_path / "supervisord.conf"
    reset_cluster()
    try:
        with override_settings(ALARM_BACKEND_CLUSTER_NAME="east", CLUSTER_SCOPED_NAMES=scoped):
            call_command("render_supervisor", "--output", str(output), "--redis", "no")
    finally:
        reset_cluster()
    assert f"-Q {queue} " in output.read_text()


def test_command_check_fails_on_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.conf"
    broken.write_text(TEMPLATE.replace("chmod=0700", "chmod=0999"))
    args = ["--check", "--output", str(tmp_path / "s.conf"), "--redis", "no", "--template", str(broken)]
    with pytest.raises(CommandError, match=r"is not a valid supervisord config: .*0999"):
        call_command("render_supervisor", *args)

    broken.write_text(TEMPLATE.replace("${groups}", "[group:extra]\nprograms=celery_nothing\n${groups}"))
    with pytest.raises(CommandError, match="names unknown program or fcgi-program celery_nothing"):
        call_command("render_supervisor", *args)

    broken.write_text(TEMPLATE + "\nextra=${undefined_value}\n")
    with pytest.raises(CommandError, match=r"broken.conf: the template uses \$\{undefined_value\}"):
        call_command("render_supervisor", *args)


def test_check_rejects_a_corrupted_file_and_a_missing_command(host: Host, tmp_path: Path) -> None:
    path = tmp_path / "supervisord.conf"
    path.write_text(render(TEMPLATE, host, SMALL).replace("[supervisord]", "[supervisor-daemon]"))
    with pytest.raises(SupervisorError, match="does not include supervisord section"):
        validate_config(str(path))
    path.write_text(render(TEMPLATE, host, SMALL) + "\n[inet_http_server]\nport=127.0.0.1:9001\n")
    with pytest.raises(SupervisorError, match=r"must not listen on TCP"):
        validate_config(str(path))
    path.write_text(render(TEMPLATE, Host(**{**vars(host), "python": "/nonexistent/python"}), SMALL))
    with pytest.raises(SupervisorError, match=r"\[program:celery_beat\] runs /nonexistent/python"):
        validate_config(str(path))
