"""The Ray engine: shard workers as actors sized by the stages' declared resources.

Besides train_estimator_ray.py (Ray Train), the only module that knows Ray. Each actor builds its
stages once (models load once per worker) and annotates whole shards; the driver hands out shards as
actors become free and polls a small counter actor for per-clip progress. With flow servers
(execution.flow_servers; by default one per GPU when RAFT runs on cuda), the flow model lives once per
GPU and batches the pairs of all workers (pipeline/flow_service.py); the workers then need CPUs only.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from pathlib import Path
from typing import Any

from pipeline.config import RunConfig
from pipeline.flow_service import FlowServer, ServedFlow
from pipeline.run_outputs import SHARD_FAILED, RunLayout
from pipeline.shard_reader import shard_name
from pipeline.shard_runner import (
    Progress,
    RunIdentity,
    ShardAnnotator,
    ShardSummary,
    build_annotation_stages,
    manifest_entry,
    worker_resources,
)
from stages.base import Resources, WorkerFault
from stages.flow import FlowStage

POLL_INTERVAL_S = 0.25


class InsufficientResourcesError(RuntimeError):
    """The cluster cannot host even one shard worker."""


class ClipCounter:
    """Collects per-clip progress from workers until the driver takes it."""

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0

    def add(self, ok: int, errors: int) -> None:
        self.ok += ok
        self.errors += errors

    def take(self) -> tuple[int, int]:
        counts = (self.ok, self.errors)
        self.ok = self.errors = 0
        return counts


class ShardWorker:
    """A Ray actor wrapping one ShardAnnotator."""

    def __init__(
        self,
        config: RunConfig,
        out_dir: str,
        identity: RunIdentity,
        counter: Any,
        device: str,
        cpus: float,
        flow_server: Any = None,
    ) -> None:
        import cv2

        # OpenCV sizes its thread pool to the machine, not to the worker's share: workers side by side would
        # oversubscribe the cores (measured: 13% slower with one worker per core). Ray sets OMP_NUM_THREADS.
        cv2.setNumThreads(max(1, int(cpus)))
        self.annotator = ShardAnnotator(config, out_dir, identity, disposable_process=True)
        if flow_server is not None:
            flow = next(stage for stage in self.annotator.stages if isinstance(stage, FlowStage))
            flow.serve_from(served_flow(flow_server))
        self.annotator.setup(device)
        self.counter = counter

    def ready(self) -> bool:
        """Answers once the constructor (stage set-up, model loading) has finished."""
        return True

    def annotate(self, shard_path: str) -> ShardSummary:
        return self.annotator.annotate(shard_path, lambda ok, errors: self.counter.add.remote(ok, errors))


def served_flow(server: Any) -> ServedFlow:
    """The flow server as this worker's flow backend; losing the server is a worker fault (the shard retries)."""
    import ray

    def call(first: Any, second: Any) -> Any:
        try:
            return ray.get(server.flow.remote(first, second))
        except ray.exceptions.RayError as error:
            raise WorkerFault(f"flow server unavailable: {type(error).__name__}: {error}") from error

    return ServedFlow(ray.get(server.backend_name.remote()), call)


def flow_server_count(config: RunConfig, cluster: dict[str, float]) -> int:
    """How many shared flow servers to start (execution.flow_servers; -1: one per GPU when RAFT runs on cuda)."""
    if config.execution.flow_servers >= 0:
        return config.execution.flow_servers
    return int(cluster.get("GPU", 0.0)) if flow_on_gpu(config) else 0


def flow_on_gpu(config: RunConfig) -> bool:
    return config.flow.neural and config.flow.device == "cuda"


def start_flow_servers(config: RunConfig, count: int, workers: int) -> list[Any]:
    """Flow model actors, one GPU each when the flow runs on cuda (restarted by Ray if they die)."""
    import ray

    gpus = 1.0 if flow_on_gpu(config) else 0.0
    server_class = ray.remote(FlowServer).options(
        num_gpus=gpus,
        num_cpus=0 if gpus else 1,
        max_concurrency=workers // max(count, 1) + 4,  # every worker's call waits in its own thread
        max_restarts=-1,
        max_task_retries=3,
    )
    execution = config.execution
    return [
        server_class.remote(config.flow, execution.flow_server_pairs, execution.flow_server_wait_ms / 1000)
        for _ in range(count)
    ]


def room_for_another(resources: Resources) -> bool:
    """Whether the cluster has free resources for one more shard worker now."""
    import ray

    free = ray.available_resources()
    return free.get("CPU", 0.0) >= resources.cpus and free.get("GPU", 0.0) >= resources.gpus


def connect(address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local instance sized to this machine.

    Returns True when this call started Ray (and so should shut it down).
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        # "local" always starts a fresh instance, never joins a cluster found through `ray start`.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    return True


def annotate_on_ray(
    shard_paths: list[str],
    config: RunConfig,
    out_dir: str | Path,
    identity: RunIdentity,
    progress: Progress,
    address: str | None = None,
) -> list[ShardSummary]:
    """Annotate shards on a Ray cluster; a shard whose worker dies is retried on a fresh worker (the clips it
    died on are counted, see clip_attempts), up to execution.max_shard_attempts, then reported failed."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    started_here = connect(address)
    try:
        cluster = ray.cluster_resources()
        servers = flow_server_count(config, cluster)
        served = frozenset({"flow"}) if servers else frozenset()
        resources = worker_resources(build_annotation_stages(config), served)
        if resources.gpus > cluster.get("GPU", 0.0):
            raise InsufficientResourcesError(
                f"the stages need {resources.gpus} GPU per worker but the Ray cluster has {cluster.get('GPU', 0.0)}; "
                "set --set flow.device=cpu, or run on a cluster with GPUs"
            )
        cluster_cpus = cluster.get("CPU", 1.0) - (0 if flow_on_gpu(config) else servers)
        count = config.execution.workers or max(1, int(cluster_cpus // max(resources.cpus, 1e-3)))
        count = min(count, len(shard_paths))
        # on the driver's node: the progress counter must not die with a worker node
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        counter = ray.remote(ClipCounter).options(num_cpus=0, scheduling_strategy=here).remote()
        worker_class = ray.remote(ShardWorker).options(num_cpus=resources.cpus, num_gpus=resources.gpus)
        device = "cuda" if resources.gpus > 0 else "cpu"
        layout = RunLayout.at(out_dir)

        flow_servers = start_flow_servers(config, servers, count)
        started = itertools.count()

        def new_worker() -> Any:
            server = flow_servers[next(started) % servers] if servers else None
            return worker_class.remote(config, str(out_dir), identity, counter, device, resources.cpus, server)

        idle = [new_worker() for _ in range(count)]
        ray.get([worker.ready.remote() for worker in idle])
        progress.start()
        queue = deque(shard_paths)
        attempts = {path: 0 for path in shard_paths}
        pending: dict[Any, tuple[Any, str]] = {}
        summaries = []
        while queue or pending:
            while idle and queue:
                worker, path = idle.pop(), queue.popleft()
                attempts[path] += 1
                pending[worker.annotate.remote(path)] = (worker, path)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_INTERVAL_S)
            progress.clips(*ray.get(counter.take.remote()))
            for ref in done:
                worker, path = pending.pop(ref)
                try:
                    summary = ray.get(ref)
                    idle.append(worker)
                except ray.exceptions.RayError as error:
                    ray.kill(worker)
                    if room_for_another(resources) or not (idle or pending):
                        idle.append(new_worker())  # else its node is gone: the survivors take its shards
                    if attempts[path] < config.execution.max_shard_attempts:
                        queue.append(path)
                        continue
                    message = f"worker failed {attempts[path]} times: {type(error).__name__}: {error}"
                    summary = ShardSummary(path, shard_name(path), SHARD_FAILED, 0, 0, 0.0, message)
                    layout.record_failed_shard(summary.name, manifest_entry(summary, identity))
                progress.shard_done(summary)
                summaries.append(summary)
        progress.clips(*ray.get(counter.take.remote()))
        return summaries
    finally:
        if started_here:
            ray.shutdown()
