"""Training conditions of the papers, built per clip from the flow and dense tracks.

Each condition is a set of arrays stored in the clip's ``.npz`` in ``OUT/conditions/SHARD.tar``
(shapes and dtypes in ``schemas/conditions.py``):

- ``motion_mask`` (MotionPro): pixels whose mean speed exceeds the mask threshold.
- ``heatmap`` (MotiF): per-pixel speed -> sigmoid heatmap, pooled to the latent grid.
- ``dense_tracks`` (Motion-I2V): f(0->i) and visibility at low resolution.
- ``region_trajectories`` (MotionPro): f(0->i) masked by the global visibility M_g, with the k x k
  grid size; the trainer draws the random region selection.
- ``sparse_tracks`` (Motion-I2V): N points where motion is high and spread over the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from motionpipe.stages.base import ClipRecord, Stage
from motionpipe.stages.flow_checks import squared_length
from motionpipe.stages.measuring_size import map_at_processing_size
from motionpipe.stages.motion_units import MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S, speed_pct_diag_per_s

CONDITIONS = ("motion_mask", "heatmap", "dense_tracks", "region_trajectories", "sparse_tracks")
NEEDS_TRACKS = frozenset(CONDITIONS) - {"motion_mask"}
HEATMAP_STEEPNESS = 100.0  # MotiF: sigma(x) = 1 / (1 + exp(100 (0.05 - x)))
HEATMAP_MIDPOINT = 0.05


@dataclass(frozen=True)
class ConditionsConfig:
    """Which conditions to write and at which resolution.

    include: 'none' (default: statistics and scores, what filtering needs), 'all', or a comma-separated list of
        motion_mask, heatmap, dense_tracks, region_trajectories, sparse_tracks (training sets; ~9x the CPU time).
    field_stride: dense fields are average-pooled by this factor from the processing size.
    region_grid: k of MotionPro's k x k region grid.
    heatmap_temporal, heatmap_spatial: latent-grid pooling factors (common video VAEs: 4 and 8).
    heatmap_floor: %diag/s; speeds are normalised by max(clip peak speed, floor) before the sigmoid,
        so a static clip's flow noise is never stretched to 1 (default: 20 x the mask threshold).
    sparse_points: N, the number of sparse trajectories.
    """

    include: str = "none"
    field_stride: int = 4
    region_grid: int = 8
    heatmap_temporal: int = 4
    heatmap_spatial: int = 8
    heatmap_floor: float = 20 * MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S
    sparse_points: int = 64

    def __post_init__(self) -> None:
        names = [name.strip() for name in self.include.split(",")] if self.include not in ("all", "none") else []
        unknown = [name for name in names if name not in CONDITIONS]
        if unknown:
            raise ValueError(f"conditions.include has unknown {unknown}; use all, none, or some of {CONDITIONS}")
        for name in ("field_stride", "region_grid", "heatmap_temporal", "heatmap_spatial", "sparse_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"conditions.{name} must be >= 1, got {getattr(self, name)}")
        if self.heatmap_floor <= 0:
            raise ValueError(f"conditions.heatmap_floor must be > 0 %diag/s, got {self.heatmap_floor}")

    @property
    def names(self) -> tuple[str, ...]:
        if self.include == "all":
            return CONDITIONS
        if self.include == "none":
            return ()
        return tuple(name for name in CONDITIONS if name in {n.strip() for n in self.include.split(",")})

    @property
    def needs_tracks(self) -> bool:
        return bool(NEEDS_TRACKS & set(self.names))


def area_pool(array: np.ndarray, factor: int, axis: int) -> np.ndarray:
    """Average consecutive groups of ``factor`` along ``axis``; a short last group averages what it has."""
    grouped = np.moveaxis(array, axis, 0)
    whole = len(grouped) - len(grouped) % factor
    pooled = grouped[:whole].reshape(whole // factor, factor, *grouped.shape[1:]).mean(axis=1)
    if whole < len(grouped):
        pooled = np.concatenate([pooled, grouped[whole:].mean(axis=0, keepdims=True)])
    return np.moveaxis(pooled, 0, axis)


def pool_2d(array: np.ndarray, factor: int) -> np.ndarray:
    """Area-average the last two axes (H, W) by ``factor``."""
    return area_pool(area_pool(array, factor, array.ndim - 2), factor, array.ndim - 1)


def motif_heatmap(speed: np.ndarray, floor: float, temporal: int, spatial: int) -> np.ndarray:
    """MotiF heatmap ``uint8[T', H', W']`` from per-sample speed maps ``[T, H, W]`` in %diag/s."""
    scale = max(float(np.percentile(speed, 99.9)), floor)
    weight = 1.0 / (1.0 + np.exp(HEATMAP_STEEPNESS * (HEATMAP_MIDPOINT - speed / scale)))
    pooled = pool_2d(area_pool(weight, temporal, 0), spatial)
    return np.round(255 * pooled).astype(np.uint8)


def sample_speed_maps(clip: ClipRecord) -> np.ndarray:
    """Speed ``[T, H, W]`` at each sample: the chain step leaving it (arriving, for the last one)."""
    chain = clip.video.chain.tolist()
    motion = clip.motion
    maps = []
    for position in clip.video.samples.tolist():
        step = chain.index(position)
        step = min(step, len(chain) - 2)
        maps.append(speed_pct_diag_per_s(motion.chain_forward[step], motion.chain_dt_s[step]))
    return np.stack(maps)


def spread_points(score: np.ndarray, eligible: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` (y, x) points with the highest scores, one per cell of a grid over the frame.

    Each point is taken from the central half of its cell, so points stay at least half a cell apart.
    """
    height, width = score.shape
    cell = max(1, int(math.sqrt(height * width / (4 * count))))
    margin = cell // 4
    masked = np.where(eligible, score, -np.inf)
    best = []
    for top in range(margin, height, cell):
        for left in range(margin, width, cell):
            block = masked[top : top + cell - 2 * margin, left : left + cell - 2 * margin]
            y, x = np.unravel_index(np.argmax(block), block.shape)
            if np.isfinite(block[y, x]):
                best.append((block[y, x], top + y, left + x))
    best.sort(key=lambda item: -item[0])
    return np.array([(y, x) for _, y, x in best[:count]], dtype=int).reshape(-1, 2)


class ConditionsStage(Stage):
    """Builds the selected conditions as arrays on the clip; the shard runner writes them."""

    name: ClassVar[str] = "conditions"

    def __init__(self, config: ConditionsConfig, mask_threshold: float) -> None:
        self.config = config
        self.mask_threshold = mask_threshold

    def process_clip(self, clip: ClipRecord) -> None:
        cfg = self.config
        arrays: dict[str, np.ndarray] = {}
        names = cfg.names
        width, height = clip.video.size
        arrays["proc_size"] = np.array([width, height], np.int32)
        if "motion_mask" in names:
            arrays["motion_mask"] = map_at_processing_size(clip.motion.mean_speed > self.mask_threshold, height, width)
        if "heatmap" in names:
            arrays["heatmap"] = motif_heatmap(
                sample_speed_maps(clip), cfg.heatmap_floor, cfg.heatmap_temporal, cfg.heatmap_spatial
            )
        if cfg.needs_tracks:
            tracks = clip.tracks
            field = pool_2d(tracks.displacement.transpose(0, 3, 1, 2), cfg.field_stride)  # [T, 2, h, w]
            visible_low = pool_2d(tracks.visibility.astype(np.float32), cfg.field_stride) >= 0.5  # [T, h, w]
            if "dense_tracks" in names:
                arrays["dense_flow"] = field.astype(np.float16)
                arrays["dense_visibility"] = visible_low
            if "region_trajectories" in names:  # visibility is cumulative: the last frame's is M_g
                arrays["region_flow"] = (field * visible_low[-1]).astype(np.float16)
                arrays["global_visibility"] = visible_low[-1]
                arrays["region_grid"] = np.array(cfg.region_grid, np.int32)
            if "sparse_tracks" in names:
                travel = np.sqrt(squared_length(tracks.displacement).max(axis=0))
                points = spread_points(travel, tracks.visibility[-1], cfg.sparse_points)
                ys, xs = points[:, 0], points[:, 1]
                start = np.stack([xs, ys], axis=-1).astype(np.float32)  # (x, y) at frame 0
                positions = start[:, None, :] + tracks.displacement[:, ys, xs].transpose(1, 0, 2)
                arrays["sparse_tracks"] = positions.astype(np.float16)
                arrays["sparse_visibility"] = tracks.visibility[:, ys, xs].T
                arrays["sparse_travel"] = travel[ys, xs].astype(np.float16)
        clip.conditions = arrays
        clip.fields["conditions"] = list(names)
