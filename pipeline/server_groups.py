"""The run's model server groups, as the driver sees them: which group takes a new shard worker, and which
stopped answering.

A group is one server per served model (RAFT, the estimator, SAM2), sharing one GPU. A group that answered
once and then stays silent for ``execution.server_lost_s`` (its node lost with no free GPU for Ray to
restart the servers on, or cut off) would hold its workers blocked in their calls until each one's hang
watchdog stopped it, which blames their clips (two such stops make innocent clips error rows), and a new
worker could be handed the same silent group again. So the driver stops the group's workers, has Ray
restart its servers, and gives the group workers again once all its servers answer (ray_executor.py):
one until one of its servers has ended a model pass, so that a GPU that wedges again at its first pass
holds one shard, not all its workers' shards, each time it comes back; after FAILED_RETURNS_TO_RETIRE such
returns in a row the group is retired (its servers not restarted).
A group that has never answered is starting (RAFT on cuda takes ~16 s), not lost. A server whose model
pass has run longer than a clip may take (``execution.clip_timeout_s``, and server_lost_s) is wedged (a
faulty GPU: its other threads still answer), and its group is lost the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from motionpipe.pipeline.config import RunConfig
from motionpipe.pipeline.model_service import FlowServer, ScoreServer, SegmentServer
from motionpipe.pipeline.shard_runner import Progress

PROBE_INTERVAL_S = 1.0  # how often the driver asks each server whether it answers
FAILED_RETURNS_TO_RETIRE = 3  # a group lost this many times in a row, each time back before ending a pass
SERVER_UNITS = {"flow": "pairs", "scoring": "clips"}  # what a batching server's items are


@dataclass
class ServerHealth:
    """What the driver knows of one server actor from its probes (``probe`` calls)."""

    actor: Any
    outstanding: Any = None  # the ObjectRef of its probe not yet read
    probe_sent: float = 0.0
    last_answer: float | None = None  # None: it has not answered yet (starting)
    pass_running_s: float = 0.0  # how long its model pass under way had run, at its last answer
    forward_passes: int = 0  # passes it had ended, at its last answer

    def silent_for(self, now: float) -> float:
        """Seconds since its last answer; 0 for a server still starting."""
        return now - self.last_answer if self.last_answer is not None else 0.0


@dataclass
class ServerGroup:
    servers: dict[str, ServerHealth]  # model name -> health
    workers: set[Any] = field(default_factory=set)  # shard workers calling it, alive as far as the driver knows
    lost_at: float | None = None  # when it was found silent; None while it answers
    probation: dict[str, int] | None = None  # back from a loss: each server's passes then; one worker till more
    failed_returns: int = 0  # times in a row it came back and was lost again before ending a model pass
    retired: bool = False  # for good: its GPU is taken for faulty

    def lose(self, now: float) -> None:
        """Found lost now. Lost again while on probation, it came back without its GPU computing once: after
        FAILED_RETURNS_TO_RETIRE such returns in a row the GPU is taken for faulty (it answers after each restart
        and wedges at its first pass), and the group is retired rather than costing a shard attempt each cycle."""
        self.failed_returns = self.failed_returns + 1 if self.probation is not None else 0
        self.retired = self.failed_returns >= FAILED_RETURNS_TO_RETIRE
        self.lost_at = now

    def came_back(self) -> None:
        self.lost_at = None
        self.probation = {model: health.forward_passes for model, health in self.servers.items()}

    def end_probation_if_passed(self) -> None:
        """A server has ended a pass since the group came back, so its GPU computes: it takes any number of workers
        again (any server, not every one: a model may go uncalled for a while, as SAM2 for clips without prompts)."""
        if self.probation and any(self.servers[model].forward_passes > n for model, n in self.probation.items()):
            self.probation = None

    def takes_workers(self) -> bool:
        return self.lost_at is None and not (self.probation is not None and self.workers)

    def answers_again(self) -> bool:
        """Every server answered since the group was lost: the restarted servers are up."""
        answers = [health.last_answer for health in self.servers.values()]
        return all(answer is not None and answer > self.lost_at for answer in answers)

    def trouble(self, now: float, lost_s: float, wedged_s: float) -> str | None:
        """Why the group counts as lost now (silent, or wedged in a model pass), or None."""
        silent = max(health.silent_for(now) for health in self.servers.values())
        if silent > lost_s:
            return f"has not answered for {silent:.0f} s"
        in_pass = max(health.pass_running_s for health in self.servers.values())
        return f"has been in one model pass for {in_pass:.0f} s" if in_pass > wedged_s else None


def start_servers(config: RunConfig, models: list[str], on_gpu: list[str], workers: int) -> dict[str, Any]:
    """One group's servers (model name -> actor); the models on cuda (``on_gpu``) share one GPU. Ray restarts a
    server that dies, and retries the calls it was serving."""
    import ray

    wait_s = config.execution.model_server_wait_ms / 1000
    arguments = {
        "flow": (FlowServer, (config.flow, config.execution.flow_server_pairs, wait_s)),
        "scoring": (ScoreServer, (config.scoring, wait_s)),
        "decouple": (SegmentServer, (config.decouple,)),
    }
    group = {}
    for model in models:
        server_class, args = arguments[model]
        gpus = 1.0 / len(on_gpu) if model in on_gpu else 0.0
        # no CPU reserved: a server computes while its callers wait on it, so it uses their cores.
        # Every worker's call waits in its own thread of the server, and so does the driver's probe.
        options = {"num_gpus": gpus, "num_cpus": 0, "max_restarts": -1, "max_task_retries": 3}
        group[model] = ray.remote(server_class).options(max_concurrency=workers + 4, **options).remote(*args)
    return group


class ServerGroups:
    """The run's server groups, the workers calling each, and which groups answer."""

    def __init__(self, config: RunConfig, models: list[str], on_gpu: list[str]) -> None:
        self.config = config
        self.models = models
        self.on_gpu = on_gpu
        self.groups: list[ServerGroup] = []

    def __len__(self) -> int:
        return len(self.groups)

    def add(self, count: int, workers: int) -> None:
        """Start ``count`` more groups, each with a thread for every one of ``workers`` shard workers (all of
        them may call one group once the others are lost)."""
        for _ in range(count):
            servers = start_servers(self.config, self.models, self.on_gpu, workers)
            self.groups.append(ServerGroup({model: ServerHealth(actor) for model, actor in servers.items()}))

    def pick(self) -> int | None:
        """The group a new worker should call: the answering one with the fewest workers (a group that has just
        joined takes the new workers), one back from a loss only while it has none; None if no group takes one."""
        open_groups = [index for index, group in enumerate(self.groups) if group.takes_workers()]
        return min(open_groups, key=lambda index: len(self.groups[index].workers), default=None)

    def servers(self, index: int) -> dict[str, Any]:
        return {model: health.actor for model, health in self.groups[index].servers.items()}

    def attach(self, worker: Any, index: int) -> None:
        self.groups[index].workers.add(worker)

    def detach(self, worker: Any) -> None:
        """The worker is gone (done with, failed or stopped)."""
        for group in self.groups:
            group.workers.discard(worker)

    def workers_of(self, index: int) -> set[Any]:
        return set(self.groups[index].workers)

    def all_lost(self) -> bool:
        return bool(self.groups) and all(group.lost_at is not None for group in self.groups)

    def count_retired(self) -> int:
        """How many groups were retired (taken for faulty GPUs)."""
        return sum(group.retired for group in self.groups)

    def check(self, progress: Progress) -> list[int]:
        """Read the probes that answered, send new ones, and return the groups lost since the last check (their
        servers are restarted); a lost group whose servers all answer again takes workers again."""
        import ray

        refs = [health.outstanding for group in self.groups for health in group.servers.values()]
        refs = [ref for ref in refs if ref is not None]
        answered, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        answered = set(answered)
        now = time.monotonic()
        execution = self.config.execution
        newly_lost = []
        for index, group in enumerate(self.groups):
            if group.retired:
                continue
            for health in group.servers.values():
                self._read_probe(health, health.outstanding in answered, now)
            group.end_probation_if_passed()
            trouble = group.trouble(
                now, execution.server_lost_s, max(execution.server_lost_s, execution.clip_timeout_s)
            )
            name = f"model server group {index + 1}/{len(self.groups)}"
            if group.lost_at is None and trouble:
                group.lose(now)
                newly_lost.append(index)
                fate = (
                    f"retired: it came back {group.failed_returns} times in a row and was lost again before ending "
                    "a model pass (a faulty GPU)"
                    if group.retired
                    else "restarted"
                )
                progress.waiting(
                    f"{name} {trouble}: its {len(group.workers)} worker(s) are stopped (their shards go to other "
                    f"workers, their clips are not blamed) and its servers {fate}"
                )
                for health in group.servers.values():
                    ray.kill(health.actor, no_restart=group.retired)
                    if group.retired:
                        health.outstanding = None  # never read: each check would wait on its dead ref again
            elif group.lost_at is not None and not trouble and group.answers_again():
                group.came_back()
                progress.waiting(f"{name} answers again: one worker until it ends a model pass")
        return newly_lost

    @staticmethod
    def _read_probe(health: ServerHealth, answered: bool, now: float) -> None:
        import ray

        if health.outstanding is not None and answered:
            try:
                health.pass_running_s, health.forward_passes = ray.get(health.outstanding)
                health.last_answer = now
            except ray.exceptions.RayError:
                pass  # dead for good, or restarting past its task retries: still silent
            health.outstanding = None
        if health.outstanding is None and now - health.probe_sent >= PROBE_INTERVAL_S:
            health.outstanding, health.probe_sent = health.actor.probe.remote(), now

    def note_loads(self, progress: Progress) -> None:
        """One line per flow and score server: passes, items a pass, time in the model (tuning the batch sizes)."""
        import ray

        for index, group in enumerate(self.groups, start=1):
            for model, health in group.servers.items():
                if model not in SERVER_UNITS:
                    continue
                line = "retired (a faulty GPU)" if group.retired else "lost"
                if group.lost_at is None:
                    try:
                        load = ray.get(health.actor.load.remote(), timeout=self.config.execution.server_lost_s)
                        line = load.describe(SERVER_UNITS[model])
                    except (ray.exceptions.RayError, TimeoutError) as error:
                        line = f"unavailable ({type(error).__name__})"
                progress.note(f"{model} server {index}/{len(self.groups)}: {line}")
