"""A real multi-node Ray cluster on this machine, for tests and benchmarks: one head and worker
nodes, each a separate ``ray start --block`` process with its own working directory, every node on
127.0.0.1 (see ``tests/ray_loopback.py``), all in a temporary directory of their own.

Nodes start one after another (two raylets starting at once can race for the same free port) and
are taken down by process group: only the processes this object started are ever signalled.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(token: str) -> dict[str, str]:
    """The environment of every node and of the driver: the repository importable (workers import
    tests.* agents), and Ray's token authentication on with this cluster's own token (explicit, so
    a token file another Ray user left in ~/.ray changes nothing)."""
    env = dict(os.environ)
    # the embedded instance of an earlier test in this process set this to "0" (loopback only);
    # inherited, it makes `ray start --address` refuse to join as a worker node
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = token
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(REPO), *env.get("PYTHONPATH", "").split(os.pathsep)]))
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def loopback_ray() -> list[str]:
    """The ``ray`` command, kept on 127.0.0.1."""
    return [sys.executable, "-m", "tests.ray_loopback"]


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the direct children of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out.append((int(entry), name))
    return out


@dataclass
class Node:
    proc: subprocess.Popen
    cwd: Path
    log: Path

    def raylet_pid(self) -> int:
        pids = [p for p, name in _children(self.proc.pid) if name == "raylet"]
        if not pids:
            raise RuntimeError(f"no raylet under node process {self.proc.pid}")
        return pids[0]

    def raylet_args(self) -> dict[str, str]:
        """The raylet's ``--name=value`` arguments (its node id and the address it registered)."""
        argv = Path(f"/proc/{self.raylet_pid()}/cmdline").read_bytes().decode().split("\0")
        return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)

    def running(self, task: str = "execute_unit") -> bool:
        """True while one of the node's worker processes executes ``task`` (Ray titles a busy
        worker ``ray::<task>``): a run is in flight on this node, not merely leased to it."""
        for pid, _ in _children(self.raylet_pid()):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(f"ray::{task}".encode()):
                    return True
            except OSError:
                continue
        return False

    @property
    def node_id(self) -> str:
        return self.raylet_args()["node_id"]


@dataclass
class LocalCluster:
    """``LocalCluster(worker_cpus=(1, 1))``: a 0-CPU head (so every run goes to a worker node)
    and one worker node per entry. Use as a context manager; ``address`` is ``127.0.0.1:PORT``."""

    worker_cpus: tuple[float, ...] = (1, 1)
    head_cpus: float = 0
    worker_gpus: tuple[float, ...] = ()
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ek-cl-")))
    nodes: list[Node] = field(default_factory=list)
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment a driver needs to join this cluster."""
        return node_env(self.token)

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        # a short temp dir: Ray's unix socket paths under it must stay below 108 characters
        self.temp = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))
        for attempt in range(2):  # a head that misses Ray's registration window: once more, new ports
            self.port = free_port()
            try:
                self._start_node("head", ["--head", f"--port={self.port}", f"--num-cpus={self.head_cpus}",
                                          "--include-dashboard=false", f"--ray-client-server-port={free_port()}"])
                break
            except RuntimeError:
                if attempt == 1:
                    raise
        for i, cpus in enumerate(self.worker_cpus):
            gpus = self.worker_gpus[i] if i < len(self.worker_gpus) else 0
            self.add_worker(cpus, gpus, name=f"worker{i + 1}")

    def add_worker(self, cpus: float, gpus: float = 0, name: str | None = None) -> Node:
        name = name or f"worker{len(self.nodes)}"
        return self._start_node(name, [f"--address={self.address}", f"--num-cpus={cpus}", f"--num-gpus={gpus}"])

    def _start_node(self, name: str, args: list[str], timeout: float = 90, attempts: int = 2) -> Node:
        """Start one node and wait until it has registered. A worker node that fails to come up
        is started once more (fresh ports): on a machine loaded far past its cores, Ray gives a
        raylet 30 s to register, which a start-up can miss; the error says what Ray logged."""
        for attempt in range(attempts):
            cwd = self.root / name
            cwd.mkdir(parents=True, exist_ok=True)
            log = self.root / f"{name}.{attempt}.log"
            cmd = [*loopback_ray(), "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                   f"--temp-dir={self.temp}", f"--node-manager-port={free_port()}",
                   f"--object-manager-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                   "--min-worker-port=0", "--max-worker-port=0", *args]
            with open(log, "wb") as fh:
                proc = subprocess.Popen(cmd, cwd=cwd, env=self.env(), stdout=fh, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            node = Node(proc, cwd, log)
            deadline = time.time() + timeout
            while b"Ray runtime started" not in log.read_bytes() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.2)
            if b"Ray runtime started" in log.read_bytes():
                self.nodes.append(node)
                return node
            _stop(proc)
            if "--head" in args or attempt == attempts - 1:
                raise RuntimeError(f"Ray node {name} did not start:\n{log.read_text()[-2000:]}\n{self._raylet_errors()}")
        raise AssertionError("unreachable")

    def _raylet_errors(self) -> str:
        """The error lines of every raylet log of this cluster (why a node did not come up)."""
        lines = []
        for path in sorted(Path(self.temp).glob("session_*/logs/raylet*.out")):
            lines += [f"{path.name}: {ln}" for ln in path.read_text(errors="replace").splitlines() if " E " in ln][-5:]
        return "\n".join(lines)

    def kill_raylet(self, node: Node) -> None:
        """SIGKILL the node's raylet: the node is lost as a machine crash would lose it."""
        os.kill(node.raylet_pid(), signal.SIGKILL)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            _stop(node.proc)
        self.nodes.clear()
        shutil.rmtree(getattr(self, "temp", self.root / "none"), ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the node's process group (``ray start --block`` stops its raylet and workers),
    then SIGKILL whatever is left of that group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
