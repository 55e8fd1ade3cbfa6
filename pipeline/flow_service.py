"""One flow model serving many shard workers: requests that arrive together share one forward pass.

On a GPU cluster the shard workers decode and run the CPU stages; the flow model (RAFT) lives once per
GPU in a ``FlowServer`` (a Ray actor, see ray_executor.py), and the frame pairs of clips from different
shards are batched into the same forward pass. Each worker waits for its own answer, so a worker has
at most one batch of clips in flight: memory stays flat however many shards there are (backpressure).
Engine-free: the server is plain Python with a batching thread, tested here without Ray.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from stages.flow import FlowConfig
from stages.flow_backends import FlowBackend


@dataclass(eq=False)  # requests are distinct callers, never compared by their arrays
class FlowRequest:
    """One caller's pairs, and where its answer (or error) lands."""

    first: np.ndarray
    second: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    flow: np.ndarray | None = None
    error: BaseException | None = None


class FlowServer:
    """Batches concurrent ``flow`` calls: waits up to ``wait_s`` for more callers once one arrives, then runs
    up to ``max_pairs`` pairs (at least one whole request) in one call of the backend. Only frames of one size
    share a pass (clips of other aspect ratios wait for the next one)."""

    def __init__(self, config: FlowConfig, max_pairs: int = 64, wait_s: float = 0.01) -> None:
        self.backend = config.build_backend()
        self.name = self.backend.name
        self.max_pairs = max_pairs
        self.wait_s = wait_s
        self.forward_passes = 0
        self._pending: list[FlowRequest] = []
        self._arrived = threading.Condition()
        threading.Thread(target=self._serve, daemon=True, name="flow-batcher").start()

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Same contract as ``FlowBackend.flow``; blocks until this request's batch has run."""
        request = FlowRequest(first, second)
        with self._arrived:
            self._pending.append(request)
            self._arrived.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.flow

    def backend_name(self) -> str:
        return self.name

    def _take_batch(self) -> list[FlowRequest]:
        with self._arrived:
            self._arrived.wait_for(lambda: bool(self._pending))
            deadline = time.monotonic() + self.wait_s
            while sum(len(r.first) for r in self._pending) < self.max_pairs:
                left = deadline - time.monotonic()
                if left <= 0 or not self._arrived.wait(left):
                    break
            shape = self._pending[0].first.shape[1:]
            batch, waiting, pairs = [], [], 0
            for request in self._pending:
                fits = request.first.shape[1:] == shape and (not batch or pairs + len(request.first) <= self.max_pairs)
                (batch if fits else waiting).append(request)
                pairs += len(request.first) if fits else 0
            self._pending = waiting
            return batch

    def _serve(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                flows = self.backend.flow(
                    np.concatenate([r.first for r in batch]), np.concatenate([r.second for r in batch])
                )
                self.forward_passes += 1
                start = 0
                for request in batch:
                    request.flow = flows[start : start + len(request.first)]
                    start += len(request.first)
            except Exception as error:  # noqa: BLE001 - every caller of a failed batch hears of it
                for request in batch:
                    request.error = error
            for request in batch:
                request.done.set()


class ServedFlow(FlowBackend):
    """A FlowBackend whose work happens in a FlowServer reached through ``call(first, second)``."""

    def __init__(self, name: str, call) -> None:
        self.name = name
        self._call = call

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._call(first, second)
