"""The programs beside beat and the workers, as the original's supervisord config groups and runs them: the
``selfmonitor`` and ``service`` groups, the aggregation gateway and the ``environ.sh`` wrapper — read back with
supervisord's own parser."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.test import override_settings
from supervisor.options import ServerOptions

from alarm_backends.management.supervisor import saas, workers
from alarm_backends.management.supervisor.programs import BEAT, CONSOLE, GATEWAY, HEALTHZ, REDIS
from alarm_backends.management.supervisor.render import Host, LocalRedis, render
from alarm_backends.management.supervisor.workers import SMALL
from tests.unit.test_supervisor_render import REPO, TEMPLATE, host, parse, programs

__all__ = ["host"]  # the fixture, shared with the renderer's tests


def groups_of(options: ServerOptions) -> dict[str, list[str]]:
    return {g.name: [p.name for p in g.process_configs] for g in options.process_group_configs}


def test_the_healthz_daemon_is_the_originals_program_unless_its_interval_is_0(host: Host, tmp_path: Path) -> None:
    assert HEALTHZ not in programs(parse(render(TEMPLATE, host, SMALL), tmp_path))
    options = parse(render(TEMPLATE, replace(host, healthz_interval=600), SMALL), tmp_path)
    # The original's command line, `manage.py healthz -d -i 600`, in the original's group: `selfmonitor:*` works.
    assert shlex.split(programs(options)[HEALTHZ].command) == [
        sys.executable, f"{REPO}/manage.py", "healthz", "-d", "-i", "600"
    ]  # fmt: skip
    assert groups_of(options)["selfmonitor"] == [HEALTHZ]
    assert HEALTHZ not in groups_of(options)["scheduler"]
    with override_settings(HEALTHZ_DAEMON_INTERVAL=120):
        assert Host.from_settings(settings, sys.executable).healthz_interval == 120


def test_the_console_is_served_by_gunicorn_on_its_loopback_address_unless_its_port_is_0(
    host: Host, tmp_path: Path
) -> None:
    assert CONSOLE not in programs(parse(render(TEMPLATE, replace(host, console_port=0), SMALL), tmp_path))
    for address, bind in (("127.0.0.1", "127.0.0.1:10207"), ("::1", "[::1]:10207")):
        options = parse(render(TEMPLATE, replace(host, console_port=10207, console_host=address), SMALL), tmp_path)
        assert shlex.split(programs(options)[CONSOLE].command) == [
            sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", bind, "--workers", "2",
            "--chdir", str(REPO), "--access-logfile", "-",
        ]  # fmt: skip
        # A group of its own: not the scheduler's, so `supervisorctl restart scheduler:*` leaves it be.
        assert groups_of(options)[CONSOLE] == [CONSOLE]
    configured = Host.from_settings(settings, sys.executable)
    assert (configured.console_host, configured.console_port) == ("127.0.0.1", 10207)  # the defaults


def test_the_originals_aggregation_gateway_program_when_its_binary_is_set(host: Host, tmp_path: Path) -> None:
    assert GATEWAY not in programs(parse(render(TEMPLATE, host, SMALL), tmp_path))
    gateway = replace(host, gateway_binary="/opt/bkmonitor/bin/prom-aggregation-gateway", gateway_port=10206)
    options = parse(render(TEMPLATE, gateway, SMALL), tmp_path)
    # The original's program: UDP and HTTP on one port, in its `service` group, never through environ.sh.
    assert shlex.split(programs(options)[GATEWAY].command) == [
        "/opt/bkmonitor/bin/prom-aggregation-gateway", "--aggate_listen_udp=:10206", "--aggate_listen_http=:10206"
    ]  # fmt: skip
    assert groups_of(options)["service"] == [GATEWAY]
    with override_settings(PROM_AGG_GATEWAY_BINARY="/usr/bin/gw", PROM_AGG_GATEWAY_PORT=10300):
        configured = Host.from_settings(settings, sys.executable)
    assert (configured.gateway_binary, configured.gateway_port) == ("/usr/bin/gw", 10300)


def test_with_an_environ_sh_every_program_sources_it_first_as_in_the_original(host: Host, tmp_path: Path) -> None:
    environ_sh = "/opt/bkmonitor/bin/environ.sh"
    wrapped = replace(host, environ_sh=environ_sh, healthz_interval=600, gateway_binary="/opt/gw")
    redis = LocalRedis("/usr/bin/redis-server", 6379)
    procs = programs(parse(render(TEMPLATE, wrapped, SMALL, redis=redis), tmp_path))
    plain = programs(parse(render(TEMPLATE, replace(host, healthz_interval=600, gateway_binary="/opt/gw"), SMALL,
                                  redis=redis), tmp_path))  # fmt: skip
    for name, proc in procs.items():
        argv = shlex.split(proc.command)
        if name in (REDIS, GATEWAY):  # the platform's own Redis and the gateway binary: as without the file
            assert proc.command == plain[name].command
            continue
        assert argv[:2] == ["bash", "-c"], name
        # What bash runs: the file sourced, then the very command line the program has without it.
        assert argv[2] == f"source {environ_sh} && exec {plain[name].command}", name


def test_a_template_of_an_earlier_release_still_renders_the_scheduler_group(host: Host, tmp_path: Path) -> None:
    earlier = TEMPLATE.replace("${groups}", "[group:${group}]\nprograms=${group_programs}\npriority=${group_priority}")
    options = parse(render(earlier, replace(host, healthz_interval=600), SMALL), tmp_path)
    assert BEAT in groups_of(options)["scheduler"] and HEALTHZ not in groups_of(options)["scheduler"]


def test_every_profile_can_be_chosen_on_the_render_commands() -> None:
    # --profile's choices are the described profiles: one left out there could not be rendered.
    assert tuple(workers.PROFILE_DESCRIPTIONS) == workers.PROFILES
    assert tuple(saas.PROFILE_DESCRIPTIONS) == saas.PROFILES
