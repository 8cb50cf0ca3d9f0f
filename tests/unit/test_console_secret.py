"""The console's signing key without ``BKAPP_SECRET_KEY``: random, the host's own, private, the same for every
console process (made once, even by processes starting together)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config.tools.secret import KEY_FILE, host_secret_key

REPO = Path(__file__).resolve().parents[2]


def test_a_key_is_made_once_private_and_then_read(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    key = host_secret_key(str(run_dir))
    assert len(key) >= 50 and key == host_secret_key(str(run_dir))
    assert stat.S_IMODE((run_dir / KEY_FILE).stat().st_mode) == 0o600
    assert host_secret_key(str(tmp_path / "other")) != key  # another host's is its own
    assert sorted(p.name for p in run_dir.iterdir()) == [KEY_FILE]  # no draft left behind


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Eight processes (new interpreters: a fork of this threaded test process could hang) ask at once."""
    code = f"from config.tools.secret import host_secret_key; print(host_secret_key({str(tmp_path)!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
             for _ in range(8)]  # fmt: skip
    keys = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(set(keys)) == 1 and keys[0] == (tmp_path / KEY_FILE).read_text()


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("short")
    with pytest.raises(ValueError, match=f"{tmp_path / KEY_FILE} holds no usable key"):
        host_secret_key(str(tmp_path))
