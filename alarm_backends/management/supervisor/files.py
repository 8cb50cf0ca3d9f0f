"""The scheduler's supervisord config as a file: rendered in memory, then either written (privately, at once) or
checked with supervisord's own parser without writing anything.

``render_supervisor --check`` runs on live hosts: it must not replace the config a running supervisord would
``reread``, nor create the run dir. And a render while this run dir's supervisord runs the ``redis`` program keeps
that program in ``auto`` mode: the Redis answering on the port is then the platform's own, not an outside one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alarm_backends.management.supervisor.control import (
    REDIS_AUTO,
    RPC_ERRORS,
    Supervisor,
    SupervisorError,
    default_template,
    local_redis,
    validate_config,
)
from alarm_backends.management.supervisor.env_secrets import configured_secrets
from alarm_backends.management.supervisor.programs import CONFIG_NAME, REDIS, Host
from alarm_backends.management.supervisor.render import (
    LocalRedis,
    program_names,
    render,
    withheld_environment,
)


def ensure_dirs(host: Host) -> None:
    for path in (host.run_dir, host.log_dir, host.metrics_dir, str(Path(host.socket_path).parent)):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise SupervisorError(f"cannot create {path}: {exc.strerror}") from None


def write_private(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` at once, mode 0600 (the config names every path and setting).

    A temporary file renamed over it: a ``supervisorctl reread`` racing the write never reads half a config, and a
    file that had a wider mode is replaced by a private one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}-")  # created 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # the error that got here is the one to report
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise SupervisorError(f"cannot write {path}: {exc.strerror}") from None


def supervised_redis(host: Host) -> bool:
    """Whether supervisord answers on ``host``'s socket and has the ``redis`` program (in any state).

    Asked of supervisord rather than read from the config file: the file may already have been rendered without
    it (and ``reread`` then makes supervisord's config match the file), while the program keeps running until an
    ``update`` removes it.
    """
    try:
        return any(process.name == REDIS for process in Supervisor(host.socket_path).processes())
    except RPC_ERRORS:
        return False


@dataclass(frozen=True)
class Plan:
    """Everything a render needs, gathered once (template read, Redis decided): the same result for any host."""

    template_path: Path
    template: str
    profile: str
    redis: LocalRedis | None
    queue_name: Callable[[str], str]
    environ: Mapping[str, str] = field(repr=False)
    secrets: Collection[str] = field(repr=False)  # never in a repr, a traceback's locals included

    def render(self, host: Host) -> str:
        try:
            return render(
                self.template,
                host,
                self.profile,
                environ=self.environ,
                queue_name=self.queue_name,
                redis=self.redis,
                secrets=self.secrets,
            )
        except ValueError as exc:
            raise SupervisorError(f"{self.template_path}: {exc}") from None

    def programs(self, host: Host) -> list[str]:
        return program_names(host, self.profile, self.redis)

    def withheld(self) -> str | None:
        """What to tell the operator about the variables left out because they hold a secret (names only)."""
        return withheld_environment(self.environ, self.secrets)


def plan(
    conf: Any,
    host: Host,
    profile: str,
    *,
    template: str | None = None,
    redis_mode: str = REDIS_AUTO,
    environ: Mapping[str, str] | None = None,
    queue_name: Callable[[str], str] = str,
) -> Plan:
    """Read the template and decide the Redis program; writes nothing."""
    template_path = Path(template) if template else default_template(host.repo_dir)
    try:
        text = template_path.read_text()
    except OSError as exc:
        raise SupervisorError(f"cannot read the template {template_path}: {exc.strerror}") from None
    ours = redis_mode == REDIS_AUTO and supervised_redis(host)
    return Plan(
        template_path=template_path,
        template=text,
        profile=profile,
        redis=local_redis(conf, redis_mode, ours=ours),
        queue_name=queue_name,
        environ=os.environ if environ is None else environ,
        secrets=configured_secrets(conf),
    )


@dataclass(frozen=True)
class Rendered:
    path: str
    programs: list[str]
    redis: LocalRedis | None


def render_to_file(config: Plan, host: Host, output: str) -> Rendered:
    """Render ``config`` for ``host`` into ``output`` and create the directories the config names."""
    text = config.render(host)  # before anything is created: a template error leaves no trace
    ensure_dirs(host)
    write_private(output, text)
    return Rendered(path=output, programs=config.programs(host), redis=config.redis)


@dataclass(frozen=True)
class Checked:
    programs: list[str]  # as supervisord's parser read them
    stand_ins: list[str]  # directories that do not exist yet, validated through temporary stand-ins


def _with_stand_ins(host: Host, root: Path) -> tuple[Host, list[str]]:
    """``host`` with each directory supervisord's parser requires to exist, but that does not yet, under ``root``.

    On a fresh host the run and log directories are created by the first real render; the parser refuses a config
    whose log or pid file directory is missing, so those are validated through empty stand-ins instead.
    """
    socket_dir = str(Path(host.socket_path).parent)
    missing = [path for path in dict.fromkeys((host.run_dir, host.log_dir, socket_dir)) if not os.path.isdir(path)]
    if not missing:
        return host, []
    stand_in = replace(
        host,
        run_dir=str(root / "run") if host.run_dir in missing else host.run_dir,
        log_dir=str(root / "logs") if host.log_dir in missing else host.log_dir,
        socket_path=str(root / "sock" / Path(host.socket_path).name) if socket_dir in missing else host.socket_path,
    )
    for path in (stand_in.run_dir, stand_in.log_dir, str(Path(stand_in.socket_path).parent)):
        os.makedirs(path, exist_ok=True)
    return stand_in, missing


def check(config: Plan, host: Host) -> Checked:
    """Validate what ``config`` renders for ``host`` with supervisord's parser (see :func:`check_rendered`)."""
    return check_rendered(config.render, host)


def check_rendered(render_for: Callable[[Host], str], host: Host) -> Checked:
    """Validate what ``render_for`` renders for ``host`` with supervisord's parser, in a private temporary
    directory (the scheduler's config and the SaaS one alike).

    Nothing is written outside it: not the output path, not the run dir (``--check`` runs on live hosts).
    """
    with tempfile.TemporaryDirectory(prefix="bkm-check-") as tmp:
        stand_in, missing = _with_stand_ins(host, Path(tmp))
        path = Path(tmp) / CONFIG_NAME
        write_private(str(path), render_for(stand_in))
        try:
            names = validate_config(str(path))
        except SupervisorError as exc:
            # The message names the temporary file, which is gone by the time the operator reads it.
            raise SupervisorError(str(exc).replace(str(path), "the rendered config")) from None
    return Checked(programs=names, stand_ins=missing)
