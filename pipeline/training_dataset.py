"""The trainer's dataset: clips of an annotated run, joined by key with their metadata and conditions (the data
side of the trainer stage; its models are in stages/trainer/).

One item per selected clip: the video from its input shard (or a filter's copy), decoded with the run's
own sampling so frames line up with the conditions, resized to the training size, plus every
paper's condition (``condition_tensors.py``). An epoch is a seeded permutation of the selection, cut
across data-parallel ranks x dataloader workers by position: every selected clip exactly once per
epoch, the ranks' shares differing by at most one clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from motionpipe.pipeline.dataset_filter import select_rows
from motionpipe.pipeline.run_clips import RunClips
from motionpipe.stages.trainer import condition_tensors as conditions

NEEDED_CONDITIONS = ("motion_mask", "heatmap", "region_trajectories", "sparse_tracks")


@dataclass(frozen=True)
class TrainingDataConfig:
    """What the trainer reads and at which size.

    run: annotate output folder (annotated with conditions). where: filter expression (``motionpipe filter``'s
    language). shards: folder of shards to read videos from by shard name (e.g. a filter's TO/shards);
    empty: each row's own ``shard``. frames, width, height: the training clip. score_columns: the two
    metadata columns given as (object, camera) scores; rows where either is null are not selected.
    region_ratio_min: MotionPro's r_min. field_stride: trajectory fields at training size / this.
    latent_temporal, latent_spatial: the latent grid of the heatmap (must match the run's heatmap pooling in time).
    seed: epoch permutations and random condition draws.
    """

    run: str
    where: str = "status == 'ok'"
    shards: str = ""
    frames: int = 8
    width: int = 64
    height: int = 64
    score_columns: tuple[str, str] = ("object_score", "camera_score")
    region_ratio_min: float = 0.3
    field_stride: int = 4
    latent_temporal: int = 4
    latent_spatial: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames < 1 or self.width < 8 or self.height < 8:
            raise ValueError("frames must be >= 1 and width, height >= 8 px")
        if not 0 < self.region_ratio_min <= 1:
            raise ValueError(f"region_ratio_min must be in (0, 1], got {self.region_ratio_min}")
        for name in ("field_stride", "latent_temporal", "latent_spatial"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def size(self) -> conditions.Size:
        return self.width, self.height

    @property
    def field_size(self) -> conditions.Size:
        return math.ceil(self.width / self.field_stride), math.ceil(self.height / self.field_stride)

    @property
    def latent_size(self) -> conditions.Size:
        return math.ceil(self.width / self.latent_spatial), math.ceil(self.height / self.latent_spatial)


@dataclass(frozen=True)
class ClipEntry:
    """A selected clip: where its video and conditions are, and its metadata."""

    key: str
    shard: str
    caption: str
    scores: tuple[float, float]


def data_parallel_position() -> tuple[int, int]:
    """(rank, world size) of this process in torch.distributed, or (0, 1) outside it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class MotionTrainingDataset(IterableDataset):
    """Yields dicts of tensors (see README, "Training"); ``set_epoch`` reshuffles like DistributedSampler."""

    def __init__(self, config: TrainingDataConfig, rank: int | None = None, world_size: int | None = None) -> None:
        self.config = config
        default_rank, default_world = data_parallel_position()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world size {self.world_size}")
        self.clips = RunClips(config.run, config.shards)
        heatmap_temporal = self.clips.config["conditions"]["heatmap_temporal"]
        if heatmap_temporal != config.latent_temporal:
            raise ValueError(
                f"the run pooled its heatmaps by {heatmap_temporal} frames; set latent_temporal={heatmap_temporal} "
                "or annotate again with --set conditions.heatmap_temporal=N"
            )
        self.entries = self.select(config)
        self.epoch = 0

    @staticmethod
    def select(config: TrainingDataConfig) -> list[ClipEntry]:
        """The ok rows the expression selects that have scores and every needed condition, in (shard, key) order."""
        object_column, camera_column = config.score_columns
        where = f"({config.where}) and status == 'ok' and {object_column} is not None and {camera_column} is not None"
        rows = select_rows(config.run, where).to_pylist()
        lacking = [row["key"] for row in rows if not set(NEEDED_CONDITIONS) <= set(row["conditions"] or ())]
        if lacking:
            raise ValueError(
                f"{len(lacking)} selected clip(s) (first: {lacking[0]!r}) lack some of the conditions "
                f"{NEEDED_CONDITIONS}; annotate with --conditions all"
            )
        entries = [
            ClipEntry(row["key"], row["shard"], row["caption"] or "", (row[object_column], row[camera_column]))
            for row in rows
        ]
        return sorted(entries, key=lambda entry: (entry.shard, entry.key))

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_entries(self) -> list[ClipEntry]:
        """This rank's and dataloader worker's share of the epoch's permutation."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        order = np.random.default_rng([self.config.seed, self.epoch]).permutation(len(self.entries))
        return [self.entries[i] for i in order[self.rank * workers + worker :: self.world_size * workers]]

    def __iter__(self):
        for entry in self.my_entries():
            yield self.item(entry)

    def item(self, entry: ClipEntry) -> dict[str, Any]:
        """One clip's frames and conditions; random draws seeded by (seed, epoch, key) so reruns repeat."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, self.epoch, *entry.key.encode()])
        frames = self.frames(entry)
        arrays = self.clips.conditions(entry.shard, entry.key)
        trajectories, region_mask = conditions.region_trajectories(
            arrays, cfg.frames, cfg.size, cfg.field_size, cfg.region_ratio_min, rng
        )
        sparse, sparse_mask = conditions.sparse_trajectories(arrays, cfg.frames, cfg.size, cfg.field_size, rng)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {
            "key": entry.key,
            "caption": entry.caption,
            "frames": video,
            "first_frame": video[0].clone(),
            "scores": torch.tensor(entry.scores, dtype=torch.float32),
            "motion_mask": torch.from_numpy(conditions.motion_mask(arrays, cfg.size)),
            "region_trajectories": torch.from_numpy(trajectories),
            "region_mask": torch.from_numpy(region_mask),
            "sparse_trajectories": torch.from_numpy(sparse),
            "sparse_mask": torch.from_numpy(sparse_mask),
            "heatmap": torch.from_numpy(
                conditions.latent_heatmap(arrays, cfg.frames, cfg.latent_temporal, cfg.latent_size)
            ),
        }

    def frames(self, entry: ClipEntry) -> np.ndarray:
        """``uint8[F, H, W, 3]``: the run's samples of this clip, at the training size."""
        samples = self.clips.samples(entry.shard, entry.key)
        method = cv2.INTER_AREA if self.config.width < samples.shape[2] else cv2.INTER_LINEAR
        resized = [cv2.resize(frame, self.config.size, interpolation=method) for frame in samples]
        return conditions.pad_frames(np.stack(resized), self.config.frames)
