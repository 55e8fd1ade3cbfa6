"""Faults on the Ray engine, for real: workers that segfault or hang on a clip, a driver killed mid-run,
a node lost mid-run. Whatever happens, the output has exactly one row per input clip."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import MOTIONPIPE, make_clip, motionpipe, rows_by_key, write_tar

from motionpipe.pipeline.fault_injection import FAULTS_ENV
from motionpipe.pipeline.server_groups import FAILED_RETURNS_TO_RETIRE
from motionpipe.pipeline.synthetic_video import Scene

pytestmark = pytest.mark.slow
STATISTICS_ONLY = ("--conditions", "none")


def small_shards(root: Path, shards: int, clips: int) -> list[str]:
    """Shards of small real clips, keys s{shard}c{clip}."""
    clip = make_clip(Scene(seed=3, pan=(6.0, 0.0)), 96, 64, seconds=1.0)
    paths = []
    for shard in range(shards):
        members = [(f"s{shard}c{index}.mp4", clip) for index in range(clips)]
        paths.append(str(write_tar(root / f"shard-{shard:03d}.tar", members)))
    return paths


def expected_keys(shards: int, clips: int) -> set[str]:
    return {f"s{shard}c{index}" for shard in range(shards) for index in range(clips)}


def assert_complete(out: Path, shards: int, clips: int) -> dict[str, dict]:
    rows = rows_by_key(out)  # asserts no duplicates
    assert set(rows) == expected_keys(shards, clips)
    assert not list(out.rglob(".*.tmp")), "temporary files left visible"
    manifest = [json.loads(p.read_text()) for p in (out / "manifest").glob("*.json")]
    assert len(manifest) == shards and {entry["status"] for entry in manifest} == {"done"}
    return rows


def test_a_clip_that_crashes_or_hangs_its_worker_becomes_an_error_row(tmp_path):
    shards = small_shards(tmp_path / "in", shards=1, clips=6)
    out = tmp_path / "out"
    done = motionpipe(
        "annotate", *shards, str(out), "--workers", "1", *STATISTICS_ONLY,
        "--set", "execution.batch_size=2", "--set", "execution.clip_timeout_s=10",
        env={FAULTS_ENV: "crash:s0c1,hang:s0c4"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = assert_complete(out, shards=1, clips=6)
    assert (rows["s0c1"]["status"], rows["s0c1"]["error"]) == ("error", "worker:crashed")
    assert (rows["s0c4"]["status"], rows["s0c4"]["error"]) == ("error", "worker:timeout")
    assert "died 2 times" in rows["s0c1"]["error_detail"]
    for key in ("s0c0", "s0c2", "s0c3", "s0c5"):  # batch-mates of the bad clips were rerun alone and are fine
        assert rows[key]["status"] == "ok", rows[key]


def test_a_killed_driver_resumes_to_exactly_one_row_per_clip(tmp_path):
    shards = small_shards(tmp_path / "in", shards=6, clips=3)
    out = tmp_path / "out"
    # the last shard's first clip hangs its worker, so the first run cannot be done when it is killed (on a fast
    # machine the other shards were all published between two looks at the manifest)
    driver = subprocess.Popen(
        [MOTIONPIPE, "annotate", *shards, str(out), *STATISTICS_ONLY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, FAULTS_ENV: "hang:s5c0"},
    )  # fmt: skip
    try:
        wait_for(lambda: len(list((out / "manifest").glob("*.json"))) >= 1, timeout=120)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    # workers finish the shard they hold (published atomically, or not at all), then die with their job
    again = motionpipe("annotate", *shards, str(out), *STATISTICS_ONLY)
    assert again.returncode == 0, again.stderr
    assert "6 shard(s): 0 annotated" not in again.stdout, "the first run finished before it was killed"
    rows = assert_complete(out, shards=6, clips=3)
    assert all(row["status"] == "ok" for row in rows.values())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.2)


def alive_nodes(address: str, env: dict[str, str]) -> int:
    count = "import ray; ray.init(address='%s', log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run([sys.executable, "-c", count % address], env=env, capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0


@contextlib.contextmanager
def ray_head(*options: str, faults: str = ""):
    """A head started with `ray start` for the block -> (its address, the environment that reaches it, join):
    ``join(*options)`` starts another node on it (its own process group, killed at the end if still up)."""
    port = free_port()
    ray_tmp = tempfile.mkdtemp(prefix="mp-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp, FAULTS_ENV: faults}
    ray = str(Path(MOTIONPIPE).parent / "ray")
    head = subprocess.run(
        [ray, "start", "--head", f"--port={port}", "--include-dashboard=false", "--disable-usage-stats", *options],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert head.returncode == 0, head.stderr[-2000:]
    nodes: list[subprocess.Popen] = []

    def join(*node_options: str) -> subprocess.Popen:
        nodes.append(subprocess.Popen(
            [ray, "start", f"--address=127.0.0.1:{port}", "--block", "--disable-usage-stats", *node_options],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ))  # fmt: skip
        return nodes[-1]

    try:
        yield f"127.0.0.1:{port}", env, join
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_losing_a_node_mid_run_keeps_every_row_exactly_once(tmp_path):
    shards = small_shards(tmp_path / "in", shards=6, clips=3)
    out = tmp_path / "out"
    with ray_head("--num-cpus=1") as (address, env, join):
        second = join("--num-cpus=1", "--resources", '{"second_node": 1}')
        wait_for(lambda: alive_nodes(address, env) == 2, timeout=60)
        driver = subprocess.Popen(
            [MOTIONPIPE, "annotate", *shards, str(out), "--address", address, *STATISTICS_ONLY],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: len(list((out / "manifest").glob("*.json"))) >= 1, timeout=120)
        os.killpg(second.pid, signal.SIGKILL)  # the second node's raylet, object store and workers
        stdout, stderr = driver.communicate(timeout=300)
        assert driver.returncode == 0, stderr
        assert_complete(out, shards=6, clips=3)


def test_address_auto_joins_the_cluster_that_ray_start_began(tmp_path):
    """On the cluster launcher's head (ray_cluster.yaml), `annotate --address auto` finds the running cluster and
    runs its workers there; it leaves the cluster up."""
    shards = small_shards(tmp_path / "in", shards=2, clips=2)
    with ray_head("--num-cpus=2") as (address, env, _):  # no cluster found: ray.init("auto") raises, never starts one
        done = subprocess.run(
            [MOTIONPIPE, "annotate", *shards, str(tmp_path / "out"), "--address", "auto", *STATISTICS_ONLY],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert alive_nodes(address, env) == 1  # still up after the run
    assert_complete(tmp_path / "out", shards=2, clips=2)


RAFT_ON_CUDA = ("--flow-backend", "raft_small", "--allow-random-weights", "--set", "flow.device=cuda")
WAIT_FOR_GPU = """
import sys, time, ray
from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.ray_executor import wait_for_gpu
from motionpipe.pipeline.shard_runner import SilentProgress

class Shown(SilentProgress):
    def waiting(self, line):
        print(line, flush=True)

ray.init(address=sys.argv[1], log_to_driver=False)
config = build_config(overrides=["flow.backend=raft_small", "flow.allow_random_weights=true", "flow.device=cuda"])
started = time.monotonic()
cluster = wait_for_gpu(config, Shown())
print(f"GPU {cluster.get('GPU', 0):g} after {time.monotonic() - started:.1f} s", flush=True)
"""


def test_a_run_on_cuda_waits_for_a_gpu_node_and_goes_on_once_one_joins():
    # the GPU nodes of an autoscaling cluster join minutes after its head
    with ray_head("--num-cpus=1", "--num-gpus=0") as (address, env, join):
        waiter = subprocess.Popen(
            [sys.executable, "-c", WAIT_FOR_GPU, address], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert waiter.stdout.readline().startswith("waiting up to 900 s for a GPU node to join the cluster")
            time.sleep(2)
            assert waiter.poll() is None  # still waiting: no GPU yet
            join("--num-cpus=1", "--num-gpus=1")
            stdout, stderr = waiter.communicate(timeout=120)
        finally:
            if waiter.poll() is None:
                waiter.kill()
    assert waiter.returncode == 0, stderr[-3000:]
    assert re.fullmatch(r"GPU 1 after \d+\.\d s\n", stdout), stdout


def test_a_run_on_cuda_that_no_gpu_node_joins_fails_clearly_after_its_wait(tmp_path):
    shards = small_shards(tmp_path / "in", shards=1, clips=1)
    with ray_head("--num-cpus=1", "--num-gpus=0") as (address, env, _):
        command = [MOTIONPIPE, "annotate", *shards, str(tmp_path / "out"), "--address", address, *RAFT_ON_CUDA,
                   "--set", "execution.gpu_wait_s=3"]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "waiting up to 3 s for a GPU node to join the cluster" in done.stderr
    assert "need 1 GPU per worker but the Ray cluster has 0 after waiting 3 s for one to join" in done.stderr
    assert not list((tmp_path / "out").glob("metadata/*.parquet"))


def flow_server_processes() -> list:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("FlowServer" in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def test_a_killed_flow_server_is_restarted_and_no_clip_is_lost(tmp_path):
    shards = small_shards(tmp_path / "in", shards=4, clips=4)
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [MOTIONPIPE, "annotate", *shards, str(out), "--workers", "1", "--set", "execution.model_servers=1",
         "--set", "execution.batch_size=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: bool(flow_server_processes()) and any((out / "manifest").glob("*.json")), timeout=120)
        victims = flow_server_processes()
        for process in victims:
            process.kill()  # SIGKILL, as the out-of-memory killer would
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert victims and driver.returncode == 0, stderr[-3000:]
    rows = assert_complete(out, shards=4, clips=4)
    assert {row["status"] for row in rows.values()} == {"ok"}  # one death of the server blames no clip


@pytest.mark.parametrize("groups", [1, 2])
def test_a_server_group_that_falls_silent_gives_up_its_workers_and_blames_no_clip(tmp_path, groups):
    """A frozen flow server (SIGSTOP: silent as a server whose node is gone with no GPU left to restart it on)
    would hold its workers until their hang watchdog (300 s a clip) stopped them and blamed their clips. The
    driver stops them after server_lost_s, has Ray restart the server, and the run goes on, with the other
    group's workers while there is one."""
    import psutil

    shards = small_shards(tmp_path / "in", shards=6, clips=3)
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [MOTIONPIPE, "annotate", *shards, str(out), "--workers", "2", "--set", f"execution.model_servers={groups}",
         "--set", "execution.batch_size=1", "--set", "execution.server_lost_s=3", *STATISTICS_ONLY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    frozen = None
    try:
        wait_for(lambda: len(flow_server_processes()) == groups and any((out / "manifest").glob("*.json")), 120)
        frozen = flow_server_processes()[0]
        frozen.suspend()
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        if frozen is not None:
            with contextlib.suppress(psutil.Error):
                frozen.resume()
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, stderr[-3000:]
    assert re.search(rf"model server group [12]/{groups} has not answered for \d+ s", stderr), stderr[-3000:]
    if groups == 1:  # with two, the other group's workers may finish the run before the restarted server answers
        assert "model server group 1/1 answers again" in stderr, stderr[-3000:]
    rows = assert_complete(out, shards=6, clips=3)
    assert {row["status"] for row in rows.values()} == {"ok"}


# two workers calling one flow server; a 3-clip batch's watchdog fires after 24 s, a wedged pass is found after 8
ONE_SERVER_GROUP = ("--workers", "2", *STATISTICS_ONLY, "--set", "execution.model_servers=1", "--set",
                    "execution.batch_size=3", "--set", "execution.server_lost_s=3", "--set",
                    "execution.clip_timeout_s=8")  # fmt: skip


def test_a_server_wedged_in_a_model_pass_gives_up_its_workers_and_blames_no_clip(tmp_path):
    """A flow server hung in its forward pass (a faulty GPU) still answers from its other threads. Past
    clip_timeout_s in one pass (8 s here, before the 24 s watchdog of a 3-clip batch), its group is lost and
    its server restarted, and the run completes with every clip ok."""
    shards = small_shards(tmp_path / "in", shards=4, clips=3)
    claim = tmp_path / "hang-pass-claimed"
    done = motionpipe(
        "annotate", *shards, str(tmp_path / "out"), *ONE_SERVER_GROUP, env={FAULTS_ENV: f"hang-pass:{claim}"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert claim.exists()  # the fault fired
    assert re.search(r"model server group 1/1 has been in one model pass for \d+ s", done.stderr), done.stderr[-3000:]
    assert "model server group 1/1 answers again" in done.stderr
    rows = assert_complete(tmp_path / "out", shards=4, clips=3)
    assert {row["status"] for row in rows.values()} == {"ok"}


def test_a_run_whose_only_server_group_is_lost_fails_clearly_and_a_rerun_completes_it(tmp_path):
    # gpu_wait_s 0: no waiting for a lost group to come back (a cluster whose only GPU failed)
    shards = small_shards(tmp_path / "in", shards=4, clips=3)
    out = tmp_path / "out"
    wedged = {FAULTS_ENV: f"hang-pass:{tmp_path / 'claim'}"}
    failed = motionpipe("annotate", *shards, str(out), *ONE_SERVER_GROUP, "--set", "execution.gpu_wait_s=0", env=wedged)
    assert failed.returncode == 2, failed.stderr[-3000:]
    lost = r"every model server group is lost and none came back within 0 s \(execution.gpu_wait_s\); [1-4] shard"
    assert re.search(lost + r"\(s\) not annotated: rerun to resume", failed.stderr), failed.stderr[-3000:]
    assert motionpipe("annotate", *shards, str(out), *ONE_SERVER_GROUP).returncode == 0
    rows = assert_complete(out, shards=4, clips=3)
    assert {row["status"] for row in rows.values()} == {"ok"}


def test_a_server_group_that_wedges_again_after_each_restart_is_retired(tmp_path):
    """Every pass hangs, restarted servers' too (a faulty GPU): the group comes back, takes one worker on
    probation and is lost again, FAILED_RETURNS_TO_RETIRE times; then it is retired, not restarted, and with no
    other group the run fails clearly once gpu_wait_s has passed."""
    shards = small_shards(tmp_path / "in", shards=4, clips=3)
    quick = ("--set", "execution.clip_timeout_s=4", "--set", "execution.gpu_wait_s=12")  # lost after 4 s in a pass
    failed = motionpipe("annotate", *shards, str(tmp_path / "out"), *ONE_SERVER_GROUP, *quick,
                        env={FAULTS_ENV: "hang-pass:*"})  # fmt: skip
    assert failed.returncode == 2, failed.stderr[-3000:]
    returns = f"retired: it came back {FAILED_RETURNS_TO_RETIRE} times in a row and was lost again before ending"
    assert failed.stderr.count("answers again") == FAILED_RETURNS_TO_RETIRE and returns in failed.stderr, failed.stderr
    assert "every model server group is lost (1 of them retired: faulty GPUs) and none came back" in failed.stderr
    assert not list((tmp_path / "out").glob("metadata/*.parquet"))  # no pass ever ended: no shard done


def shard_worker_processes(node: int | None = None) -> list:
    """Running shard workers (Ray titles their processes by actor class), under one node's process if given."""
    import psutil

    processes = psutil.Process(node).children(recursive=True) if node else list(psutil.process_iter())
    found = []
    for process in processes:
        try:
            if any("ShardWorker" in part for part in process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def run_while_a_node_joins(
    shards: list[str], out: Path, gpus: int, node_cpus: int, *options: str
) -> subprocess.CompletedProcess:
    """annotate on a 1-CPU head whose worker hangs on s0c1 (its watchdog stops it after 20 s) while a node with
    ``node_cpus`` joins (each with ``gpus``) -> the finished driver."""
    with ray_head("--num-cpus=1", f"--num-gpus={gpus}", faults="hang:s0c1") as (address, env, join):
        command = [MOTIONPIPE, "annotate", *shards, str(out), "--address", address, *options, *STATISTICS_ONLY,
                   "--set", "execution.clip_timeout_s=20", "--set", "execution.batch_size=1"]  # fmt: skip
        driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: bool(shard_worker_processes()) or driver.poll() is not None, timeout=120)
        second = join(f"--num-cpus={node_cpus}", f"--num-gpus={gpus}")
        wait_for(lambda: bool(shard_worker_processes(second.pid)) or driver.poll() is not None, timeout=120)
        assert shard_worker_processes(second.pid), "no worker started on the node that joined"
        stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr[-3000:]
    return subprocess.CompletedProcess(command, driver.returncode, stdout, stderr)


def test_a_node_joining_mid_run_gets_a_waiting_worker(tmp_path):
    # workers sized to the cluster, a 1-CPU head for now: one runs and hangs, one more waits for room
    shards = small_shards(tmp_path / "in", shards=4, clips=3)
    run_while_a_node_joins(shards, tmp_path / "out", 0, 1)
    rows = assert_complete(tmp_path / "out", shards=4, clips=3)
    assert rows["s0c1"]["error"] == "worker:timeout"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_node_joining_mid_run_gets_its_own_flow_server(tmp_path):
    # both nodes claim one GPU (the same one on a 1-GPU machine). The worker that waited for room lands on the
    # joined node calling the first server; the next one started there gets the joined GPU's server
    shards = small_shards(tmp_path / "in", shards=8, clips=3)
    raft = ("--flow-backend", "raft_small", "--allow-random-weights", "--set", "flow.device=cuda")
    driver = run_while_a_node_joins(shards, tmp_path / "out", 1, 2, *raft)
    assert_complete(tmp_path / "out", shards=8, clips=3)
    passes = [int(count) for count in re.findall(r"^flow server \d/2: (\d+) passes", driver.stdout, re.M)]
    assert len(passes) == 2 and min(passes) > 0, driver.stdout
