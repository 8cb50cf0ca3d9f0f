"""The console's signing key without ``BKAPP_SECRET_KEY``: random, the host's own, private, the same for every
console process (made once, even by processes starting together)."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from config.tools.secret import KEY_FILE, host_secret_key


def test_a_key_is_made_once_private_and_then_read(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    key = host_secret_key(str(run_dir))
    assert len(key) >= 50 and key == host_secret_key(str(run_dir))
    assert stat.S_IMODE((run_dir / KEY_FILE).stat().st_mode) == 0o600
    assert host_secret_key(str(tmp_path / "other")) != key  # another host's is its own
    assert sorted(p.name for p in run_dir.iterdir()) == [KEY_FILE]  # no draft left behind


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        keys = pool.map(host_secret_key, [str(tmp_path)] * 32)
    assert len(set(keys)) == 1 and keys[0] == (tmp_path / KEY_FILE).read_text()


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("short")
    with pytest.raises(ValueError, match=f"{tmp_path / KEY_FILE} holds no usable key"):
        host_secret_key(str(tmp_path))
