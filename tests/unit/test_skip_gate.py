"""The skip gate (tests/gate.py): under BKM_REQUIRE_SERVICES=1 a run with a skipped test exits non-zero.

Each case runs an inner pytest session (pytester, in this process) whose conftest wires the gate in exactly as
tests/conftest.py does, so what is checked is the exit status ``.ci/run`` sees.
"""

from __future__ import annotations

import pytest

from tests.gate import GATE_VARIABLE, SkipGate, services_required

pytest_plugins = ["pytester"]

CONFTEST = """
from tests.gate import install_skip_gate


def pytest_configure(config):
    install_skip_gate(config)
"""

SKIPPING = """
import pytest


def test_runs():
    pass


def test_skips():
    pytest.skip("no widget here")


@pytest.mark.skipif(True, reason="marked off")
def test_marked():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def gate(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    if on:
        monkeypatch.setenv(GATE_VARIABLE, "1")
    else:
        monkeypatch.delenv(GATE_VARIABLE, raising=False)


def test_this_session_has_the_gate_exactly_when_it_is_on(request: pytest.FixtureRequest) -> None:
    """tests/conftest.py registers it: the wiring the inner sessions copy is the real one."""
    assert request.config.pluginmanager.has_plugin(SkipGate.NAME) is services_required()


@pytest.mark.parametrize("on", [True, False], ids=["gate", "no-gate"])
def test_a_skip_fails_the_run_only_under_the_gate(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, on: bool
) -> None:
    gate(monkeypatch, on=on)
    inner.makepyfile(test_inner=SKIPPING)
    result = inner.runpytest()
    result.assert_outcomes(passed=1, skipped=2)
    if not on:
        assert result.ret == pytest.ExitCode.OK
        result.stdout.no_fnmatch_line("*the run fails*")
        return
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"*{GATE_VARIABLE}=1: 2 skipped, the run fails*",
            "SKIPPED test_inner.py::test_skips: no widget here",
            "SKIPPED test_inner.py::test_marked: marked off",
        ]
    )


def test_a_module_skipped_at_collection_fails_the_run(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    gate(monkeypatch, on=True)
    inner.makepyfile(
        test_gone='import pytest\npytest.skip("no module here", allow_module_level=True)\n',
        test_here="def test_runs():\n    pass\n",
    )
    result = inner.runpytest()
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED test_gone.py: no module here"])


def test_an_expected_failure_ran_and_passes_the_gate(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    gate(monkeypatch, on=True)
    inner.makepyfile("import pytest\n\n@pytest.mark.xfail(strict=True)\ndef test_known():\n    assert False\n")
    result = inner.runpytest()
    result.assert_outcomes(xfailed=1)
    assert result.ret == pytest.ExitCode.OK


SKIP_OR_FAIL = """
from tests.gate import skip_or_fail


def test_needs_a_widget():
    skip_or_fail("no widget here")
"""


@pytest.mark.parametrize("on", [True, False], ids=["gated", "not-gated"])
def test_skip_or_fail(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    gate(monkeypatch, on)
    inner.makepyfile(test_inner=SKIP_OR_FAIL)
    result = inner.runpytest("-rs")
    if on:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"*no widget here ({GATE_VARIABLE}=1: every test must run here)*"])
        assert result.ret == pytest.ExitCode.TESTS_FAILED
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED*no widget here"])
        assert result.ret == pytest.ExitCode.OK
