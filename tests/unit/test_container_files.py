"""The Dockerfile (linted by hadolint, checked for a non-root user, tini and the right command) and the compose
file (every container runs exactly one program of the production supervisord config). No Docker engine needed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from alarm_backends.management.supervisor.render import BEAT, Host, beat_argv
from alarm_backends.management.supervisor.workers import FORMULA, PRODUCTION, workers

REPO = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.prefix) / "bin" / "hadolint"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(REPO / "Dockerfile"))


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_slim_python_311_base(dockerfile: DockerfileParser) -> None:
    assert dockerfile.baseimage.startswith("python:3.11-slim")


def test_runs_as_a_non_root_user(dockerfile: DockerfileParser) -> None:
    users = instructions(dockerfile, "USER")
    assert users, "no USER instruction: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit() and int(user) >= 1000
    assert "C_FORCE_ROOT" not in dockerfile.envs


def test_tini_is_pid_1_and_supervisord_runs_in_the_foreground(dockerfile: DockerfileParser) -> None:
    [entrypoint] = instructions(dockerfile, "ENTRYPOINT")
    assert shlex.split(entrypoint.strip("[]").replace(",", " ")) == ["/usr/bin/tini", "--"]
    [cmd] = instructions(dockerfile, "CMD")
    assert "manage.py render_supervisor --profile production" in cmd
    assert "exec supervisord --nodaemon -c /app/run/supervisord.conf" in cmd
    env = dockerfile.envs
    assert env["DEPLOY_MODE"] == "kubernetes"  # container mode: logs to stdout, one beat per deployment
    assert env["DJANGO_SETTINGS_MODULE"] == "settings"


def test_dependencies_come_from_pyproject(dockerfile: DockerfileParser) -> None:
    """The image installs the set `make run` installs, which CI's first run (.ci/first-run) proves sufficient in a
    fresh venv: a runtime dependency only the dev extras pulled in once broke both."""
    runs = " ".join(instructions(dockerfile, "RUN"))
    # The recipe of $(STAMP), the runtime install every target but the dev ones depends on.
    recipe = (REPO / "Makefile").read_text().split("$(STAMP): pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    [extras] = re.findall(r'\$\(PIP\) install --quiet "\.(\[[a-z,]+\])"', recipe)
    assert extras == "[embedded]"
    assert f'pip install --no-cache-dir ".{extras}"' in runs
    copies = instructions(dockerfile, "COPY")
    assert any(c.startswith("pyproject.toml") for c in copies)


# --- docker-compose.yml ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "support-files" / "docker-compose.yml").read_text())
    return data


def expected_commands() -> dict[str, list[str]]:
    """The production programs' command lines as a container runs them (``python`` on PATH, ``/app``)."""
    host = Host(repo_dir="/app", python="python", run_dir="/app/run", log_dir="/app/run/logs",
                socket_path="/app/run/supervisor.sock")  # fmt: skip
    commands = {BEAT: beat_argv(host)}
    for worker in workers(PRODUCTION):
        argv = [a.replace("%%", "%") for a in worker.argv("python", host.sizing(PRODUCTION))]
        if worker.concurrency == FORMULA:
            # The container's own CPU count decides: the app's worker_concurrency applies the formula.
            i = argv.index("-c")
            del argv[i : i + 2]
        commands[worker.name] = argv
    return commands


def test_every_program_has_a_container_running_exactly_its_command(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = expected_commands()
    backend = {name: svc for name, svc in services.items() if name not in ("redis", "rabbitmq", "consul")}
    assert set(backend) == {name.replace("_", "-") for name in expected}
    for program, argv in expected.items():
        assert backend[program.replace("_", "-")]["command"] == argv, program


def test_backend_containers_share_one_image_and_container_mode(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name in ("redis", "rabbitmq", "consul"):
            continue
        assert svc["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert os.path.normpath(REPO / "support-files" / svc["build"]["context"]) == str(REPO)
        env = svc["environment"]
        assert env["DEPLOY_MODE"] == "kubernetes"
        assert (env["BK_MONITOR_REDIS_HOST"], env["BK_MONITOR_RABBITMQ_HOST"]) == ("redis", "rabbitmq")
        assert "C_FORCE_ROOT" not in env
        assert set(svc["depends_on"]) == {"redis", "rabbitmq"}


def test_consul_is_optional(compose: dict[str, Any]) -> None:
    assert compose["services"]["consul"]["profiles"] == ["consul"]
    assert compose["services"]["celery-beat"]["environment"]["CONSUL_HOST"] == "${CONSUL_HOST:-}"


def test_rabbitmq_user_and_vhost_are_the_app_code(compose: dict[str, Any]) -> None:
    env = compose["services"]["rabbitmq"]["environment"]
    assert (env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_VHOST"]) == ("bkmonitorv3", "bkmonitorv3")
