"""The Ray backend: the serial backend's results on a local runtime (a bug in a task is raised),
and corpus generation on a multi-node Ray cluster: two nodes on this machine, started and
stopped by the test (Ray advertises 127.0.0.1 as the host's own address, so nodes reach each
other as on a real cluster). Samples lost with a node, or with the raylet under the driver, are
not recorded, and a resumed run completes the serial corpus; a task that kills its own worker on
every attempt is the item's failure.

Each node runs under ``ray start --block`` with the test's own temporary directory, so the
teardown stops exactly this test's Ray processes (SIGTERM to the blocking ``ray start``, which
takes its raylet, GCS and workers down with it) instead of ``ray stop``, which would stop every
Ray process on the machine.
"""

import contextlib
import functools
import json
import operator
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import ray

from hybrid.cli import main as hybat
from sim.backends.base import SerialBackend
from sim.backends.ray_backend import (DRIVER_LOST, KILL_ONCE_ENV, TASK_RETRIES, RayBackend, is_infrastructure,
                                      ray_runtime)
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
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

    def kill_raylet(self, name: str) -> None:
        """SIGKILL node ``name``'s raylet (as when Ray's dashboard agent dies and takes it down);
        its ``ray start --block`` then stops the rest of the node."""
        os.kill(self._raylet(name), signal.SIGKILL)

    def _raylet(self, name: str) -> int:
        raylets = [pid for pid in self.own_processes() if _parent(pid) == self.nodes[name].pid
                   and _command(pid).split(b"\0")[0].endswith(b"/raylet")]
        if len(raylets) != 1:
            raise RuntimeError(f"node {name}: expected one raylet process, found {raylets}")
        return raylets[0]

    def running_a_task(self, name: str) -> bool:
        """Whether a worker of node ``name`` runs a task (Ray titles it ray::_task meanwhile)."""
        raylet = self._raylet(name)
        return any(_parent(pid) == raylet and _command(pid).startswith(b"ray::_task") for pid in _pids())

    def log_tails(self) -> str:
        return " | ".join(f"{log.name}: {log.read_text()[-400:]}" for log in sorted(self.root.glob("*.log")))

    def own_processes(self) -> list[int]:
        """Processes whose command line names this cluster's directory (raylets, GCS, workers)."""
        return [pid for pid in _pids() if pid != os.getpid() and str(self.root).encode() in _command(pid)]

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
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)
        return stragglers


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # the process ended while we looked
        return b""


def _parent(pid: int) -> int | None:
    try:  # /proc/PID/stat: "pid (name) state ppid ...", and the name may hold spaces
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:  # the process ended while we looked
        return None


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
        # its own temp dir, so a driver can choose to attach to it (Ray prefers the head)
        markers["joined"] = cluster.start_node("joined", f"--address={cluster.address}",
                                               f"--temp-dir={cluster.root / 'joined'}")
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


@pytest.mark.ray
@pytest.mark.slow
def test_a_sample_lost_with_its_node_is_not_recorded_and_resume_completes_the_corpus(
        two_node_cluster, tmp_path, monkeypatch, capsys):
    cluster, markers = two_node_cluster
    generate_corpus(load_config(SMOKE, CorpusSpec), tmp_path / "serial", progress=False)
    out = tmp_path / "cluster"
    # without retries a node's loss is final for the task on it, as when its node dies on every
    # attempt (with retries, Ray reruns it on the head); existing markers turn the fixture's
    # kill-once off, which would otherwise fail a sample
    monkeypatch.setattr("sim.backends.ray_backend.TASK_RETRIES", 0)
    for marker in markers.values():
        marker.touch()
    killer = threading.Thread(target=_kill_joined_node_in_a_task, args=(cluster,), daemon=True)
    killer.start()
    code = hybat(["corpus", str(SMOKE), "--out", str(out), "--backend", "ray", "--address", cluster.address])
    killer.join()

    journal = pd.read_parquet(out / "samples")
    line = re.search(r"^hybat corpus: error: corpus smoke: (\d) of 4 samples lost to infrastructure \((.+)\); "
                     r"run again with resume \(hybat corpus --resume\) to redo them$", capsys.readouterr().err,
                     re.MULTILINE)
    assert code == 3 and line is not None
    lost = int(line[1])
    assert lost >= 1 and len(journal) == 4 - lost and "failed" not in set(journal["status"])  # lost is not failed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["missing"] == lost
    assert not (out / "samples.parquet").exists()  # a partial corpus is not taken for a whole one

    code = hybat(["corpus", str(SMOKE), "--out", str(out), "--backend", "ray", "--address", cluster.address,
                  "--resume"])
    assert code == 0
    assert_same_corpus(tmp_path / "serial", out)


def _kill_joined_node_in_a_task(cluster: LocalCluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S * 2
    while not cluster.running_a_task("joined") and time.monotonic() < deadline:
        time.sleep(0.05)
    cluster.kill_raylet("joined")


# A driver on the joined node: it runs `hybat corpus` on the runtime it initialised there.
DRIVER = ("import sys, ray; from hybrid.cli import main; ray.init(address=sys.argv[1], _temp_dir=sys.argv[2]); "
          "sys.exit(main(['corpus', sys.argv[3], '--out', sys.argv[4], '--backend', 'ray']))")


@pytest.mark.ray
@pytest.mark.slow
def test_samples_lost_with_the_drivers_raylet_are_not_recorded_and_resume_completes_the_corpus(
        two_node_cluster, tmp_path):
    cluster, _ = two_node_cluster
    generate_corpus(load_config(SMOKE, CorpusSpec), tmp_path / "serial", progress=False)
    out = tmp_path / "cluster"
    # Ray prefers the head as a driver's node, so the driver names the joined node's temp dir;
    # it runs in its own process because Ray may terminate a driver whose raylet died
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, cluster.address, str(cluster.root / "joined"),
                                   str(SMOKE), str(out)], env=os.environ | RAY_ENV, stdout=log, stderr=log)
    try:
        _wait_for_a_journal_row(out / "samples", driver)
        cluster.kill_raylet("joined")
        driver.wait(timeout=START_TIMEOUT_S * 2)
    finally:
        if driver.poll() is None:
            driver.kill()

    journal = pd.read_parquet(out / "samples")
    # exit 3 with hybat's line, or 1 where Ray terminated the driver ("connection to the plasma store")
    assert driver.returncode != 0, (tmp_path / "driver.log").read_text()[-2000:]
    assert 1 <= len(journal) < 4 and "failed" not in set(journal["status"])  # lost samples are not failures
    assert not (out / "samples.parquet").exists()  # a partial corpus is not taken for a whole one
    code = hybat(["corpus", str(SMOKE), "--out", str(out), "--backend", "ray", "--address", cluster.address,
                  "--resume"])  # the head carries on
    assert code == 0
    assert_same_corpus(tmp_path / "serial", out)


def _wait_for_a_journal_row(journal: Path, driver: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S * 2
    while not list(journal.glob("part-*.parquet")):
        if driver.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the driver wrote no sample (exit code {driver.poll()})")
        time.sleep(0.05)


def test_only_a_worker_that_died_while_its_node_stayed_up_is_the_items_own_failure():
    errors = ray.exceptions
    assert not is_infrastructure(errors.WorkerCrashedError())
    assert all(is_infrastructure(error) for error in [
        errors.LocalRayletDiedError(), errors.NodeDiedError("node gone"), errors.ObjectLostError("00", None, ""),
        errors.OwnerDiedError("00", None, ""), errors.OutOfMemoryError("killed"), errors.RaySystemError("gcs")])
    assert DRIVER_LOST == errors.LocalRayletDiedError.__name__


@pytest.mark.ray
def test_an_item_that_kills_its_worker_on_every_retry_is_reported_lost_and_the_others_complete():
    items = [functools.partial(abs, -1), functools.partial(os._exit, 1), functools.partial(abs, -3)]
    results: list = [None] * len(items)
    with ray_runtime(workers=2):
        RayBackend().map(operator.call, items, results.__setitem__, lost=lambda item, message: message)
    assert results == [1, f"WorkerCrashedError: its worker died on each of {TASK_RETRIES + 1} attempts", 3]
