"""The supervisord config of a SaaS host: the original's two workers (with distinct node names), the dev profile's
beat after migrate, and validation with supervisord's own parser."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from alarm_backends.management.supervisor.render import Host
from alarm_backends.management.supervisor.saas import (
    BEAT_TEMPLATE_NAME,
    DEV,
    EXAMPLE_HOST,
    PROD,
    TEMPLATE_NAME,
    SaasHost,
    render_saas,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "support-files" / "templates"
TEMPLATE = (TEMPLATES / TEMPLATE_NAME).read_text()
BEAT_TEMPLATE = (TEMPLATES / BEAT_TEMPLATE_NAME).read_text()
MANAGE = str(REPO / "manage.py")
APP = "bkm"


@pytest.fixture
def saas(tmp_path: Path) -> SaasHost:
    run_dir = tmp_path / "run"
    log_dir = run_dir / "logs" / APP
    log_dir.mkdir(parents=True)
    host = Host(str(REPO), sys.executable, str(run_dir), str(log_dir), str(run_dir / "saas.sock"))
    return SaasHost(host=host, app_code=APP)


def programs(text: str, tmp_path: Path) -> dict[str, Any]:
    """The rendered text's programs as supervisord reads them, by name."""
    path = tmp_path / "saas-supervisord.conf"
    path.write_text(text)
    options = ServerOptions()
    options.configfile = str(path)
    options.process_config(do_usage=False)
    return {p.name: p for group in options.process_group_configs for p in group.process_configs}


def node(argv: list[str]) -> str:
    return argv[argv.index("-n") + 1]


def test_prod_runs_the_originals_two_workers(saas: SaasHost, tmp_path: Path) -> None:
    procs = programs(render_saas(TEMPLATE, BEAT_TEMPLATE, saas, PROD), tmp_path)
    assert sorted(procs) == [f"{APP}_celery", f"{APP}_celery_resource"]
    celery = shlex.split(procs[f"{APP}_celery"].command)
    resource = shlex.split(procs[f"{APP}_celery_resource"].command)
    # supervisor has turned %%h into %h, which Celery expands to the host name.
    assert celery == [sys.executable, MANAGE, "celery", "worker", "-n", f"{APP}@%h", "-l", "INFO", "--autoscale=6,1"]
    assert resource == [
        *(sys.executable, MANAGE, "celery", "worker", "-n", f"{APP}-resource@%h", "-l", "INFO", "--autoscale=4,1"),
        *("-Q", "celery_resource"),
    ]


def test_each_worker_has_its_own_node_name(saas: SaasHost, tmp_path: Path) -> None:
    """The original's bug, fixed: both workers ran with `-n {{.app_code}}{{.node_name}}`."""
    for profile in (PROD, DEV):
        procs = programs(render_saas(TEMPLATE, BEAT_TEMPLATE, saas, profile), tmp_path)
        names = [node(argv) for argv in (shlex.split(p.command) for p in procs.values()) if "-n" in argv]
        assert len(names) == 2 and len(set(names)) == 2


def test_programs_are_supervised_as_the_originals(saas: SaasHost, tmp_path: Path) -> None:
    procs = programs(render_saas(TEMPLATE, BEAT_TEMPLATE, saas, DEV), tmp_path)
    logs = {name: Path(p.stdout_logfile) for name, p in procs.items()}
    # logs/<app_code>/…, one file per program: two programs rotating one file corrupt it.
    assert {path.parent for path in logs.values()} == {Path(saas.host.log_dir)}
    assert logs[f"{APP}_celery"].name == "celery.log" and len(set(logs.values())) == 3
    for p in procs.values():
        assert (p.stopwaitsecs, p.autostart, p.redirect_stderr) == (10, True, True)
        assert p.autorestart is RestartUnconditionally
        assert p.directory == str(REPO)
        assert p.environment["DJANGO_SETTINGS_MODULE"] == "settings"
        assert p.environment["BKM_RUN_DIR"] == saas.host.run_dir
        assert "C_FORCE_ROOT" not in p.environment


def test_server_is_a_private_unix_socket_and_no_web_server(saas: SaasHost) -> None:
    text = render_saas(TEMPLATE, BEAT_TEMPLATE, saas, DEV)
    assert f"file={saas.host.socket_path}\nchmod=0700\n" in text
    assert f"pidfile={saas.pidfile}" in text
    # The comments say why these are absent; the settings must not have them.
    lines = "\n".join(line for line in text.splitlines() if not line.startswith(";"))
    assert not [word for word in ("inet_http_server", "C_FORCE_ROOT", "gunicorn", "runserver") if word in lines]


def test_dev_profile_adds_beat_after_migrate(saas: SaasHost, tmp_path: Path) -> None:
    prod = programs(render_saas(TEMPLATE, BEAT_TEMPLATE, saas, PROD), tmp_path)
    procs = programs(render_saas(TEMPLATE, BEAT_TEMPLATE, saas, DEV), tmp_path)
    assert set(procs) - set(prod) == {f"{APP}_celery_beat"}
    shell, flag, script = shlex.split(procs[f"{APP}_celery_beat"].command)
    assert (shell, flag) == ("sh", "-c")
    migrate, beat = script.split(" && exec ")
    assert shlex.split(migrate) == [sys.executable, MANAGE, "migrate", "--noinput"]
    # No -S: the scheduler is the app's beat_scheduler (the database one).
    assert shlex.split(beat) == [sys.executable, MANAGE, "celery", "beat", "-l", "INFO"]


def test_paths_with_blanks_and_quotes_survive_both_levels_of_quoting(saas: SaasHost, tmp_path: Path) -> None:
    odd = tmp_path / "it's a dir"
    odd.mkdir()
    saas = replace(saas, host=replace(saas.host, repo_dir=str(odd), python=str(odd / "py thon")))
    procs = programs(render_saas(TEMPLATE, BEAT_TEMPLATE, saas, DEV), tmp_path)
    assert shlex.split(procs[f"{APP}_celery"].command)[:2] == [str(odd / "py thon"), str(odd / "manage.py")]
    script = shlex.split(procs[f"{APP}_celery_beat"].command)[2]
    assert shlex.split(script)[:3] == [str(odd / "py thon"), str(odd / "manage.py"), "migrate"]


@pytest.mark.parametrize("app_code", ["bad:name", "with space", "", "-dash"])
def test_an_app_code_that_cannot_name_programs_is_refused(saas: SaasHost, app_code: str) -> None:
    with pytest.raises(ValueError, match="APP_CODE"):
        render_saas(TEMPLATE, BEAT_TEMPLATE, replace(saas, app_code=app_code))


def test_unknown_profile_is_refused(saas: SaasHost) -> None:
    with pytest.raises(ValueError, match="unknown profile 'small'"):
        render_saas(TEMPLATE, BEAT_TEMPLATE, saas, "small")


def test_from_settings_puts_logs_under_the_app_code(saas: SaasHost) -> None:
    host = SaasHost.from_settings(settings, python=sys.executable)
    assert host.app_code == settings.APP_CODE
    assert host.host.log_dir == str(Path(settings.LOG_PATH) / settings.APP_CODE)
    assert host.host.socket_path == str(Path(settings.RUN_DIR) / "saas-supervisord.sock")
    assert host.config_path == str(Path(settings.RUN_DIR) / "saas-supervisord.conf")


def test_shipped_example_is_the_rendered_template() -> None:
    """support-files/supervisord.conf is regenerated, not edited: `manage.py render_saas_supervisor --example
    --output support-files/supervisord.conf`."""
    example = (REPO / "support-files" / "supervisord.conf").read_text()
    assert example == render_saas(TEMPLATE, BEAT_TEMPLATE, EXAMPLE_HOST, PROD, environ={})


def test_command_writes_a_private_config_that_supervisord_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "saas.conf"
    # --check writes nothing, as render_supervisor's: validated in a private temporary directory.
    call_command("render_saas_supervisor", "--profile", "dev", "--output", str(output), "--check")
    out = capsys.readouterr().out
    assert f"would write {output} (dev profile: " in out and "_celery_beat" in out
    assert "supervisord accepts it: 3 programs (nothing written)" in out
    assert not (tmp_path / "out").exists()
    call_command("render_saas_supervisor", "--profile", "dev", "--output", str(output))
    assert f"wrote {output} (dev profile: " in capsys.readouterr().out
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o600
    # supervisord needs the log directory to exist: the command created it.
    assert Path(settings.LOG_PATH, settings.APP_CODE).is_dir()


def test_command_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'small'"):
        call_command("render_saas_supervisor", "--profile", "small")
    with pytest.raises(CommandError, match="cannot read the template"):
        call_command("render_saas_supervisor", "--template-dir", str(tmp_path), "--output", str(tmp_path / "x"))
    (tmp_path / TEMPLATE_NAME).write_text("${nope}\n")
    (tmp_path / BEAT_TEMPLATE_NAME).write_text("")
    with pytest.raises(CommandError, match=r"uses \$\{nope\}"):
        call_command("render_saas_supervisor", "--template-dir", str(tmp_path), "--output", str(tmp_path / "x"))
    # --check with the example's paths, which do not exist here, is refused by the validation.
    with pytest.raises(CommandError, match=r"not executable|not a valid supervisord config"):
        call_command("render_saas_supervisor", "--example", "--output", str(tmp_path / "ex.conf"), "--check")
