"""Flow stage: one flow backend per worker measures the clip's motion.

It computes forward flow on the measuring pairs (statistics, camera model) and, when tracks are
built, forward and backward flow along the tracking chain, each frame pair only once. The pairs are
analysed at the measuring size (stages/measuring_size.py: half the processing size, where DIS
resolves flow), so the backend reads them there (RAFT before the field leaves the GPU: a quarter of it
crosses to the host and back from a flow server). A pair's backward flow feeds only the forward-backward
check, so where the chain does not provide it, it is measured on frames halved by a pyramid step, which is
that size: less than half the cost of both at full size, the same decoupled scores (benchmarks/RESULTS.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from motionpipe.stages.base import ClipRecord, DecodedVideo, MotionFlows, Resources, Stage, WorkerFault
from motionpipe.stages.flow_backends import (
    DIS_PRESETS,
    RAFT_VARIANTS,
    DisFlow,
    FarnebackFlow,
    FlowBackend,
    RaftFlow,
    require_raft_weights,
)
from motionpipe.stages.flow_checks import forward_backward_consistent
from motionpipe.stages.measuring_size import field_at_measuring_size
from motionpipe.stages.motion_units import MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S, speed_pct_diag_per_s

FLOW_BACKENDS = ("dis", "farneback", *RAFT_VARIANTS)
PairsOf = Callable[[DecodedVideo], list[tuple[int, int]]]
FlowCall = Callable[[np.ndarray, np.ndarray], np.ndarray]
FLOW_MAX_PERCENTILE = 99.9
# A batch's clips share a backend call up to this many pairs, so a call's frames and flows stay under ~80 MB
# at 341x256: the default's 4 pairs a clip share one call a batch; with --conditions all a clip brings ~94
# (its tracking chain both ways) and goes alone. A whole batch in one call peaked at 1.21 GB RSS a worker
# with --conditions all at 320x240, against 0.74 GB so.
PAIRS_PER_SHARED_CALL = 64


@dataclass(frozen=True)
class FlowConfig:
    """Optical flow.

    backend: 'dis' (CPU default) | 'farneback' | 'raft_small' | 'raft_large'.
    dis_preset: 'ultrafast' | 'fast' | 'balanced' | 'medium' (speed vs accuracy; see benchmarks/RESULTS.md).
    weights: RAFT state-dict file (.pth or .safetensors); empty: torchvision's hub cache.
    allow_random_weights: run RAFT without weights (tests only; rows say '+random-weights').
    device: 'cpu' | 'cuda'; RAFT on 'cuda' asks the engine for one GPU per worker.
    batch_size: RAFT pairs per forward pass. precision: 'fp32' | 'fp16' | 'bf16' (autocast on GPU).
    raft_iterations: RAFT refinement iterations.
    mask_threshold: MotionPro motion-mask threshold in %diag/s.
    """

    backend: str = "dis"
    dis_preset: str = "balanced"
    weights: str = ""
    allow_random_weights: bool = False
    device: str = "cpu"
    batch_size: int = 8
    precision: str = "fp32"
    raft_iterations: int = 12
    mask_threshold: float = MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S

    def __post_init__(self) -> None:
        if self.backend not in FLOW_BACKENDS:
            raise ValueError(f"flow.backend {self.backend!r} unknown; choose one of {FLOW_BACKENDS}")
        if self.dis_preset not in DIS_PRESETS:
            raise ValueError(f"flow.dis_preset {self.dis_preset!r} unknown; choose one of {sorted(DIS_PRESETS)}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"flow.device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"flow.precision must be 'fp32', 'fp16' or 'bf16', got {self.precision!r}")
        if self.batch_size < 1 or self.raft_iterations < 1:
            raise ValueError("flow.batch_size and flow.raft_iterations must be >= 1")
        if self.mask_threshold <= 0:
            raise ValueError(f"flow.mask_threshold must be > 0 %diag/s, got {self.mask_threshold}")

    @property
    def neural(self) -> bool:
        return self.backend in RAFT_VARIANTS

    def check_weights(self) -> None:
        """Fail before any work starts when a neural backend has no weights (MissingWeightsError)."""
        if self.neural:
            require_raft_weights(self.backend, self.weights, self.allow_random_weights)

    def build_backend(self) -> FlowBackend:
        """The configured backend, ready to use (RAFT weights loaded)."""
        if self.backend == "dis":
            return DisFlow(self.dis_preset)
        if self.backend == "farneback":
            return FarnebackFlow()
        return RaftFlow(
            self.backend,
            weights=self.weights,
            allow_random_weights=self.allow_random_weights,
            device=self.device,
            batch_size=self.batch_size,
            precision=self.precision,
            iterations=self.raft_iterations,
        )


def shared_calls(clips: list[ClipRecord], pairs_of: PairsOf) -> list[list[ClipRecord]]:
    """Clips grouped for shared backend calls: one frame size a call, at most ``PAIRS_PER_SHARED_CALL`` pairs
    (a clip that has more goes alone); clips without pairs in none."""
    calls: list[list[ClipRecord]] = []
    filling: dict[tuple[int, ...], tuple[list[ClipRecord], int]] = {}  # frame size -> open call, its pairs
    for clip in clips:
        count = len(pairs_of(clip.video))
        if not count:
            continue
        size = clip.video.frames.shape[1:]
        call, held = filling.get(size, ([], 0))
        if not call or held + count > PAIRS_PER_SHARED_CALL:
            call, held = [], 0
            calls.append(call)
        call.append(clip)
        filling[size] = (call, held + count)
    return calls


class FlowStage(Stage):
    """Per-clip speed statistics (resolution- and frame-rate-invariant) and the flows later stages need."""

    name = "flow"

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self.resources = Resources(cpus=1.0, gpus=1.0 if config.neural and config.device == "cuda" else 0.0)
        self._backend: FlowBackend | None = None
        self._batch: dict[str, dict[int, np.ndarray]] = {}  # group -> id(clip) -> its flows, while a batch runs

    def serve_from(self, backend: FlowBackend) -> None:
        """Use a backend that lives elsewhere (a shared flow server): this worker then loads no model."""
        self._backend = backend
        self.resources = Resources(cpus=1.0)

    def setup(self, device: str = "cpu") -> None:
        if self._backend is None:
            self._backend = self.config.build_backend()

    @staticmethod
    def _frames_of(video: DecodedVideo, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        firsts, seconds = zip(*pairs, strict=True)
        return video.frames[list(firsts)], video.frames[list(seconds)]

    @staticmethod
    def _pairs_and_steps(video: DecodedVideo) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        pairs = [tuple(pair) for pair in video.pairs.tolist()]
        return pairs, list(zip(video.chain[:-1].tolist(), video.chain[1:].tolist(), strict=True))

    @classmethod
    def _full_size(cls, video: DecodedVideo) -> list[tuple[int, int]]:
        """The chain's steps, then their backward pairs: measured at full size, which tracks follow (in that order,
        so the chain's flows are slices of their call)."""
        steps = cls._pairs_and_steps(video)[1]
        return list(dict.fromkeys(steps + [(b, a) for a, b in steps]))

    @classmethod
    def _at_measuring_size(cls, video: DecodedVideo) -> list[tuple[int, int]]:
        """The measuring pairs that the chain does not give: analysed only at the measuring size."""
        full = set(cls._full_size(video))
        return [pair for pair in cls._pairs_and_steps(video)[0] if pair not in full]

    @classmethod
    def _missing_backward(cls, video: DecodedVideo) -> list[tuple[int, int]]:
        """Backward pairs of the measuring pairs that the chain does not give (measured on halved frames)."""
        full = set(cls._full_size(video))
        return [(b, a) for a, b in cls._pairs_and_steps(video)[0] if (b, a) not in full]

    def _groups(self) -> dict[str, tuple[PairsOf, FlowCall]]:
        """How a clip's pairs are measured: group -> (its pairs, the backend method that measures them)."""
        backend = self._backend
        return {
            "full": (self._full_size, backend.flow),
            "measuring": (self._at_measuring_size, backend.flow_at_measuring_size),
            "halved": (self._missing_backward, backend.flow_of_halved_frames),
        }

    def process(self, batch: list[ClipRecord]) -> list[ClipRecord]:
        """The batch's clips share backend calls (a call a group of pairs and frame size), not a call a clip:
        through a flow server each call is a round trip that waits for a GPU pass, and a worker waits on each in
        turn. If a shared call fails for another reason than a lost server, clips go one by one (a bad one fails
        alone)."""
        clips = [clip for clip in batch if clip.ok]
        try:
            self._batch = {
                group: self._flows_of_all(clips, pairs_of, measure)
                for group, (pairs_of, measure) in self._groups().items()
            }
        except WorkerFault:
            raise
        except Exception:  # noqa: BLE001 - the per-clip path below tells which clip fails and why
            self._batch = {}
        try:
            return super().process(batch)
        finally:
            self._batch = {}

    def _flows_of_all(
        self,
        clips: list[ClipRecord],
        pairs_of: PairsOf,
        measure: FlowCall,
    ) -> dict[int, np.ndarray]:
        """``measure`` over every clip's ``pairs_of`` pairs, a call per ``shared_calls`` group -> flows by
        id(clip)."""
        flows = {}
        for call in shared_calls(clips, pairs_of):
            frames = [self._frames_of(clip.video, pairs_of(clip.video)) for clip in call]
            measured = measure(*(np.concatenate(side) for side in zip(*frames, strict=True)))
            ends = np.cumsum([len(first) for first, _ in frames])
            flows.update((id(clip), chunk) for clip, chunk in zip(call, np.split(measured, ends[:-1]), strict=True))
        return flows

    def _measured(self, clip: ClipRecord, group: str) -> np.ndarray:
        """The clip's flows of a group of pairs: from the batch's shared call when it made them, else measured
        now."""
        shared = self._batch.get(group, {})
        if id(clip) in shared:
            return shared[id(clip)]
        pairs_of, measure = self._groups()[group]
        pairs = pairs_of(clip.video)
        return measure(*self._frames_of(clip.video, pairs)) if pairs else np.zeros((0,))

    def _pair_backward(
        self, clip: ClipRecord, pairs: list[tuple[int, int]], full: dict[tuple[int, int], np.ndarray]
    ) -> np.ndarray:
        """Backward flow of each measuring pair at the measuring size: the chain's where it has the pair, else
        measured on frames halved by a pyramid step (it feeds only the forward-backward check)."""
        halved = iter(self._measured(clip, "halved"))
        return np.stack([field_at_measuring_size(full[b, a]) if (b, a) in full else next(halved) for a, b in pairs])

    def process_clip(self, clip: ClipRecord) -> None:
        if self._backend is None:
            raise RuntimeError("FlowStage.setup() must run before process()")
        video = clip.video
        pairs, steps = self._pairs_and_steps(video)
        chain = self._measured(clip, "full")
        full = dict(zip(self._full_size(video), chain, strict=True))
        measuring = dict(zip(self._at_measuring_size(video), self._measured(clip, "measuring"), strict=True))
        forward = np.stack(
            [measuring[pair] if pair in measuring else field_at_measuring_size(full[pair]) for pair in pairs]
        )
        speeds = np.stack(
            [speed_pct_diag_per_s(field, video.interval_s(*pair)) for field, pair in zip(forward, pairs, strict=True)]
        )
        mean_speed = speeds.mean(axis=0)
        p50, p95, peak = np.percentile(speeds, [50, 95, FLOW_MAX_PERCENTILE])
        clip.motion = MotionFlows(
            mean_speed=mean_speed,
            pair_forward=forward,
            pair_consistent=forward_backward_consistent(forward, self._pair_backward(clip, pairs, full)),
            # views, not copies: they keep their shared call's flows, which are mostly this chain's
            chain_forward=chain[: len(steps)] if steps else np.zeros((0,)),
            chain_backward=chain[len(steps) : 2 * len(steps)] if steps else np.zeros((0,)),
            chain_dt_s=np.array([video.interval_s(a, b) for a, b in steps]),
        )
        clip.fields.update(
            flow_backend=self._backend.name,
            flow_pairs=len(pairs),
            flow_mean=float(speeds.mean()),
            flow_p50=float(p50),
            flow_p95=float(p95),
            flow_max=float(peak),
            motion_fraction=float((mean_speed > self.config.mask_threshold).mean()),
            static_clip=bool(p95 < self.config.mask_threshold),
        )
