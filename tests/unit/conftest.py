"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from alarm_backends.management.supervisor import control as supervisor_rpc


@pytest.fixture
def fake_redis_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The system's redis-server, as the platform's lookup finds it: an executable stub reporting Redis 7.2."""
    binary = tmp_path / "bin" / "redis-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(binary) if name == "redis-server" else None)
    monkeypatch.setattr(supervisor_rpc, "redis_server_version", lambda path: (7, 2, 0))
    return str(binary)
