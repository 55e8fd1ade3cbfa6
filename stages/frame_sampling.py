"""Which source frames a clip is processed on.

Two sets (DESIGN.md §2): samples at ``fps_target`` for the conditions, and closely spaced
pairs at anchor times for *measuring* motion, because classical flow under-reads large
per-step displacements between 8-fps samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingPlan:
    """Source frame indices: the samples, the (first, second) frame of each measuring pair, and the
    tracking chain (samples plus frames at most ``chain_gap_s`` apart between them; empty when
    no tracks are built).
    """

    sample_indices: tuple[int, ...]
    pair_indices: tuple[tuple[int, int], ...]
    chain_indices: tuple[int, ...] = ()

    @property
    def all_indices(self) -> tuple[int, ...]:
        """Every source frame the plan needs, ascending."""
        needed = set(self.sample_indices) | set(self.chain_indices)
        needed.update(index for pair in self.pair_indices for index in pair)
        return tuple(sorted(needed))


def frame_step(fps: float, gap_s: float) -> int:
    """Frames between two frames at most ``gap_s`` apart: as far apart as allowed, at least adjacent."""
    return max(1, int(math.floor(fps * gap_s + 1e-6)))


def frames_to_decode(fps: float, fps_target: float, max_frames: int, pair_gap_s: float) -> int:
    """Leading frames that cover the sampled window plus the step of its last pair (the chain stays inside it)."""
    window = round((max_frames - 1) * fps / fps_target)
    return window + frame_step(fps, pair_gap_s) + 1


def plan_sampling(
    num_frames: int,
    fps: float,
    fps_target: float,
    max_frames: int,
    num_pairs: int,
    pair_gap_s: float,
    chain_gap_s: float | None = None,
) -> SamplingPlan:
    """Sample from the clip start at ``fps_target`` and spread ``num_pairs`` anchors over the samples.

    With ``chain_gap_s``, also plan the frames that tracks are chained through: at most that far apart, so
    each step's flow stays accurate (DESIGN.md §2), and passing through every sample.
    """
    if num_frames < 2:
        raise ValueError(f"motion needs at least 2 frames, got {num_frames}")
    samples: list[int] = []
    for i in range(max_frames):
        index = round(i * fps / fps_target)
        if index >= num_frames:
            break
        if not samples or index != samples[-1]:
            samples.append(index)
    step = min(frame_step(fps, pair_gap_s), num_frames - 1)
    anchor_positions = np.unique(np.round(np.linspace(0, len(samples) - 1, min(num_pairs, len(samples)))))
    pairs = []
    for position in anchor_positions.astype(int):
        anchor = samples[position]
        pairs.append((anchor, anchor + step) if anchor + step < num_frames else (anchor - step, anchor))
    chain_indices: tuple[int, ...] = ()
    if chain_gap_s is not None:
        chain_step = frame_step(fps, chain_gap_s)
        chain_indices = tuple(sorted(set(samples) | set(range(samples[0], samples[-1] + 1, chain_step))))
    return SamplingPlan(sample_indices=tuple(samples), pair_indices=tuple(pairs), chain_indices=chain_indices)
