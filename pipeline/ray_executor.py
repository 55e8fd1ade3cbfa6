"""The Ray engine: shard workers as actors sized by the stages' declared resources.

Besides train_estimator_ray.py (Ray Train) and server_groups.py (the model servers, as the driver sees
them), the only module that knows Ray. Each actor builds its
stages once (models load once per worker) and annotates whole shards; the driver hands out shards as
actors become free and polls a small counter actor for per-clip progress. With model servers
(execution.model_servers; by default one of each per GPU for the models on cuda), RAFT, the estimator
and SAM2 live once per GPU and serve all workers (pipeline/model_service.py); the workers then need
CPUs only.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from motionpipe.pipeline.clip_attempts import AttemptsBook
from motionpipe.pipeline.config import RunConfig
from motionpipe.pipeline.model_service import ServedFlow
from motionpipe.pipeline.run_outputs import SHARD_FAILED, RunLayout
from motionpipe.pipeline.server_groups import ServerGroups
from motionpipe.pipeline.shard_reader import shard_name
from motionpipe.pipeline.shard_runner import (
    Progress,
    RunIdentity,
    ShardAnnotator,
    ShardSummary,
    build_annotation_stages,
    manifest_entry,
    worker_resources,
)
from motionpipe.stages.base import Resources, Stage, WorkerFault
from motionpipe.stages.decouple import DecoupleStage
from motionpipe.stages.flow import FlowStage
from motionpipe.stages.scoring import ScoringStage

POLL_INTERVAL_S = 0.25
GPU_POLL_S = 1.0  # how often a run that waits for a GPU node looks again
SERVED_WORKER_CPUS = 0.5  # a worker whose flow a GPU server computes: two a core (execution.worker_cpus)


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
        attempts_book: Any,
        device: str,
        cpus: float,
        servers: dict[str, Any] | None = None,
    ) -> None:
        import cv2

        # OpenCV sizes its thread pool to the machine, not to the worker's share: workers side by side would
        # oversubscribe the cores (measured: 13% slower with one worker per core). Ray sets OMP_NUM_THREADS.
        cv2.setNumThreads(max(1, int(cpus)))
        book = RemoteAttemptsBook(attempts_book)
        self.annotator = ShardAnnotator(config, out_dir, identity, disposable_process=True, attempts_book=book)
        serve_stages(self.annotator.stages, servers or {})
        self.annotator.setup(device)
        self.counter = counter

    def ready(self) -> bool:
        """Answers once the constructor (stage set-up, model loading) has finished."""
        return True

    def annotate(self, shard_path: str) -> ShardSummary:
        return self.annotator.annotate(shard_path, lambda ok, errors: self.counter.add.remote(ok, errors))


def remote_call(method: Any, what: str) -> Any:
    """A blocking call of a server's method; losing the server is a worker fault (the shard is retried)."""
    import ray

    def call(*inputs: Any) -> Any:
        try:
            return ray.get(method.remote(*inputs))
        except ray.exceptions.RayError as error:
            raise WorkerFault(f"{what} server unavailable: {type(error).__name__}: {error}") from error

    return call


class RemoteAttemptsBook:
    """The run's AttemptsBook actor, called as if it were here; every call returns once the book has it (a
    batch must be recorded in flight before it runs)."""

    def __init__(self, book: Any) -> None:
        self.read = remote_call(book.read, "attempts book")
        self.write = remote_call(book.write, "attempts book")
        self.remove = remote_call(book.remove, "attempts book")


def serve_stages(stages: list[Stage], servers: dict[str, Any]) -> None:
    """Point the worker's model stages at their shared servers (``servers``: stage name -> actor handle)."""
    import ray

    for stage in stages:
        if isinstance(stage, FlowStage) and "flow" in servers:
            server = servers["flow"]
            name = ray.get(server.backend_name.remote())
            stage.serve_from(
                ServedFlow(name, remote_call(server.flow, "flow"), remote_call(server.flow_at_measuring_size, "flow"))
            )
        if isinstance(stage, ScoringStage) and "scoring" in servers:
            version = ray.get(servers["scoring"].estimator_version.remote())
            stage.serve_from(remote_call(servers["scoring"].score, "score"), version)
        if isinstance(stage, DecoupleStage) and "decouple" in servers:
            stage.serve_from(remote_call(servers["decouple"].propagate, "segment"))


def servable_models(config: RunConfig) -> list[str]:
    """The model stages a server can hold: flow always, scoring with a checkpoint, decouple with SAM2."""
    sam2 = config.decouple.segmenter == "sam2"
    return ["flow", *(["scoring"] if config.scoring.checkpoint else []), *(["decouple"] if sam2 else [])]


def models_on_gpu(config: RunConfig) -> list[str]:
    """The model stages configured to run on cuda."""
    on_gpu = {
        "flow": config.flow.neural and config.flow.device == "cuda",
        "scoring": config.scoring.device == "cuda",
        "decouple": config.decouple.device == "cuda",
    }
    return [name for name in servable_models(config) if on_gpu[name]]


def served_models(config: RunConfig, cluster: dict[str, float]) -> tuple[list[str], int]:
    """(model stages given shared servers, servers of each): execution.model_servers, or with -1 one of each
    per GPU for the models on cuda."""
    if config.execution.model_servers == -1:
        models, count = models_on_gpu(config), int(cluster.get("GPU", 0.0))
    else:
        models, count = servable_models(config), config.execution.model_servers
    return (models, count) if models and count else ([], 0)


def worker_share(config: RunConfig, models: list[str]) -> Resources:
    """What one shard worker reserves: its stages' demand (a stage that a server runs needs a CPU in the worker),
    or ``execution.worker_cpus`` CPUs when set. By default a worker whose flow a GPU server computes takes
    half a CPU: it idles while its pairs queue for and go through the GPU, so one a core would leave both the
    cores and the GPU waiting part of the time."""
    needs = worker_resources(build_annotation_stages(config), frozenset(models))
    if config.execution.worker_cpus:
        return replace(needs, cpus=config.execution.worker_cpus)
    if "flow" in models and "flow" in models_on_gpu(config) and not needs.gpus:
        return replace(needs, cpus=min(needs.cpus, SERVED_WORKER_CPUS))
    return needs


def worker_size(resources: Resources) -> str:
    """``0.5 CPU``, ``1 CPU + 1 GPU``: what each worker reserved, for the end-of-run lines."""
    return f"{resources.cpus:g} CPU" + (f" + {resources.gpus:g} GPU" if resources.gpus else "")


def workers_that_fit(resources_of: dict[str, float], resources: Resources) -> int:
    """How many shard workers ``resources_of`` (a cluster's total or free resources) holds side by side."""
    needs = {"CPU": resources.cpus, "GPU": resources.gpus}
    fits = [resources_of.get(name, 0.0) / need for name, need in needs.items() if need]
    return int(min(fits)) if fits else 1


def room_for(resources: Resources) -> bool:
    """Whether the cluster has free resources for one more shard worker now."""
    import ray

    return workers_that_fit(ray.available_resources(), resources) >= 1


def wait_for_gpu(config: RunConfig, progress: Progress) -> dict[str, float]:
    """The cluster's resources, once it has a GPU if the stages need one and none is there yet: the GPU nodes
    of an autoscaling cluster join minutes after its head (ray_cluster.yaml's head has none), so the run asks
    the autoscaler for one and waits up to ``execution.gpu_wait_s`` instead of failing at once."""
    import ray
    from ray.autoscaler.sdk import request_resources

    cluster = ray.cluster_resources()
    wait_s = config.execution.gpu_wait_s
    if cluster.get("GPU", 0.0) or not wait_s or not worker_resources(build_annotation_stages(config)).gpus:
        return cluster
    progress.waiting(f"waiting up to {wait_s:g} s for a GPU node to join the cluster (stages on cuda need one)")
    request_resources(bundles=[{"GPU": 1}])
    try:
        deadline = time.monotonic() + wait_s
        while not cluster.get("GPU", 0.0) and time.monotonic() < deadline:
            time.sleep(GPU_POLL_S)
            cluster = ray.cluster_resources()
    finally:
        request_resources()  # withdrawn: from here on the run's own actors are the demand an autoscaler sees
    return cluster


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
        # a local instance is this machine: no GPU joins it later
        cluster = wait_for_gpu(config, progress) if address else ray.cluster_resources()
        models, groups = served_models(config, cluster)
        if groups > cluster.get("GPU", 0.0) and set(models) & set(models_on_gpu(config)):
            raise InsufficientResourcesError(
                f"{groups} model server group(s) on cuda need as many GPUs; the cluster has {cluster.get('GPU', 0.0)}"
            )
        resources = worker_share(config, models)
        if resources.gpus > cluster.get("GPU", 0.0):
            wait_s = config.execution.gpu_wait_s if address else 0
            waited = f" after waiting {wait_s:g} s for one to join" if wait_s else ""
            raise InsufficientResourcesError(
                f"the stages need {resources.gpus:g} GPU per worker but the Ray cluster has "
                f"{cluster.get('GPU', 0.0):g}{waited}; set --set flow.device=cpu, or run on a cluster with GPUs"
            )
        # auto: one worker per shard at most, as many as the cluster holds, growing as nodes join
        target = min(config.execution.workers or len(shard_paths), len(shard_paths))
        # on the driver's node: the progress counter and the attempts book must not die with a worker node
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        counter = ray.remote(ClipCounter).options(num_cpus=0, scheduling_strategy=here).remote()
        attempts_book = ray.remote(AttemptsBook).options(num_cpus=0, scheduling_strategy=here).remote()
        worker_class = ray.remote(ShardWorker).options(num_cpus=resources.cpus, num_gpus=resources.gpus)
        device = "cuda" if resources.gpus > 0 else "cpu"
        layout = RunLayout.at(out_dir)

        initial = min(target, workers_that_fit(cluster, resources))
        server_groups = ServerGroups(config, models, [model for model in models if model in models_on_gpu(config)])
        server_groups.add(groups, initial)
        workers_ready = 0  # set up and given shards (one still waiting for room at the end is not counted)
        starting: dict[Any, Any] = {}  # ready() of a worker being placed or set up -> the worker
        idle: list[Any] = []
        pending: dict[Any, tuple[Any, str]] = {}  # annotate() of a busy worker -> (worker, shard)
        stopped: set[Any] = set()  # workers stopped because their server group fell silent
        all_lost_since: float | None = None

        def serve_new_gpus() -> None:
            """With one server group per GPU (model_servers -1), GPUs that joined since get groups of their own;
            else the workers on new GPU nodes would all call the first nodes' servers."""
            if config.execution.model_servers != -1:
                return
            now = ray.cluster_resources()
            new = served_models(config, now)[1] - len(server_groups)
            if new > 0:
                server_groups.add(new, workers_that_fit(now, resources))

        def start_worker() -> None:
            """A worker calling the answering server group with the fewest workers; none while every group is lost."""
            group = None
            if len(server_groups):
                serve_new_gpus()
                group = server_groups.pick()
                if group is None:
                    return
            servers = server_groups.servers(group) if group is not None else None
            worker = worker_class.remote(
                config, str(out_dir), identity, counter, attempts_book, device, resources.cpus, servers
            )
            if group is not None:
                server_groups.attach(worker, group)
            starting[worker.ready.remote()] = worker

        def stop_workers_of(group: int) -> None:
            """Its calls would block until the hang watchdog blamed their clips: its shards go elsewhere now."""
            for worker in server_groups.workers_of(group):
                ray.kill(worker)
                server_groups.detach(worker)
                stopped.add(worker)
            idle[:] = [worker for worker in idle if worker not in stopped]

        for _ in range(initial):
            start_worker()
        queue = deque(shard_paths)
        attempts = {path: 0 for path in shard_paths}
        summaries = []
        while queue or pending:
            for group in server_groups.check(progress):
                stop_workers_of(group)
            all_lost_since = (all_lost_since or time.monotonic()) if server_groups.all_lost() else None
            if all_lost_since and time.monotonic() - all_lost_since > config.execution.gpu_wait_s:
                faulty = server_groups.count_retired()
                retired = f" ({faulty} of them retired: faulty GPUs)" if faulty else ""
                raise InsufficientResourcesError(
                    f"every model server group is lost{retired} and none came back within "
                    f"{config.execution.gpu_wait_s:g} s (execution.gpu_wait_s); {len(queue) + len(pending)} shard(s) "
                    "not annotated: rerun to resume"
                )
            if queue and len(starting) + len(idle) + len(pending) < target and (not starting or room_for(resources)):
                # into free room; else one worker waits for room, which an autoscaler adds a node for
                start_worker()
            while idle and queue:
                worker, path = idle.pop(), queue.popleft()
                attempts[path] += 1
                pending[worker.annotate.remote(path)] = (worker, path)
            if not (pending or starting):
                time.sleep(POLL_INTERVAL_S)  # every server group is lost: wait for one to answer again
            done, _ = ray.wait([*pending, *starting], num_returns=1, timeout=POLL_INTERVAL_S)
            progress.clips(*ray.get(counter.take.remote()))
            for ref in done:
                if ref in starting:
                    worker = starting.pop(ref)
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayError:
                        server_groups.detach(worker)
                        if not workers_ready and worker not in stopped:
                            raise  # the stages cannot set up (the error says why): every worker would fail
                        continue  # its node went away before it was ready, or its server group fell silent
                    if not workers_ready:
                        progress.start()
                    workers_ready += 1
                    if worker not in stopped:  # ready just before it was stopped
                        idle.append(worker)
                    continue
                worker, path = pending.pop(ref)
                try:
                    summary = ray.get(ref)
                    if worker not in stopped:  # done just before it was stopped
                        idle.append(worker)
                except ray.exceptions.RayError as error:
                    ray.kill(worker)
                    server_groups.detach(worker)
                    if worker in stopped:
                        ray.get(attempts_book.forgive_in_flight.remote(shard_name(path)))
                    if not (idle or pending or starting):
                        start_worker()  # else the others take its shards, and new ones start where there is room
                    if attempts[path] < config.execution.max_shard_attempts:
                        queue.append(path)
                        continue
                    message = f"worker failed {attempts[path]} times: {type(error).__name__}: {error}"
                    summary = ShardSummary(path, shard_name(path), SHARD_FAILED, 0, 0, 0.0, message)
                    layout.record_failed_shard(summary.name, manifest_entry(summary, identity))
                progress.shard_done(summary)
                summaries.append(summary)
        progress.clips(*ray.get(counter.take.remote()))
        progress.note(f"shard workers: {workers_ready} ran, {worker_size(resources)} each")
        server_groups.note_loads(progress)
        return summaries
    finally:
        if started_here:
            ray.shutdown()
