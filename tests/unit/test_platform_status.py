"""``platform status`` prints supervisord's description of each program, except that a stop time (supervisord's own
``%b %d %I:%M %p`` in its process's local time, no zone) is given with its UTC offset in Django's TIME_ZONE, as every
time the commands print. The descriptions come from supervisor's own ``_interpretProcessInfo``."""

from __future__ import annotations

import calendar
import re
from typing import Any

import pytest
from django.test import override_settings
from supervisor.rpcinterface import SupervisorNamespaceRPCInterface
from supervisor.states import ProcessStates, getProcessStateDescription

from alarm_backends.management.commands.platform import detail
from alarm_backends.management.supervisor.control import ProcessInfo

TOO_QUICK = "Exited too quickly (process log may have details)"
STOP = calendar.timegm((2026, 12, 6, 3, 49, 7))  # 11:49:07 in Asia/Shanghai
START = STOP - 3600


def info(state: int, start: int, stop: int, spawnerr: str = "") -> dict[str, Any]:
    """getProcessInfo's answer, its description made by supervisord's own code."""
    raw = {"name": "beat", "group": "beat", "state": state, "statename": getProcessStateDescription(state),
           "start": start, "stop": stop, "now": STOP + 60, "pid": 0 if stop else 4242, "spawnerr": spawnerr,
           "stdout_logfile": "/tmp/beat.log"}  # fmt: skip
    raw["description"] = SupervisorNamespaceRPCInterface._interpretProcessInfo(None, raw)
    return raw


@pytest.mark.parametrize("state", [ProcessStates.EXITED, ProcessStates.STOPPED])
@override_settings(TIME_ZONE="Asia/Shanghai")
def test_a_stop_time_carries_its_zone(state: int) -> None:
    raw = info(state, START, STOP)
    assert re.fullmatch(r"Dec 06 \d\d:49 [AP]M", raw["description"])  # supervisord's: local to it, no zone
    assert detail(ProcessInfo.from_rpc(raw)) == "stopped 2026-12-06 11:49:07+08:00"


@pytest.mark.parametrize(
    ("state", "start", "stop", "spawnerr", "expected"),
    [
        (ProcessStates.RUNNING, START, 0, "", "pid 4242, uptime 1:01:00"),
        (ProcessStates.FATAL, START, STOP, TOO_QUICK, TOO_QUICK),
        (ProcessStates.STOPPED, 0, 0, "", "Not started"),
    ],
)
@override_settings(TIME_ZONE="Asia/Shanghai")
def test_other_descriptions_are_supervisords(state: int, start: int, stop: int, spawnerr: str, expected: str) -> None:
    assert detail(ProcessInfo.from_rpc(info(state, start, stop, spawnerr))) == expected
