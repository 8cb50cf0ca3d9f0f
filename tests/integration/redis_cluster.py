"""A real Redis Cluster of the test's own: three masters and three replicas on free loopback ports, created with
``redis-cli --cluster create``, each server stopped by its PID whatever happened."""

from __future__ import annotations

import functools
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import redis

from tests.integration.conftest import wait_for

NODE_TIMEOUT_MS = 1000  # a dead master is failed over after about this, plus the replicas' election


# Below the kernel's ephemeral range (net.ipv4.ip_local_port_range starts at 32768), so that an outgoing connection of
# another test cannot take a node's port, or its bus port, between the probe and the server's bind.
PORTS = range(10000, 22000)
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def free_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port is free too, neither of them in ``taken`` (the ports and bus ports
    of the cluster's other nodes, which are not bound yet when the next node's port is chosen)."""
    for _ in range(100):
        port = random.choice(PORTS)
        if {port, port + BUS_OFFSET} & taken:
            continue
        try:
            with socket.socket() as probe, socket.socket() as bus:
                probe.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
        except OSError:
            continue
        taken.update((port, port + BUS_OFFSET))
        return port
    raise AssertionError("no free pair of loopback ports for a cluster node")


class LocalCluster:
    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bkm-redis-cluster-"))
        self.taken: set[int] = set()
        self.ports = [free_port(self.taken) for _ in range(masters * (1 + replicas))]
        self.replicas = replicas
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> LocalCluster:
        for port in self.ports:
            self.spawn(port)
        for index, port in enumerate(list(self.ports)):
            for _attempt in range(3):
                wait_for(functools.partial(self.up, port), 10, f"redis-server on {port}", (redis.RedisError,))
                if self.procs[port].poll() is None:
                    break
                # It exited: something bound its port or bus port after the probe. Another pair, not a failed test.
                self.procs.pop(port)
                port = self.ports[index] = free_port(self.taken)
                self.spawn(port)
            else:
                raise AssertionError(f"redis-server would not start on three free ports; see {self.dir}")
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                  "--cluster-replicas", str(self.replicas), "--cluster-yes"]  # fmt: skip
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        wait_for(self.healthy, 30, "the cluster to be ok on every node with its replicas in sync")
        return self

    def spawn(self, port: int) -> None:
        workdir = self.dir / str(port)
        workdir.mkdir()
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
               "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
               "--save", "", "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
        with (workdir / "redis.log").open("wb") as log:
            self.procs[port] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up(self, port: int) -> bool:
        """The node answers PING, or its process has exited (the caller then tries another port)."""
        return self.procs[port].poll() is not None or bool(self.client(port).ping())

    def client(self, port: int) -> Any:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2)

    def alive(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def healthy(self) -> bool:
        """Every live node sees the cluster ok, and every master has its replicas."""
        for port in self.alive():
            if self.client(port).cluster("info").get("cluster_state") != "ok":
                return False
        nodes = self.nodes()
        masters = [node for node in nodes if "master" in node["flags"] and "fail" not in node["flags"]]
        if not all(self.replicas_of(master["node_id"]) >= self.replicas for master in masters):
            return False
        # A replica that has not finished its first sync with its master cannot be promoted (its data is too old).
        replicas = [node["port"] for node in nodes if "slave" in node["flags"] and "fail" not in node["flags"]]
        return all(self.client(port).info("replication").get("master_link_status") == "up" for port in replicas)

    def nodes(self) -> list[dict[str, Any]]:
        """CLUSTER NODES as a live node sees it (redis-py parses it: address → fields), nodes not yet met left out."""
        parsed = self.client(self.alive()[0]).execute_command("CLUSTER NODES")
        nodes = []
        for address, fields in parsed.items():
            port = address.split("@")[0].rpartition(":")[2]
            if port.isdigit() and int(port):
                flags = fields["flags"]
                nodes.append({"node_id": fields["node_id"], "port": int(port), "master_id": fields["master_id"],
                              "flags": flags.split(",") if isinstance(flags, str) else list(flags)})  # fmt: skip
        return nodes

    def replicas_of(self, node_id: str) -> int:
        return sum(1 for node in self.nodes() if node["master_id"] == node_id and "fail" not in node["flags"])

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        any_node = self.client(self.alive()[0])
        slot = int(any_node.execute_command("CLUSTER KEYSLOT", key))
        for start, end, master, *_ in any_node.execute_command("CLUSTER SLOTS"):
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise AssertionError(f"no node serves slot {slot}")

    def acknowledged(self, key: str) -> bool:
        """A write of ``key`` reached its master's replicas within 100 ms. A new cluster's replicas can take up to a
        second (their periodic ACK) to acknowledge the first writes, though their link is up; a test that counts on
        WAIT's timing waits for this first."""
        master = self.client(self.master_of(key))
        try:
            master.set(key, "1")
            return int(master.execute_command("WAIT", self.replicas, 100)) >= self.replicas
        finally:
            master.delete(key)

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
