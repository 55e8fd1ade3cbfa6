"""One model serving many shard workers: requests that arrive together share one forward pass.

On a GPU cluster the shard workers decode and run the CPU stages; each model (RAFT flow, the motion
estimator, SAM2) lives once per GPU in a server (a Ray actor, see ray_executor.py), and the inputs of
clips from different shards are batched into the same forward pass (SAM2 takes clips in turn). Each
worker waits for its own answer, so a worker has at most one batch of clips in flight: memory stays
flat however many shards there are (backpressure). Engine-free: a server is plain Python with a
batching thread, tested without Ray.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from motionpipe.pipeline.fault_injection import inject_pass_fault
from motionpipe.stages.decouple import DecoupleConfig
from motionpipe.stages.flow import FlowCall, FlowConfig
from motionpipe.stages.flow_backends import FlowBackend
from motionpipe.stages.scoring import ScoringConfig, load_scorer
from motionpipe.stages.segmenters import Sam2Segmenter


@dataclass(eq=False)  # requests are distinct callers, never compared by their arrays
class Request:
    """One caller's inputs (arrays sharing their first, batch, axis) for one of the server's runs, and where its
    answer (or error) lands."""

    run: str
    inputs: tuple[np.ndarray, ...]
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: BaseException | None = None

    @property
    def items(self) -> int:
        return len(self.inputs[0])

    @property
    def kind(self) -> tuple[str, tuple[int, ...], ...]:
        """What requests sharing a pass must have in common: the run and the shapes of their items."""
        return (self.run, *(array.shape[1:] for array in self.inputs))


@dataclass(frozen=True)
class ServerLoad:
    """How a server was used: what tells whether ``max_items`` or the workers feeding it limit a run."""

    passes: int
    items: int
    busy_s: float  # in the model
    serving_s: float  # from the first call to the last answer

    def describe(self, unit: str) -> str:
        """One line for the end of a run, ``unit`` naming the items (pairs, clips)."""
        if not self.passes:
            return "no calls"
        return (
            f"{self.passes} passes, {self.items / self.passes:.1f} {unit} a pass, in the model "
            f"{self.busy_s / max(self.serving_s, 1e-9):.0%} of {self.serving_s:.1f} s serving"
        )


class TimedPasses:
    """What the driver's probes read of a server's model passes. A pass that has run for minutes is a wedged GPU
    (a CUDA call on a faulty GPU that never returns) although the process answers from its other threads; and
    a restarted server is trusted with more than one worker once a pass has ended."""

    _pass_started: float | None = None
    forward_passes = 0  # ended without an error

    @contextmanager
    def timed_pass(self) -> Iterator[None]:
        self._pass_started = time.monotonic()
        try:
            inject_pass_fault()
            yield
            self.forward_passes += 1
        finally:
            self._pass_started = None

    def probe(self) -> tuple[float, int]:
        """(seconds the model pass under way has run, 0 between passes; passes ended)."""
        started = self._pass_started
        return (time.monotonic() - started if started is not None else 0.0), self.forward_passes


class BatchingServer(TimedPasses):
    """Batches concurrent calls of its ``runs`` (by name): waits up to ``wait_s`` for more callers once one arrives,
    then runs up to ``max_items`` items (at least one whole request) in one call. Only calls of one run with inputs
    of one shape share a call (the others wait for the next one). One thread runs the model for every run:
    torchvision's RAFT keeps a call's correlation pyramid on the module, so two concurrent forward passes corrupt
    each other (seen on an H100)."""

    def __init__(self, runs: dict[str, Callable[..., np.ndarray]], max_items: int, wait_s: float) -> None:
        self.runs = runs
        self.max_items = max_items
        self.wait_s = wait_s
        self._items = 0
        self._busy_s = 0.0
        self._first_call_at: float | None = None
        self._last_answer_at = 0.0
        self._pending: list[Request] = []
        self._arrived = threading.Condition()
        threading.Thread(target=self._serve, daemon=True, name="model-batcher").start()

    def call(self, run: str, *inputs: np.ndarray) -> np.ndarray:
        """The answer of ``runs[run]`` for these inputs alone; blocks until their batch has run."""
        request = Request(run, inputs)
        with self._arrived:
            self._first_call_at = self._first_call_at or time.monotonic()
            self._pending.append(request)
            self._arrived.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def _take_batch(self) -> list[Request]:
        with self._arrived:
            self._arrived.wait_for(lambda: bool(self._pending))
            deadline = time.monotonic() + self.wait_s
            while sum(request.items for request in self._pending) < self.max_items:
                left = deadline - time.monotonic()
                if left <= 0 or not self._arrived.wait(left):
                    break
            kind = self._pending[0].kind
            batch, waiting, items = [], [], 0
            for request in self._pending:
                fits = request.kind == kind and (not batch or items + request.items <= self.max_items)
                (batch if fits else waiting).append(request)
                items += request.items if fits else 0
            self._pending = waiting
            return batch

    def _serve(self) -> None:
        while True:
            batch = self._take_batch()
            started = time.monotonic()
            try:
                stacked = [np.concatenate(arrays) for arrays in zip(*(r.inputs for r in batch), strict=True)]
                with self.timed_pass():
                    results = self.runs[batch[0].run](*stacked)
                self._items += len(results)
                start = 0
                for request in batch:
                    request.result = results[start : start + request.items]
                    start += request.items
            except Exception as error:  # noqa: BLE001 - every caller of a failed batch hears of it
                for request in batch:
                    request.error = error
            self._last_answer_at = time.monotonic()
            self._busy_s += self._last_answer_at - started
            for request in batch:
                request.done.set()

    def load(self) -> ServerLoad:
        """How the server was used so far (the driver asks each server once, when the run ends)."""
        serving_s = self._last_answer_at - self._first_call_at if self._first_call_at else 0.0
        return ServerLoad(self.forward_passes, self._items, self._busy_s, serving_s)


class FlowServer(BatchingServer):
    """The flow backend of ``config`` (RAFT on a GPU, typically), batching frame pairs: the pairs of a batch go
    through the model in one forward pass (``max_pairs`` replaces the per-worker ``flow.batch_size``)."""

    def __init__(self, config: FlowConfig, max_pairs: int = 64, wait_s: float = 0.01) -> None:
        self.backend = replace(config, batch_size=max_pairs).build_backend()
        runs = {"flow": self.backend.flow, "flow_at_measuring_size": self.backend.flow_at_measuring_size}
        super().__init__(runs, max_pairs, wait_s)

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self.call("flow", first, second)

    def flow_at_measuring_size(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self.call("flow_at_measuring_size", first, second)

    def backend_name(self) -> str:
        return self.backend.name


class ScoreServer(BatchingServer):
    """The motion estimator of ``config``, batching clips' estimator inputs into (object, camera) scores."""

    def __init__(self, config: ScoringConfig, wait_s: float = 0.01) -> None:
        score, self.version = load_scorer(config)
        super().__init__({"score": score}, config.batch_size, wait_s)

    def score(self, inputs: np.ndarray) -> np.ndarray:
        return self.call("score", inputs)

    def estimator_version(self) -> str:
        return self.version


class SegmentServer(TimedPasses):
    """SAM2 once per GPU for every worker. Its video predictor holds one clip's state at a time, so clips
    take turns (nothing to batch across clips): what is shared is the model copy, and workers need no GPU."""

    def __init__(self, config: DecoupleConfig) -> None:
        self._segmenter = config.build_segmenter()
        if not isinstance(self._segmenter, Sam2Segmenter):
            raise TypeError(f"only the sam2 segmenter is served, not {self._segmenter.name}")
        self._segmenter.setup(config.device)
        self._turn = threading.Lock()

    def propagate(self, frames: np.ndarray, points: np.ndarray) -> np.ndarray:
        with self._turn, self.timed_pass():
            return self._segmenter.propagate(frames, points)


class ServedFlow(FlowBackend):
    """A FlowBackend whose work happens in a FlowServer, reached through calls of its ``flow`` and
    ``flow_at_measuring_size``."""

    def __init__(self, name: str, flow: FlowCall, flow_at_measuring_size: FlowCall) -> None:
        self.name = name
        self._flow = flow
        self._flow_at_measuring_size = flow_at_measuring_size

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._flow(first, second)

    def flow_at_measuring_size(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._flow_at_measuring_size(first, second)
