"""The Ray engine on a real two-node Ray cluster started on this machine, compared with the local engine.

The cluster is two `ray start --block` processes (a head and a worker node, one CPU each) with their own temp
directory and auth token; teardown kills exactly the processes they started, found through /proc.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import SHARDS, cli, load_summary, write_shard

from audit.config import ScanConfig
from audit.errors import UsageError
from audit.executors.ray import ScanWorker

pytestmark = [pytest.mark.ray, pytest.mark.shared_data]

RAY = str(Path(sys.executable).with_name("ray"))
UNIT_MB = "1"  # cut the four shards into a dozen units, so that a run has a middle to kill a worker in


@dataclass
class Cluster:
    address: str
    token: dict[str, str]  # RAY_AUTH_MODE and RAY_AUTH_TOKEN: what a driver needs to join
    nodes: list[subprocess.Popen]

    def processes(self) -> list[int]:
        return _processes(self.nodes)

    def driver_env(self) -> dict[str, str]:
        return {**os.environ, **self.token}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (Ray's workers start their own sessions, so a process group misses them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _processes(nodes: list[subprocess.Popen]) -> list[int]:
    return [pid for node in nodes for pid in _descendants(node.pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
               "--dashboard-agent-listen-port", str(_free_port()), *args]
    with open(log, "w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_started(node: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 180  # a loaded CI machine can be slow to start Ray
    while "Ray runtime started" not in log.read_text():
        if node.poll() is not None or time.time() > deadline:
            raise AssertionError(f"ray start did not come up:\n{log.read_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live below it
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = _free_port()
    head_log, worker_log = Path(temp_dir) / "head.log", Path(temp_dir) / "worker.log"
    nodes = [_start_node(["--head", "--port", str(port), "--ray-client-server-port", str(_free_port()),
                          "--include-dashboard", "false", "--temp-dir", temp_dir], env, head_log)]
    try:
        _wait_started(nodes[0], head_log)
        nodes.append(_start_node(["--address", f"127.0.0.1:{port}"], env, worker_log))
        _wait_started(nodes[1], worker_log)
        yield Cluster(f"127.0.0.1:{port}", {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}, nodes)
    finally:
        for pid in _processes(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for node in nodes:
            node.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("local") / "run"
    cli("scan", str(SHARDS), "--out", str(run), "--unit-mb", UNIT_MB, check=True)
    return run


def _ray_scan(cluster: Cluster, run: Path, source: str = str(SHARDS), *options: str) -> list[str]:
    return [sys.executable, "-m", "audit", "scan", source, "--out", str(run), "--unit-mb", UNIT_MB,
            "--engine", "ray", "--ray-address", cluster.address, "--workers", "2", *options]


def _assert_same_results(run: Path, expected: Path) -> None:
    assert _without_timings(load_summary(run)) == _without_timings(load_summary(expected))
    assert pq.read_table(run / "passages.parquet").equals(pq.read_table(expected / "passages.parquet"))
    assert pq.read_table(run / "clusters.parquet").equals(pq.read_table(expected / "clusters.parquet"))
    assert sorted(p.name for p in (run / "units").iterdir()) == sorted(p.name for p in (expected / "units").iterdir())


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k}
    return value


def test_ray_cluster_scan_equals_local_scan(cluster, local_run, tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        _ray_scan(cluster, run, str(SHARDS), "--progress"), capture_output=True, text=True, env=cluster.driver_env()
    )
    assert done.returncode == 0, done.stderr
    assert "100%|" in done.stderr, "the workers' per-batch progress did not reach the driver's bar"
    _assert_same_results(run, local_run)
    assert load_summary(run)["corpus"]["units"] >= 8

    again = subprocess.run(_ray_scan(cluster, run), capture_output=True, text=True, env=cluster.driver_env())
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_worker_killed_mid_run_is_retried_by_ray(cluster, local_run, tmp_path):
    run = tmp_path / "run"
    # The shards as a URI, read through pyarrow's filesystems on the workers: the path s3://... inputs take.
    driver = subprocess.Popen(
        _ray_scan(cluster, run, SHARDS.as_uri()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.driver_env(),
    )
    deadline = time.time() + 120
    victim = None
    while victim is None and time.time() < deadline and driver.poll() is None:
        if (run / "units").is_dir() and any((run / "units").glob("*.json")):  # actors are up and working
            busy = [pid for pid in cluster.processes() if _cmdline(pid).startswith("ray::ScanWorker.scan")]
            victim = busy[0] if busy else None
        time.sleep(0.05)
    assert victim is not None, "no worker was caught scanning a unit"
    units_before = len(list((run / "units").glob("*.json")))
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr
    assert units_before < load_summary(run)["corpus"]["units"], "the kill came after the last unit"
    assert victim not in cluster.processes()
    assert load_summary(run)["failures"] == []
    _assert_same_results(run, local_run)


def test_a_shard_unreadable_past_its_footer_is_a_failure_as_in_local_runs(cluster, tmp_path):
    inputs = tmp_path / "in"
    write_shard(
        inputs / "good.parquet", ["The robot refused to shut down and lied to its makers. " * 10, "Bread recipe."]
    )
    bad = write_shard(
        inputs / "bad.parquet", [f"Row {i}: the android spoke softly about the weather. " * 5 for i in range(400)]
    )
    data = bytearray(bad.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 200] = b"\xff" * 200  # the footer still plans; the data pages do not read
    bad.write_bytes(bytes(data))
    local = cli("scan", str(inputs), "--out", str(tmp_path / "local"))
    on_ray = cli(
        "scan",
        str(inputs),
        "--out",
        str(tmp_path / "ray"),
        "--engine",
        "ray",
        "--ray-address",
        cluster.address,
        "--workers",
        "2",
        env=cluster.driver_env(),
    )
    assert local.returncode == on_ray.returncode == 1, on_ray.stderr
    assert [Path(f["input"]).name for f in load_summary(tmp_path / "ray")["failures"]] == ["bad.parquet"]
    _assert_same_results(tmp_path / "ray", tmp_path / "local")


def test_engine_ray_without_ray_installed_says_how_to_install(tmp_path):
    shim = "import sys; sys.modules['ray'] = None; from audit.cli import main; sys.exit(main(sys.argv[1:]))"
    shard = SHARDS / "web_mix_00000.parquet"
    done = subprocess.run(
        [sys.executable, "-c", shim, "scan", str(shard), "--out", str(tmp_path / "run"), "--engine", "ray"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'corpus-audit[ray]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_an_address_ray_starts_on_this_machine(tmp_path):
    shard = str(tmp_path / "head.parquet")  # a few hundred real documents: Ray's start-up is the cost here
    pq.write_table(pq.read_table(SHARDS / "web_mix_00003.parquet").slice(0, 300), shard)
    cli("scan", shard, "--out", str(tmp_path / "local"), check=True)
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # leaves ~/.ray alone
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | token
    cli("scan", shard, "--out", str(tmp_path / "ray"), "--engine", "ray", check=True, env=env)
    _assert_same_results(tmp_path / "ray", tmp_path / "local")


def test_a_node_that_cannot_see_the_run_directory_is_a_usage_error(tmp_path):
    worker = ScanWorker(ScanConfig(inputs=[str(SHARDS)], out=tmp_path / "run"), str(tmp_path / "elsewhere"))
    with pytest.raises(UsageError, match="elsewhere does not exist on Ray node .* every node mounts"):
        worker.ready()


def test_an_address_where_no_ray_runs_is_a_usage_error(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    done = cli(
        "scan",
        str(SHARDS / "web_mix_00000.parquet"),
        "--out",
        str(tmp_path / "run"),
        "--engine",
        "ray",
        "--ray-address",
        address,
    )
    assert done.returncode == 2, done.stderr
    assert f"no Ray head node answers at {address}" in done.stderr and "ray start --head" in done.stderr
