"""The Ray backend: the serial backend's results on a local runtime (a bug in a task is raised),
and corpus generation on a multi-node Ray cluster: two nodes on this machine, started and
stopped by the test (Ray advertises 127.0.0.1 as the host's own address, so nodes reach each
other as on a real cluster).

Each node runs under ``ray start --block`` with the test's own temporary directory, so the
teardown stops exactly this test's Ray processes (SIGTERM to the blocking ``ray start``, which
takes its raylet, GCS and workers down with it) instead of ``ray stop``, which would stop every
Ray process on the machine.
"""

import operator
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray

from hybrid.cli import main as hybat
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
from sim.backends.ray_backend import KILL_ONCE_ENV
from sim.backends.base import SerialBackend
from sim.backends.ray_backend import RayBackend, ray_runtime
from tests.sim.backends.test_base import gathered
from tests.sim.corpus.test_generate import SMOKE, assert_same_corpus


def _ray_cli() -> str | None:
    """The ray command beside this interpreter (a virtual environment's bin/), else on PATH."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else shutil.which("ray")


RAY_CLI = _ray_cli()
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # a test cluster has nothing to drain


@dataclass
class LocalCluster:
    """A Ray cluster of ``ray start --block`` processes on 127.0.0.1, all files in ``root``."""

    root: Path
    address: str = ""
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_node(self, name: str, *arguments: str) -> Path:
        """Start one node; its first task kills its own worker once and leaves the returned
        marker file behind, which proves a task was scheduled there."""
        marker = self.root / f"{name}-ran-a-task"
        environment = os.environ | RAY_ENV | {KILL_ONCE_ENV: str(marker)}
        # fixed default ports (dashboard agent 52365) would clash between the two nodes and
        # with any other Ray on the machine
        command = [RAY_CLI, "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                   f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats",
                   "--log-style=record", *arguments]
        with open(self.root / f"{name}.log", "w") as log:
            self.nodes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                                start_new_session=True)
        return marker

    def alive_nodes(self) -> int:
        ray.init(address=self.address, logging_level="WARNING")
        try:
            return sum(node["Alive"] for node in ray.nodes())
        finally:
            ray.shutdown()

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not condition():
            exited = [name for name, node in self.nodes.items() if node.poll() is not None]
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"Ray cluster: {what} did not happen (exited: {exited}); "
                                   f"logs: {self.log_tails()}")
            time.sleep(0.25)

    def log_tails(self) -> str:
        return " | ".join(f"{log.name}: {log.read_text()[-400:]}" for log in sorted(self.root.glob("*.log")))

    def own_processes(self) -> list[int]:
        """Processes whose command line names this cluster's directory (raylets, GCS, workers)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if str(self.root).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:  # the process ended while we looked
                pass
        return pids

    def stop(self) -> list[int]:
        """Stop every node (joining nodes first); returns the pids that had to be killed."""
        nodes = list(self.nodes.values())[::-1]
        for node in nodes:
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        stragglers = self.own_processes() if Path("/proc").is_dir() else []
        for pid in stragglers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return stragglers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def two_node_cluster():
    """A head and a joining node with one CPU each; yields (cluster, marker of each node)."""
    if RAY_CLI is None:
        pytest.skip(f"the ray command line is not installed (neither beside {sys.executable} nor on PATH)")
    # Ray's Unix sockets live under the temp dir and their paths may not exceed 107 bytes,
    # which pytest's deep tmp_path would break
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="hybat-ray-", dir="/tmp")))
    port = _free_port()
    cluster.address = f"127.0.0.1:{port}"
    try:
        markers = {"head": cluster.start_node("head", "--head", f"--port={port}", "--include-dashboard=false",
                                              f"--dashboard-port={_free_port()}", f"--temp-dir={cluster.root}")}
        cluster.wait_for(lambda: _listening(port), "the head node's GCS listening")
        markers["joined"] = cluster.start_node("joined", f"--address={cluster.address}")
        cluster.wait_for(lambda: cluster.alive_nodes() == 2, "two nodes joining")
        yield cluster, markers
    finally:
        stragglers = cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
    assert not stragglers, f"Ray processes outlived their ray start: {stragglers}"


@pytest.mark.ray
def test_corpus_on_a_two_node_cluster_equals_the_serial_corpus(two_node_cluster, tmp_path):
    cluster, markers = two_node_cluster
    generate_corpus(load_config(SMOKE, CorpusSpec), tmp_path / "serial", progress=False)

    code = hybat(["corpus", str(SMOKE), "--out", str(tmp_path / "cluster"), "--backend", "ray",
                  "--address", cluster.address])

    assert code == 0
    assert_same_corpus(tmp_path / "serial", tmp_path / "cluster")
    assert markers["head"].exists() and markers["joined"].exists()  # both nodes ran samples
    assert not ray.is_initialized()  # the driver disconnected ...
    assert cluster.alive_nodes() == 2  # ... and left the cluster running


@pytest.mark.ray
def test_ray_gives_the_serial_results_in_item_order_and_raises_a_task_bug():
    items = list(range(20))
    with ray_runtime(workers=2):
        results, arrivals = gathered(RayBackend(), operator.sub, items)
        assert ray.is_initialized()  # map reused the runtime of the block ...
        with pytest.raises(ZeroDivisionError):  # ... and raised the task's own error
            gathered(RayBackend(), operator.truediv, [1, 0])
    assert not ray.is_initialized()
    assert results == gathered(SerialBackend(), operator.sub, items)[0] == [3 - item for item in items]
    assert sorted(arrivals) == items
