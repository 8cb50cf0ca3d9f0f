"""The supervisord config of a SaaS host: the SaaS app's two Celery workers, and its beat in the dev profile.

Pure: no I/O. ``manage.py render_saas_supervisor`` reads the templates and writes the result. Paths, quoting and
the environment line are the backend config's (``supervisor``), so both configs survive supervisor's parser the
same way.

The programs are the original's ``support-files/supervisord.conf``: ``manage.py celery worker -n
<app_code><node> -l INFO --autoscale=6,1`` and the same with ``--autoscale=4,1 -Q celery_resource``, except that
each worker has its own node name (the original gave both the same one).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alarm_backends.management.supervisor.render import Host, check_host, command_line, environment_line, substitute
from config.celery.schedule import RESOURCE_QUEUE

PROD, DEV = "prod", "dev"
PROFILES = (PROD, DEV)
# What each profile runs, in a phrase (``render_saas_supervisor --profile``'s help).
PROFILE_DESCRIPTIONS = {
    PROD: "the two workers, as the original's support-files/supervisord.conf",
    DEV: "also the SaaS beat, after `manage.py migrate --noinput`",
}
TEMPLATE_NAME = "supervisor-saas.conf"
# The dev profile's extra program, rendered into the main template's ${beat_program}.
BEAT_TEMPLATE_NAME = "supervisor-saas-beat.conf"
# Beside the backend's files in the same run dir, so one machine can run both supervisords.
CONFIG_NAME = "saas-supervisord.conf"
SOCKET_NAME = "saas-supervisord.sock"
PIDFILE_NAME = "saas-supervisord.pid"
# %%h: supervisor turns it into %h, which Celery expands to the host name.
NODE_HOST = "@%%h"
# An app code names programs and Celery nodes: no ":" (supervisor's group separator), blanks or quotes.
_APP_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class SaasHost:
    """Where the SaaS programs run: the backend's ``Host`` paths plus the app code that names them."""

    host: Host
    app_code: str

    @classmethod
    def from_settings(cls, conf: Any, python: str) -> SaasHost:
        """Logs under ``<LOG_PATH>/<APP_CODE>/`` as the original's ``logs/{{.app_code}}/``; socket in the run dir."""
        run_dir = str(conf.RUN_DIR)
        host = Host(
            repo_dir=str(conf.BASE_DIR),
            python=python,
            run_dir=run_dir,
            log_dir=str(Path(conf.LOG_PATH) / conf.APP_CODE),
            socket_path=str(Path(run_dir) / SOCKET_NAME),
        )
        return cls(host=host, app_code=str(conf.APP_CODE))

    @property
    def config_path(self) -> str:
        return str(Path(self.host.run_dir) / CONFIG_NAME)

    @property
    def pidfile(self) -> str:
        return str(Path(self.host.run_dir) / PIDFILE_NAME)


# What `manage.py render_saas_supervisor --example` renders into support-files/supervisord.conf: the original's
# container layout ({{.app_container_path}} = /app/, code in /app/code/), prod profile, no environment passed on.
EXAMPLE_HOST = SaasHost(
    host=Host(
        repo_dir="/app/code",
        python="/app/code/.venv/bin/python",
        run_dir="/app/run",
        log_dir="/app/logs/bkmonitorv3",
        socket_path=f"/app/run/{SOCKET_NAME}",
    ),
    app_code="bkmonitorv3",
)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    return profile


def check_app_code(app_code: str) -> str:
    if not _APP_CODE.fullmatch(app_code):
        raise ValueError(
            f"APP_CODE {app_code!r} cannot name supervisord programs and Celery nodes: "
            "use letters, digits, '_', '.' and '-'"
        )
    return app_code


def manage_argv(host: Host, *args: str) -> list[str]:
    """``<python> <repo>/manage.py <args>``: an absolute path, so the command does not depend on the cwd."""
    return [host.python, str(Path(host.repo_dir) / "manage.py"), *args]


def worker_argv(saas: SaasHost, node: str, autoscale: str, queue: str | None = None) -> list[str]:
    """``manage.py celery worker -n <app_code><node>@%h -l INFO --autoscale=<max,min> [-Q <queue>]``."""
    args = ["celery", "worker", "-n", f"{saas.app_code}{node}{NODE_HOST}", "-l", "INFO", f"--autoscale={autoscale}"]
    return manage_argv(saas.host, *args, *(["-Q", queue] if queue else []))


def celery_argv(saas: SaasHost) -> list[str]:
    """The worker of Celery's default queue (``celery``)."""
    return worker_argv(saas, "", "6,1")


def celery_resource_argv(saas: SaasHost) -> list[str]:
    """The worker of ``celery_resource``; its node is ``<app_code>-resource@<host>``."""
    return worker_argv(saas, "-resource", "4,1", RESOURCE_QUEUE)


def beat_argv(saas: SaasHost) -> list[str]:
    """``sh -c '<manage.py migrate --noinput> && exec <manage.py celery beat -l INFO>'``.

    Beat needs django-celery-beat's tables, so the dev profile creates them first (idempotent: nothing to apply
    the second time). The scheduler comes from the app's ``beat_scheduler``.
    """
    migrate = command_line(manage_argv(saas.host, "migrate", "--noinput"))
    beat = command_line(manage_argv(saas.host, "celery", "beat", "-l", "INFO"))
    return ["sh", "-c", f"{migrate} && exec {beat}"]


def program_names(saas: SaasHost, profile: str) -> list[str]:
    names = [f"{saas.app_code}_celery", f"{saas.app_code}_celery_resource"]
    return [*names, f"{saas.app_code}_celery_beat"] if check_profile(profile) == DEV else names


def render_saas(
    template: str,
    beat_template: str,
    saas: SaasHost,
    profile: str = PROD,
    *,
    environ: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
) -> str:
    """The supervisord config of ``saas`` for ``profile``; ``environ`` gives the settings variables passed on,
    except those holding a secret (the backend's rule: ``env_secrets``; ``secrets``: the settings' own)."""
    check_profile(profile)
    check_host(saas.host)
    check_app_code(saas.app_code)
    host = saas.host
    values = {
        "profile": profile,
        "app_code": saas.app_code,
        "repo_dir": host.repo_dir,
        "run_dir": host.run_dir,
        "log_dir": host.log_dir,
        "socket_path": host.socket_path,
        "pidfile": saas.pidfile,
        "environment": environment_line(host, environ or {}, secrets=secrets),
        "celery_command": command_line(celery_argv(saas)),
        "celery_resource_command": command_line(celery_resource_argv(saas)),
        "beat_command": command_line(beat_argv(saas)),
    }
    values["beat_program"] = substitute(beat_template, values) if profile == DEV else ""
    return substitute(template, values)
