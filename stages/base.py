"""The stage contract shared by every processing step.

A stage declares its resources, loads heavy things once in ``setup`` and adds fields to
the clips of a batch. It never drops a clip: a failing clip is marked with a reason and
skipped by later stages, so every input clip ends as exactly one output row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

STATUS_OK = "ok"
STATUS_ERROR = "error"


@dataclass(frozen=True)
class Resources:
    """What one stage instance needs; pipeline/ turns it into engine options."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0:
            raise ValueError(f"resources must be non-negative, got cpus={self.cpus}, gpus={self.gpus}")


class WorkerFault(Exception):
    """The worker cannot go on (a model service it relies on is gone): the shard is retried, not the clip marked
    (its clips in flight count one attempt, as for any worker death, so a clip that keeps killing the service
    still ends as an error row)."""


class ClipError(Exception):
    """A data fault in one clip: ``reason`` is short and enumerable (``decode:truncated``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedVideo:
    """Frames at processing size, as the decode stage leaves them for later stages.

    ``frames`` holds every frame some stage needs, in source order; the other arrays are positions
    into it: ``samples`` at ``fps_target``; ``pairs``, closely spaced (at most ``decode.pair_gap_s``
    apart) at anchor times spread over the sampled window, on which motion is measured; ``chain``, the
    closely spaced frames that dense tracks are chained through (empty when no tracks are built).
    """

    frames: np.ndarray  # uint8[N, H, W, 3], RGB
    indices: np.ndarray  # int[N], source frame numbers
    times_s: np.ndarray  # float64[N], presentation times
    fps: float
    samples: np.ndarray  # int[T]
    pairs: np.ndarray  # int[P, 2]
    chain: np.ndarray  # int[C]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the processing frames."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def interval_s(self, first: int, second: int) -> float:
        """Seconds from frame ``first`` to ``second`` (positions); nominal fps if timestamps are unusable."""
        interval = float(self.times_s[second] - self.times_s[first])
        if np.isfinite(interval) and interval != 0:
            return interval
        return float(self.indices[second] - self.indices[first]) / self.fps


@dataclass
class MotionFlows:
    """What the flow stage measured, kept in the worker for later stages (too large to ship). The measuring
    pairs' maps are at the measuring size ``h x w`` (stages/measuring_size.py), the chain's at processing size."""

    mean_speed: np.ndarray  # float32[h, w], %diag/s averaged over the measuring pairs
    pair_forward: np.ndarray  # float32[P, h, w, 2], half-size px, first -> second frame of each measuring pair
    pair_consistent: np.ndarray  # bool[P, h, w], pixels of each pair passing the forward-backward check
    chain_forward: np.ndarray  # float32[C-1, H, W, 2], px, chain[k] -> chain[k+1]
    chain_backward: np.ndarray  # float32[C-1, H, W, 2], px, chain[k+1] -> chain[k]
    chain_dt_s: np.ndarray  # float64[C-1]


@dataclass
class DenseTracks:
    """Motion fields from the first sample to every sample, f(0->i), with per-pixel visibility."""

    displacement: np.ndarray  # float32[T, H, W, 2], px at processing size
    visibility: np.ndarray  # bool[T, H, W]; False from the first failed forward-backward check on


@dataclass
class ClipRecord:
    """One input clip flowing through the stages: its members, intermediates and output fields."""

    key: str
    shard: str
    members: dict[str, bytes]  # extension -> payload, as in the tar
    member_names: dict[str, str]  # extension -> full member name
    fields: dict[str, Any] = field(default_factory=dict)
    status: str = STATUS_OK
    error: str | None = None
    error_detail: str | None = None
    video: DecodedVideo | None = None
    motion: MotionFlows | None = None
    tracks: DenseTracks | None = None
    object_masks: np.ndarray | None = None  # bool[P, h, w] at the measuring size, per measuring pair (decouple)
    conditions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def fail(self, reason: str, detail: str = "") -> None:
        """Mark the clip as failed; it keeps its fields so far and skips later stages."""
        self.status = STATUS_ERROR
        self.error = reason
        self.error_detail = detail or None


class Stage(ABC):
    """One processing step. ``__init__`` is cheap and picklable; ``setup`` loads models once per worker."""

    name: ClassVar[str]
    resources: Resources = Resources()  # a class default; stages whose needs depend on config set it per instance

    def setup(self, device: str = "cpu") -> None:
        """Load heavy dependencies and weights; called once per worker before any batch."""

    def process(self, batch: list[ClipRecord]) -> list[ClipRecord]:
        """Process the ok clips of a batch one by one; per-clip faults become error rows."""
        for clip in batch:
            if not clip.ok:
                continue
            try:
                self.process_clip(clip)
            except ClipError as error:
                clip.fail(error.reason, error.detail)
            except WorkerFault:
                raise
            except Exception as error:  # noqa: BLE001 - any bug in one clip must not stop the shard
                clip.fail(f"{self.name}:internal", f"{type(error).__name__}: {error}")
        return batch

    @abstractmethod
    def process_clip(self, clip: ClipRecord) -> None:
        """Add this stage's fields to one ok clip, or raise ClipError."""
