"""Hosts of their own for the chaos suite: network namespaces on a private bridge, one supervisord in each.

``Network``: a bridge in the root namespace on the first address of a free private /24, and a namespace per host
joined to it by a veth pair whose root-side end is the host's switch port (down: the host is cut off without being
told, as by a pulled cable). Names carry the test's pid; ``close`` deletes every namespace and link it made.

``cluster()``: the scenario's redis-servers (store, broker, events) and a fake Consul agent on the bridge address, and
on every host ``ip netns exec <ns> supervisord -n`` running a beat and a worker of ``tests.chaos.chaosapp``. Each
process is a child of the test (``ip netns exec`` execs its command); anything a supervisord leaves behind is in a
namespace only the test made, and is killed by PID.

Not ``manage.py render_supervisor``: its programs run the backend app, with the platform's crontab and queues, whose
runs the harness cannot count. The hosts' config is rendered from the same template with the platform's own program
sections, environment line and path checks (``alarm_backends.management.supervisor.render``) and validated by
supervisord's parser, for the two chaos-app programs the harness counts exactly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import consul

from alarm_backends.management.supervisor import render as rendering
from alarm_backends.management.supervisor.control import RPC_ERRORS, Supervisor, default_template, validate_config
from alarm_backends.management.supervisor.render import Host
from alarm_backends.management.supervisor.workers import NOGMH
from tests.chaos.events import QUEUE
from tests.chaos.harness import Scenario, write_fault
from tests.chaos.services import APP, LOOPBACK, REPO, RedisServer
from tests.integration.conftest import wait_for
from tests.processes import stop_group

BEAT, WORKER = "chaos_beat", "chaos_worker"
# Where the test looks for a free /24 (RFC 1918, unlikely to be routed on a test machine).
SUBNETS = "10.213.{}.0/24"
HOST_OCTET = 11  # hosts get .11, .12, …; the bridge .1
# What `ip` prints when the caller may not make namespaces or links (no CAP_NET_ADMIN / CAP_SYS_ADMIN).
NO_PRIVILEGE = ("Operation not permitted", "Permission denied")


class NetnsUnavailableError(RuntimeError):
    """Namespaces cannot be made here (no privilege, no ``ip``): the scenario cannot run."""


def ip(*args: str) -> str:
    """``ip <args>``; its stdout. A refusal for want of privilege raises NetnsUnavailableError."""
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise NetnsUnavailableError("the `ip` command (iproute2) is not installed") from None
    if done.returncode != 0:
        message = f"`ip {' '.join(args)}` failed: {done.stderr.strip()}"
        raise NetnsUnavailableError(message) if any(s in done.stderr for s in NO_PRIVILEGE) else RuntimeError(message)
    return done.stdout


def free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /24 of SUBNETS that no address or route of this machine overlaps, starting at one picked by ``seed`` (two
    runs at once start apart)."""
    used = [ipaddress.ip_interface(word).network for word in ip("-4", "-o", "addr", "show").split() if "/" in word]
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        with contextlib.suppress(ValueError, IndexError):
            used.append(ipaddress.ip_network(line.split()[0]))
    for i in range(256):
        subnet = ipaddress.IPv4Network(SUBNETS.format((seed + i) % 256))
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise RuntimeError(f"every {SUBNETS.format('*')} is in use on this machine")


@dataclass(frozen=True)
class NetHost:
    name: str  # h1, h2, …
    netns: str
    address: str
    port: str  # the root-side end of its veth pair, enslaved to the bridge


class Network:
    """A bridge and ``count`` namespaces on it; ``close`` deletes all of it (also after a failed ``create``)."""

    def __init__(self, count: int, tag: str) -> None:
        self.subnet = free_subnet(int(tag))
        self.address = str(self.subnet.network_address + 1)
        self.bridge = f"bkmb{tag}"  # interface names are at most 15 bytes: 4 + a pid of up to 7 digits + 2
        first = self.subnet.network_address + HOST_OCTET
        self.hosts = [
            NetHost(f"h{i}", f"bkmchaos-{tag}-h{i}", str(first + i - 1), f"bkmv{tag}h{i}") for i in range(1, count + 1)
        ]
        self._namespaces: list[str] = []
        self._links: list[str] = []

    def create(self) -> Network:
        prefix = f"/{self.subnet.prefixlen}"
        for host in self.hosts:
            ip("netns", "add", host.netns)  # first: where a machine without the privilege refuses
            self._namespaces.append(host.netns)
        ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        ip("addr", "add", self.address + prefix, "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in self.hosts:
            peer = host.port[:-2] + "n" + host.name[1:]  # renamed eth0 once inside the namespace
            ip("link", "add", host.port, "type", "veth", "peer", "name", peer)
            self._links.append(host.port)
            ip("link", "set", host.port, "master", self.bridge)
            ip("link", "set", host.port, "up")
            ip("link", "set", peer, "netns", host.netns)
            inside = ("-n", host.netns)
            ip(*inside, "link", "set", peer, "name", "eth0")
            ip(*inside, "addr", "add", host.address + prefix, "dev", "eth0")
            ip(*inside, "link", "set", "eth0", "up")
            ip(*inside, "link", "set", "lo", "up")
            ip(*inside, "route", "add", "default", "via", self.address)
        return self

    def cut(self, host: NetHost) -> None:
        """Its switch port down: the host's own link only loses carrier; packets either way are dropped."""
        ip("link", "set", host.port, "down")

    def restore(self, host: NetHost) -> None:
        ip("link", "set", host.port, "up")

    def pids(self, host: NetHost) -> list[int]:
        """Every process in the host's namespace: all started by this test, since it made the namespace."""
        with contextlib.suppress(RuntimeError):
            return [int(pid) for pid in ip("netns", "pids", host.netns).split()]
        return []

    def close(self) -> None:
        errors = []
        for name in reversed(self._namespaces):
            try:
                ip("netns", "del", name)  # its end of the veth pair goes with it
            except RuntimeError as exc:
                errors.append(str(exc))
        for link in reversed(self._links):
            with contextlib.suppress(RuntimeError):  # a veth pair is gone once its namespace end is
                if ip("-o", "link", "show", link).strip():
                    ip("link", "del", link)
        self._namespaces, self._links = [], []
        if errors:
            raise RuntimeError("; ".join(errors))


class BridgeRedis(RedisServer):
    """A scenario redis-server started as the harness starts it, on loopback (where the test keeps talking to it),
    then also bound to the bridge address, where the hosts reach it (``CONFIG SET bind``: Redis 7 or newer)."""

    def __init__(self, name: str, workdir: Path, address: str) -> None:
        super().__init__(name, workdir)
        self.host = address  # what the scenario's environment hands the hosts

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> BridgeRedis:
        super().start()
        client = self.client()
        try:
            client.config_set("bind", f"{LOOPBACK} {self.host}")
            # The hosts connect from other addresses to a server without a password.
            client.config_set("protected-mode", "no")
        finally:
            client.close()
        return self


class BridgeScenario(Scenario):
    """A scenario whose servers the hosts reach on the bridge address; its accounting is the harness's, unchanged."""

    def __init__(self, name: str, tmp: Path, address: str, **options: Any) -> None:
        self.address = address  # before the base class starts the servers
        try:
            super().__init__(name, tmp, **options)
        except BaseException:
            self.close()  # the servers started before one failed: nobody else holds them
            raise

    def _server(self, name: str, persistent: bool = False) -> RedisServer:
        server = BridgeRedis(name, self.tmp, self.address)
        self.servers.append(server)
        return server.start()


@dataclass
class SupervisedHost:
    """``ip netns exec <ns> supervisord -n -c <config>`` running one beat and one worker of the chaos app."""

    net: NetHost
    host: Host
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    pids: dict[str, set[int]] = field(default_factory=dict)  # program → every pid it ran under (restarts too)

    def render(self) -> Path:
        host, programs = rendering.check_host(self.host), {BEAT: self.beat_argv(), WORKER: self.worker_argv()}
        env, priority = rendering.environment_line(host, self.env), rendering.PROGRAM_PRIORITY
        maxbytes, backups = host.log_rotation()
        values = {
            "profile": f"chaos ({', '.join(programs)} of {APP})", "repo_dir": host.repo_dir,
            "run_dir": host.run_dir, "log_dir": host.log_dir, "socket_path": host.socket_path,
            "programs": "\n".join(rendering.program_section(host, name, argv, env, priority)
                                  for name, argv in programs.items()),
            "groups": f"[group:{rendering.GROUP}]\nprograms={','.join(programs)}\npriority={priority}\n",
            "supervisord_logfile": host.logfile("supervisord"), "logfile_maxbytes": maxbytes,
            "logfile_backups": backups,
        }  # fmt: skip
        for directory in (host.run_dir, host.log_dir):
            os.makedirs(directory, exist_ok=True)
        path = Path(host.config_path)
        path.write_text(rendering.substitute(default_template(host.repo_dir).read_text(), values))
        validate_config(str(path))  # supervisord's own parser, as `render_supervisor --check`
        return path

    def beat_argv(self) -> list[str]:
        run = Path(self.host.run_dir)
        return [self.host.python, "-m", "celery", "-A", APP, "beat", "-l", "info", "-S", "redbeat.RedBeatScheduler",
                "-s", str(run / "celerybeat-schedule"), f"--pidfile={run / 'celerybeat.pid'}"]  # fmt: skip

    def worker_argv(self) -> list[str]:
        name = self.net.name
        return [self.host.python, "-m", "celery", "-A", APP, "worker", "-l", "info", "-Q", QUEUE, "-c", "1",
                "-P", "prefork", "-n", f"chaos-{name}@{name}", *NOGMH]  # fmt: skip

    def start(self) -> None:
        config = self.render()
        cmd = ["ip", "netns", "exec", self.net.netns, self.host.python, "-m", "supervisor.supervisord", "-n", "-c",
               str(config)]  # fmt: skip
        with (Path(self.host.log_dir) / "supervisord.out").open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ | self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def refresh(self) -> dict[str, int]:
        """The programs' current pids (0: not running), remembered in ``pids``."""
        current = {info.name.rpartition(":")[2]: info.pid for info in Supervisor(self.host.socket_path).processes()}
        for name, pid in current.items():
            if pid:
                self.pids.setdefault(name, set()).add(pid)
        return current

    def wait_running(self, timeout: float) -> None:
        def running() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"supervisord of {self.net.name} exited: {self.log('supervisord.out')[-2000:]}")
            return all(self.refresh().values())

        wait_for(running, timeout, f"the programs of {self.net.name} to run", ignore=RPC_ERRORS)

    def log(self, program: str) -> str:
        path = Path(self.host.log_dir) / (program if "." in program else f"{program}.log")
        return path.read_text(errors="replace") if path.exists() else ""

    def arm(self, *fault: object) -> None:
        """Arm the beat's fault (``CHAOS_BEAT_FAULT_FILE``, see chaosapp): ``action, at[, seconds]``."""
        write_fault(Path(self.env["CHAOS_BEAT_FAULT_FILE"]), *fault)

    def stop_program(self, program: str) -> None:
        Supervisor(self.host.socket_path).call("stopProcess", f"{rendering.GROUP}:{program}", True)

    def close(self, network: Network) -> None:
        """SIGTERM supervisord (it stops its programs, each in its own group); then SIGKILL whatever is left in the
        namespace, by PID."""
        if self.proc is not None:
            stop_group(self.proc, grace=45)
        for pid in network.pids(self.net):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class ConsulProcess:
    """``python -m tests.fakeconsul`` on the bridge address, in its own process group."""

    def __init__(self, address: str, log: Path) -> None:
        self.host, self.log = address, log
        self.port = 0
        self.proc = self._launch()

    def _launch(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tests.fakeconsul", "--host", self.host, "--port", str(self.port)]
        with self.log.open("wb") as out:
            return subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def restart(self) -> None:
        """A new agent on the same address and port, with nothing registered (the old one's state is gone, as a
        real agent's sessions are after an outage longer than their TTL)."""
        self.proc = self._launch()
        self.wait_listening()

    def wait_listening(self) -> ConsulProcess:
        """Until it printed ``host:port``, which it does once it listens."""
        self.port = int(wait_for(self._printed, 20, "the fake Consul agent to listen"))
        return self

    def _printed(self) -> str:
        if self.proc.poll() is not None:
            raise AssertionError(f"the fake Consul agent exited: {self.log.read_text(errors='replace')}")
        first = self.log.read_text().partition("\n")
        return first[0].rpartition(":")[2] if first[1] else ""

    def client(self) -> consul.Consul:
        return consul.Consul(host=self.host, port=self.port, connections_timeout=5)

    def close(self) -> None:
        stop_group(self.proc, grace=10)


@dataclass
class Cluster:
    network: Network
    scenario: BridgeScenario
    consul: ConsulProcess
    hosts: list[SupervisedHost]
    app_code: str
    asked: set[int] = field(default_factory=set)  # pids beat_of asked the supervisords about

    def registered(self) -> set[str]:
        """The hosts with a beat registered in Consul (keys ``<APP_CODE>_…/celerybeat/<host>/<pid>``)."""
        _, entries = self.consul.client().kv.get(f"{self.app_code}_", recurse=True)
        return {e["Key"].split("/")[-2] for e in entries or [] if "/celerybeat/" in e["Key"]}

    def host(self, address: str) -> SupervisedHost:
        return next(h for h in self.hosts if h.net.address == address)

    def beat_of(self, pid: int) -> str:
        """The address of the host whose beat ran as ``pid``; "" if none did."""
        if pid not in self.asked and not any(pid in h.pids.get(BEAT, ()) for h in self.hosts):
            self.asked.add(pid)  # asked once: a beat supervisord restarted runs under a new pid
            for host in self.hosts:
                with contextlib.suppress(*RPC_ERRORS):
                    host.refresh()
        return next((h.net.address for h in self.hosts if pid in h.pids.get(BEAT, ())), "")


@contextlib.contextmanager
def cluster(name: str, tmp: Path, count: int, host_env: dict[str, str], **options: Any) -> Iterator[Cluster]:
    """The network, the scenario's services and ``count`` supervised hosts (``host_env`` on top of the scenario's
    environment), all of it stopped and deleted on the way out."""
    tag = str(os.getpid())
    network = Network(count, tag)
    short = Path(tempfile.mkdtemp(prefix="bkmc", dir="/tmp"))  # unix socket paths must stay under 100 bytes
    made: list[Any] = []
    errors: list[str] = []
    try:
        network.create()
        scenario = BridgeScenario(name, tmp, network.address, **options)
        made.append(scenario)
        agent = ConsulProcess(network.address, tmp / "consul.log")
        made.append(agent)
        agent.wait_listening()
        app_code = f"bkmchaos{tag}"
        hosts = []
        for net in network.hosts:
            run, logs = short / net.name, tmp / net.name
            host = Host(repo_dir=str(REPO), python=sys.executable, run_dir=str(run), log_dir=str(logs),
                        socket_path=str(run / "supervisor.sock"))  # fmt: skip
            env = scenario.env() | {
                "BKM_RUN_DIR": str(run), "BK_LOG_DIR": str(logs), "BK_MONITOR_HOST_ADDR": net.address,
                "CONSUL_HOST": network.address, "CONSUL_PORT": str(agent.port), "BK_MONITOR_APP_CODE": app_code,
                "CHAOS_LEADER_GATE": "1", "CHAOS_BEAT_FAULT_FILE": str(run / "beat.fault"),
            } | host_env  # fmt: skip
            hosts.append(SupervisedHost(net, host, env))
        for supervised in hosts:
            made.append(supervised)
            supervised.start()
        yield Cluster(network, scenario, agent, hosts, app_code)
    finally:
        for net in network.hosts:  # a host left cut off would stall its programs' clean shutdown
            with contextlib.suppress(RuntimeError):
                network.restore(net)
        for thing in reversed(made):
            try:  # one failure must not leave the rest running
                thing.close(network) if isinstance(thing, SupervisedHost) else thing.close()
            except Exception as exc:
                errors.append(f"closing {type(thing).__name__}: {exc!r}")
        try:
            network.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        shutil.rmtree(short, ignore_errors=True)
    # Reached only when the body did not raise: a failed test's own error is not hidden behind a teardown one.
    if errors:
        raise RuntimeError("; ".join(errors))
