"""The supervisord config of the scheduler (beat and the crontab workers, and the programs beside them in the
original's groups: ``supervisor_programs``), rendered for one host.

Pure: no I/O. The caller reads the template, probes Redis and writes the result (``supervisor_rpc``).

The worker programs and their profiles are in ``workers``. In container mode (``DEPLOY_MODE=kubernetes``) every
program logs to supervisord's stdout, where the container runtime collects it, instead of files.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from string import Template
from typing import Any

from alarm_backends.core.prometheus.exporter import check_address
from alarm_backends.management.supervisor.env_secrets import holds_secret
from alarm_backends.management.supervisor.programs import (
    BEAT,
    PROGRAM_PRIORITY,
    REDIS,
    REDIS_PRIORITY,
    SCHEDULER_GROUP,
    Host,
    Program,
    beat_argv,
    group_sections,
    optional_programs,
)
from alarm_backends.management.supervisor.workers import PRODUCTION, SMALL, check_profile, workers
from config.tools.validation import EXIT_CONFIG

GROUP = SCHEDULER_GROUP  # beat and the workers' group
LOCAL_HOSTS = ("127.0.0.1", "localhost")
TEMPLATE_NAME = "supervisor-bkmonitor-scheduler.conf"
# sun_path is 108 bytes on Linux and 104 on macOS; supervisord fails obscurely past it.
MAX_SOCKET_PATH = 100
# kombu's Redis transport restores unacked messages with ZRANGE ... BYSCORE REV, which Redis has since 6.2: an
# older server makes every prefork worker die at start-up.
MIN_REDIS_VERSION = (6, 2, 0)

# Variables the settings read; passed to every program so the rendered file also works when supervisord is started
# by something else (systemd, an init script). Secrets stay out of the file, wherever they sit in a value
# (``env_secrets``): programs inherit them from supervisord's own environment.
PASSTHROUGH_PREFIXES = ("BKAPP_", "BKM_", "BK_", "BKPAAS_", "REDIS_", "CONSUL_")
PASSTHROUGH_NAMES = frozenset(
    {"APP_ID", "APP_CODE", "DEPLOY_MODE", "DJANGO_CONF_MODULE", "MAIL_REPORT_BIZ", "API_CACHE_BASE_INTERVAL"}
)
# Set by the renderer from the host, whatever the environment says: never "left out".
OWN_VARIABLES = frozenset({"DJANGO_SETTINGS_MODULE", "BKM_RUN_DIR", "PROMETHEUS_MULTIPROC_DIR"})
# supervisor's config parser ends a value at whitespace followed by ";" or "#" (an inline comment).
_INLINE_COMMENT = re.compile(r"\s[;#]")

# A program refused for its configuration exits with status 2 (config.tools.validation.EXIT_CONFIG) and the line
# naming the culprit: restarting it cannot help, so 2 is the one "expected" exit code and everything else (a crash,
# a signal, a clean exit 0) is restarted. One that exits within startsecs is retried startretries times, then
# FATAL; one that took longer to get there (a loaded host) ends EXITED: no restart loop either way.
PROGRAM_SECTION = Template(
    """\
[program:${name}]
command=${command}
directory=${repo_dir}
numprocs=1
priority=${priority}
autostart=true
autorestart=unexpected
exitcodes=${config_exit}
startsecs=5
startretries=3
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=${logfile}
stdout_logfile_maxbytes=${logfile_maxbytes}
stdout_logfile_backups=${logfile_backups}
environment=${environment}
"""
)


@dataclass(frozen=True)
class LocalRedis:
    """A Redis for a single machine: loopback only, its data kept in an append-only file in the run dir."""

    binary: str
    port: int

    def argv(self, run_dir: str) -> list[str]:
        # AOF, fsync'd every second: a restart (`make stop` / `make run`, supervisord restarting it) keeps the
        # schedule's history and the queued messages. A store that came back empty made every entry new again.
        listen = ("--bind", "127.0.0.1", "--port", str(self.port))
        aof = ("--appendonly", "yes", "--appendfsync", "everysec")
        return [self.binary, *listen, "--save", "", *aof, "--dir", run_dir]


def parse_redis_version(text: str) -> tuple[int, int, int] | None:
    """``Redis server v=7.0.15 sha=…`` (``redis-server --version``) → ``(7, 0, 15)``."""
    match = re.search(r"\bv=(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def needs_local_redis(conf: Any, answers: bool) -> bool:
    """Whether this host should run its own Redis: nothing answers where the settings point, and that is here."""
    return conf.REDIS_MODE == "standalone" and str(conf.REDIS_HOST) in LOCAL_HOSTS and not answers


def all_programs(
    host: Host, profile: str, redis: LocalRedis | None = None, queue_name: Callable[[str], str] = str
) -> list[Program]:
    """Every program of a rendered config, in start order."""
    programs = [Program(REDIS, tuple(redis.argv(host.run_dir)), "", REDIS_PRIORITY, wrapped=False)] if redis else []
    programs.append(Program(BEAT, tuple(beat_argv(host))))
    programs += [
        Program(w.name, tuple(w.argv(host.python, host.sizing(profile), queue_name))) for w in workers(profile)
    ]
    return programs + optional_programs(host)


def program_names(host: Host, profile: str, redis: LocalRedis | None = None) -> list[str]:
    """The names of :func:`all_programs`."""
    return [program.name for program in all_programs(host, profile, redis)]


def _settings_related(name: str) -> bool:
    return name in PASSTHROUGH_NAMES or name.startswith(PASSTHROUGH_PREFIXES)


def passthrough_environment(environ: Mapping[str, str], secrets: Collection[str] = ()) -> dict[str, str]:
    """The settings-related variables of ``environ`` that hold no secret; ``secrets``: the settings' own."""
    return {
        name: value
        for name, value in sorted(environ.items())
        if _settings_related(name) and not holds_secret(name, value, secrets)
    }


def withheld_environment(environ: Mapping[str, str], secrets: Collection[str] = ()) -> str | None:
    """The line the commands print about the settings-related variables left out because they hold a secret.

    Names only (a name is never a secret's value): the rule errs on the side of leaving out, so the operator sees
    which variables the programs must inherit from supervisord's environment.
    """
    names = sorted(
        name
        for name, value in environ.items()
        if _settings_related(name) and name not in OWN_VARIABLES and holds_secret(name, value, secrets)
    )
    if not names:
        return None
    inherited = "they hold a secret; programs inherit them from supervisord's environment"
    return f"left out of environment= ({inherited}): {', '.join(names)}"


def env_value(value: str) -> str | None:
    """``value`` quoted for supervisor's ``environment=``, or None when its parser cannot read it back intact.

    The parser is shlex in non-POSIX mode followed by stripping quote characters from both ends, then ``%``
    expansion: a value may hold one kind of quote but not both, nor begin or end with one.
    """
    if not value:
        return '""'
    if "\n" in value or "\r" in value or _INLINE_COMMENT.search(value) or value[0] in "'\"" or value[-1] in "'\"":
        return None
    if '"' in value and "'" in value:
        return None
    quote = "'" if '"' in value else '"'
    return quote + value.replace("%", "%%") + quote


def conf_module_for(host: Host, profile: str, environ: Mapping[str, str]) -> str:
    """The ``DJANGO_CONF_MODULE`` the programs run: the one given, else the production module for the production
    profile (what the original's environ.sh exported: ``conf.worker.production.<platform>``), else the renderer's
    own. Written into the file, so the programs never run another config than the render was checked with (a
    production render without the variable ran the development config)."""
    given = environ.get("DJANGO_CONF_MODULE")
    if given:
        return given
    return f"conf.worker.production.{host.platform}" if profile == PRODUCTION else host.conf_module


def environment_line(
    host: Host,
    environ: Mapping[str, str],
    metrics_dir: str | None = None,
    secrets: Collection[str] = (),
    conf_module: str = "",
) -> str:
    """Every program's ``environment=``; ``metrics_dir``: where they write their metrics for the exporter;
    ``secrets``: the settings' secret values (``env_secrets.configured_secrets``), kept out wherever they sit."""
    env = passthrough_environment(environ, secrets)
    if conf_module:
        env["DJANGO_CONF_MODULE"] = conf_module
    # The run dir is fixed for the programs even when it came from the default, so they agree with supervisord.
    env.update({"DJANGO_SETTINGS_MODULE": "settings", "BKM_RUN_DIR": host.run_dir})
    if metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    pairs = []
    for name, value in sorted(env.items()):
        quoted = env_value(value)
        if quoted is not None:  # otherwise inherited from supervisord's environment
            pairs.append(f"{name}={quoted}")
    return ",".join(pairs)


def check_path(what: str, path: str) -> str:
    """A path written verbatim into the config: it must survive supervisor's parser unchanged."""
    if "%" in path or "\n" in path or _INLINE_COMMENT.search(path) or path != path.strip():
        raise ValueError(
            f"{what} {path!r} cannot be written into a supervisord config "
            "(no '%', newline, surrounding blanks, or ';'/'#' after a blank): choose another directory"
        )
    return path


def check_host(host: Host) -> Host:
    for what, path in (
        *((("SUPERVISOR_ENVIRON_SH", host.environ_sh),) if host.environ_sh else ()),
        *((("PROM_AGG_GATEWAY_BINARY", host.gateway_binary),) if host.gateway_binary else ()),
        ("the repository directory", host.repo_dir),
        ("the Python interpreter", host.python),
        ("the run directory (BKM_RUN_DIR)", host.run_dir),
        ("the log directory (BK_LOG_DIR)", host.log_dir),
        ("the supervisor socket (SUPERVISOR_SERVER)", host.socket_path),
    ):
        check_path(what, path)
    if host.metrics_port:  # checked when rendering, so a bad value never keeps `platform stop` from stopping
        check_address(host.metrics_host, host.metrics_port)
    if len(host.socket_path.encode()) > MAX_SOCKET_PATH:
        raise ValueError(
            f"the supervisor socket path {host.socket_path!r} is longer than {MAX_SOCKET_PATH} bytes, "
            "the limit of a unix socket: use a shorter BKM_RUN_DIR"
        )
    return host


def command_line(argv: list[str]) -> str:
    """``argv`` as supervisor splits it back (``shlex.split``); an empty argument is written ``""``."""
    return " ".join(shlex.quote(arg) if arg else '""' for arg in argv)


def program_section(host: Host, name: str, argv: list[str], environment: str, priority: int) -> str:
    """``argv`` run through ``SUPERVISOR_ENVIRON_SH`` when it is set (see supervisor_programs)."""
    return _section(host, Program(name, tuple(argv), priority=priority), environment)


def _section(host: Host, program: Program, environment: str) -> str:
    maxbytes, backups = host.log_rotation()
    return PROGRAM_SECTION.substitute(
        name=program.name,
        command=command_line(program.command(host.environ_sh)),
        repo_dir=host.repo_dir,
        priority=program.priority,
        logfile=host.logfile(program.name),
        logfile_maxbytes=maxbytes,
        logfile_backups=backups,
        environment=environment,
        config_exit=EXIT_CONFIG,
    )


def substitute(template: str, values: Mapping[str, str]) -> str:
    """``string.Template`` substitution whose errors say what is wrong with the template."""
    try:
        return Template(template).substitute(values)
    except KeyError as exc:
        known = ", ".join(sorted(values))
        raise ValueError(f"the template uses ${{{exc.args[0]}}}, which has no value (known: {known})") from None
    except ValueError as exc:  # a lone "$" or a malformed placeholder
        raise ValueError(f"the template is malformed: {exc} (write a literal dollar sign as $$)") from None


def render(
    template: str,
    host: Host,
    profile: str = SMALL,
    *,
    environ: Mapping[str, str] | None = None,
    queue_name: Callable[[str], str] = str,
    redis: LocalRedis | None = None,
    secrets: Collection[str] = (),
) -> str:
    """The supervisord config for ``host``; ``queue_name`` scopes queue names by cluster; ``secrets``: the
    settings' secret values, which no variable passed on may hold."""
    check_profile(profile)
    check_host(host)
    conf_module = conf_module_for(host, profile, environ or {})
    env = environment_line(host, environ or {}, host.metrics_dir, secrets, conf_module)
    programs = all_programs(host, profile, redis, queue_name)
    sections = [_section(host, program, env) for program in programs]
    maxbytes, backups = host.log_rotation()
    values = {
        "profile": profile,
        "repo_dir": host.repo_dir,
        "run_dir": host.run_dir,
        "log_dir": host.log_dir,
        "socket_path": host.socket_path,
        "programs": "\n".join(sections),
        "groups": group_sections(programs),
        # A template of an earlier release names one group: the scheduler's.
        "group": GROUP,
        "group_programs": ",".join(p.name for p in programs if p.group == GROUP),
        "supervisord_logfile": host.logfile("supervisord"),
        "logfile_maxbytes": maxbytes,
        "logfile_backups": backups,
        "group_priority": str(PROGRAM_PRIORITY),
    }
    return substitute(template, values)
