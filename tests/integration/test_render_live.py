"""``render_supervisor`` against a running platform (``manage.py platform start`` on a private run dir, with the
redis program on a free port): ``--check`` writes nothing, ``--clear-metrics`` is refused with the live config
untouched, and a plain render keeps the redis program, so ``reread`` finds nothing removed.

Everything runs on the platform's own Redis (a free port, supervised): the machine's Redis is not used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from alarm_backends.core.processes import pid_alive
from alarm_backends.management.supervisor.control import Supervisor, read_pid, wait_gone
from tests.e2e.test_make_run import descendants
from tests.gate import redis_server
from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120  # every program to RUNNING (startsecs 5 each, started together)


@dataclass(frozen=True)
class Platform:
    run_dir: Path
    supervisor: Supervisor

    @property
    def config(self) -> Path:
        return self.run_dir / "supervisord.conf"


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT + 60, check=False)  # fmt: skip


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """The platform under supervisord in ``tmp_path``; this process's settings and environment point at it, so an
    in-process ``call_command`` renders what ``platform start`` rendered."""
    redis_server()  # the platform runs one: skipped (failed under BKM_REQUIRE_SERVICES=1) when none is installed
    run_dir, port = tmp_path / "run", free_port()
    variables = {
        "BKM_RUN_DIR": str(run_dir),
        "BK_MONITOR_REDIS_HOST": "127.0.0.1",
        "BK_MONITOR_REDIS_PORT": str(port),  # nothing answers there: the platform adds its redis program
        "BKAPP_SETTINGS_METRICS_EXPORTER_PORT": "0",  # no port shared with other runs
        "BKAPP_SETTINGS_CONSOLE_PORT": "0",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BK_LOG_DIR", raising=False)
    env = dict(os.environ)
    socket = run_dir / "supervisor.sock"
    supervisor = Supervisor(str(socket))
    supervisord: int | None = None
    pids: set[int] = set()
    try:
        started = manage(env, "platform", "start", "--timeout", str(START_TIMEOUT))
        supervisord = read_pid(str(run_dir / "supervisord.pid"))
        if supervisord is not None:
            pids = {supervisord, *descendants(supervisord)}
        assert started.returncode == 0, started.stdout + started.stderr
        settings = {
            "RUN_DIR": str(run_dir),
            "LOG_PATH": str(run_dir / "logs"),
            "SUPERVISOR_SERVER": f"unix://{socket}",
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": port,
            "METRICS_EXPORTER_PORT": 0,
            "CONSOLE_PORT": 0,
        }
        with override_settings(**settings):
            yield Platform(run_dir=run_dir, supervisor=supervisor)
    finally:
        stopped = manage(env, "platform", "stop", "--timeout", "60")
        # Whatever `platform stop` left behind, and only what this test started, by PID: supervisord's tree as it
        # is now (a child started since start-up too), then any process recorded at start-up.
        if supervisord is not None and pid_alive(supervisord):
            pids |= descendants(supervisord)
        left = sorted(p for p in pids if pid_alive(p))
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        for p in left:
            wait_gone(p, 10)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not left, f"processes still alive after platform stop: {left}"


def snapshot(path: Path) -> tuple[bytes, int, int]:
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


def test_render_on_a_live_platform(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    live = snapshot(platform.config)
    assert b"[program:redis]\n" in live[0]
    assert "redis" in {p.name for p in platform.supervisor.processes()}
    entries = sorted(os.listdir(platform.run_dir))
    samples = sorted(os.listdir(platform.run_dir / "metrics"))

    # --check: prints the config with the redis program (the Redis answering is the platform's), writes nothing.
    call_command("render_supervisor", "--check")
    out = capsys.readouterr().out
    assert snapshot(platform.config) == live
    assert sorted(os.listdir(platform.run_dir)) == entries
    assert out.startswith(live[0].decode())  # exactly the live config, then the findings as comments
    assert "; supervisord accepts it: 9 programs (nothing written)" in out

    # --clear-metrics: refused while supervisord answers, before anything is written or cleared.
    with pytest.raises(CommandError, match=r"supervisord answers on .*: not clearing the metrics"):
        call_command("render_supervisor", "--clear-metrics")
    assert snapshot(platform.config) == live
    assert sorted(os.listdir(platform.run_dir / "metrics")) == samples

    # A plain render keeps the redis program: reread finds nothing to remove.
    call_command("render_supervisor")
    assert platform.config.read_bytes() == live[0]
    [[added, changed, removed]] = platform.supervisor.call("reloadConfig")
    assert (added, changed, removed) == ([], [], [])
