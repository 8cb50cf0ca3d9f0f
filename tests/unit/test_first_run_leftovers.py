"""CI's first run ends by checking that ``make stop`` left no process of the run (tests/e2e/first_run.py ``gone``): a
process counts as the run's by its command line or by its environment, since a retitled process (redis-server)
keeps only the latter; the check and the script above it are not counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.first_run import gone
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]


def check(marker: str) -> subprocess.CompletedProcess[str]:
    """The check as .ci/first-run runs it: in a process whose own environment names the run."""
    env = os.environ | {"BKM_RUN_DIR": f"{marker}/run"}
    return subprocess.run([sys.executable, "-m", "tests.e2e.first_run", "gone", "--marker", marker], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize("where", ["environment", "command line"])
def test_a_process_of_the_run_left_behind_is_found(tmp_path: Path, where: str) -> None:
    marker = str(tmp_path / "bkm-first-run")
    env = os.environ | ({"BKM_RUN_DIR": f"{marker}/run"} if where == "environment" else {})
    argv = ["sleep", "60"] if where == "environment" else ["sh", "-c", "sleep 60", marker]
    left = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        result = check(marker)
        assert result.returncode == 1
        assert f"still running after make stop: {left.pid}: " in result.stdout
    finally:
        stop_group(left)


def test_nothing_left_is_a_pass(tmp_path: Path) -> None:
    result = check(str(tmp_path / "bkm-first-run"))
    assert (result.returncode, result.stdout) == (0, "")
    assert gone(str(tmp_path / "nothing-of-this-name")) == 0
