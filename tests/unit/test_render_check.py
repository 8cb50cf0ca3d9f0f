"""``render_supervisor`` on a live host: ``--check`` writes nothing, ``--clear-metrics`` is refused before anything is
written, and ``auto`` keeps the redis program this run dir's supervisord runs.

supervisord is faked here (its answers over the socket); tests/integration/test_render_live.py runs a real one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from supervisor.options import ServerOptions

from alarm_backends.management.supervisor import control as supervisor_rpc
from alarm_backends.management.supervisor.control import ProcessInfo, Supervisor
from alarm_backends.management.supervisor.files import supervised_redis
from alarm_backends.management.supervisor.render import Host

REDIS_PORT = 6391  # never probed: redis_answers is faked


@pytest.fixture
def fresh_run_dir(tmp_path: Path) -> Iterator[Path]:
    """Settings pointing at a run dir that does not exist yet (a fresh host)."""
    run_dir = tmp_path / "fresh" / "run"
    with override_settings(
        RUN_DIR=str(run_dir),
        LOG_PATH=str(run_dir / "logs"),
        SUPERVISOR_SERVER=f"unix://{run_dir}/supervisor.sock",
        REDIS_MODE="standalone",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=REDIS_PORT,
    ):
        yield run_dir


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch, fake_redis_binary: str) -> str:
    """A redis-server that passes the checks, and a Redis answering on the configured port."""
    monkeypatch.setattr(supervisor_rpc, "redis_answers", lambda host, port: True)
    return fake_redis_binary


def supervisord_running(monkeypatch: pytest.MonkeyPatch, programs: list[str]) -> None:
    """supervisord answers on every socket, running ``programs``."""

    def info(name: str) -> ProcessInfo:
        return ProcessInfo(name=name, state="RUNNING", pid=1, description="", logfile="", spawnerr="")

    monkeypatch.setattr(Supervisor, "answers", lambda self: True)
    monkeypatch.setattr(Supervisor, "processes", lambda self: [info(name) for name in programs])


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_check_writes_nothing_and_prints_what_it_would_write(
    fresh_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "live.conf"
    output.write_text("; the config a running supervisord would reread\n")
    os.utime(output, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(output)

    call_command("render_supervisor", "--check", "--output", str(output), "--redis", "no")

    assert snapshot(output) == before
    assert not fresh_run_dir.parent.exists()  # not even the run dir or the log dir was created
    out = capsys.readouterr().out
    assert "[program:celery_beat]" in out
    assert f"; would write {output} (small profile: celery_beat, " in out
    assert f"validated with empty stand-ins: {fresh_run_dir}, {fresh_run_dir}/logs" in out
    assert out.rstrip().endswith("; supervisord accepts it: 10 programs (nothing written)")  # the console too
    # stdout is itself a config supervisord reads (the findings are comments), once the directories exist.
    fresh_run_dir.joinpath("logs").mkdir(parents=True)
    candidate = tmp_path / "candidate.conf"
    candidate.write_text(out)
    options = ServerOptions()
    options.configfile = str(candidate)
    options.process_config(do_usage=False)
    assert len([p for g in options.process_group_configs for p in g.process_configs]) == 10


def test_check_with_clear_metrics_is_refused(fresh_run_dir: Path) -> None:
    with pytest.raises(CommandError, match="--check writes nothing, so it cannot also --clear-metrics"):
        call_command("render_supervisor", "--check", "--clear-metrics", "--redis", "no")
    assert not fresh_run_dir.parent.exists()


def test_clear_metrics_is_refused_before_anything_is_written(
    fresh_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisord_running(monkeypatch, ["celery_beat"])
    output = tmp_path / "out" / "supervisord.conf"
    with pytest.raises(CommandError, match=r"supervisord answers on .*: not clearing the metrics"):
        call_command("render_supervisor", "--clear-metrics", "--output", str(output), "--redis", "no")
    assert not output.parent.exists()
    assert not fresh_run_dir.parent.exists()


def test_auto_keeps_the_redis_program_supervisord_runs(
    fresh_run_dir: Path, tmp_path: Path, fake_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "supervisord.conf"
    # A Redis answers and no supervisord runs one: it is someone else's, no program is added.
    call_command("render_supervisor", "--output", str(output))
    assert "[program:redis]" not in output.read_text()
    # The Redis that answers is the one this run dir's supervisord runs: the program stays.
    supervisord_running(monkeypatch, ["redis", "scheduler:celery_beat"])
    call_command("render_supervisor", "--output", str(output))
    assert f"[program:redis]\ncommand={fake_redis} --bind 127.0.0.1 --port {REDIS_PORT} " in output.read_text()
    # --redis no still drops it: that is the operator's choice, not a guess.
    call_command("render_supervisor", "--output", str(output), "--redis", "no")
    assert "[program:redis]" not in output.read_text()


def test_supervised_redis_asks_supervisord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(str(tmp_path), "python", str(tmp_path), str(tmp_path), str(tmp_path / "supervisor.sock"))
    assert not supervised_redis(host)  # nothing listens on the socket
    supervisord_running(monkeypatch, ["scheduler:celery_beat", "scheduler:redis"])
    assert not supervised_redis(host)  # a program of the scheduler group is not the redis program
    supervisord_running(monkeypatch, ["redis"])
    assert supervised_redis(host)

    def refused(self: Any) -> list[ProcessInfo]:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(Supervisor, "processes", refused)
    assert not supervised_redis(host)
