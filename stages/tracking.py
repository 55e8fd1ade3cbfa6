"""Tracking stage: MotionStone's pseudo-label chain. The object masks of the first sample (the decouple
stage's: SAM2's with ``decouple.segmenter=sam2``, else the built-in motion regions) prompt the tracker with
query points spread inside the masks and over the background; the pseudo-labels are computed from their tracks.

For each step between consecutive samples, a homography fitted to the visible background tracks is
the camera; the camera's mean displacement of the grid is camera motion, and an object track's
displacement beyond what that homography predicts is its own motion. Both are path speeds (summed
per step), so an object moving back and forth still reads as moving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from motionpipe.stages.base import ClipRecord, Resources, Stage
from motionpipe.stages.measuring_size import measuring_pixel
from motionpipe.stages.motion_units import mean_of_medians
from motionpipe.stages.trackers import CoTracker, FlowChainTracker, Tracker, object_and_background_queries

TRACKERS = ("auto", "none", "flow_chain", "cotracker")
MIN_BACKGROUND_TRACKS = 8


@dataclass(frozen=True)
class TrackingConfig:
    """tracker: 'auto' (flow_chain when the conditions build dense tracks anyway, else none: tracking alone
    would cost the chained flow) | 'none' | 'flow_chain' (built in, reads the dense tracks) | 'cotracker'
    (optional, local weights).
    grid_size: G, for G x G background query points, spread evenly off the object masks.
    object_points: query points spread over the object masks of the first sample.
    cotracker_checkpoint, cotracker_repo: CoTracker's local weights and, without the cotracker package, a local
    torch.hub repo dir. device: 'cpu' | 'cuda' for CoTracker.
    """

    tracker: str = "auto"
    grid_size: int = 16
    object_points: int = 64
    cotracker_checkpoint: str = ""
    cotracker_repo: str = ""
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.tracker not in TRACKERS:
            raise ValueError(f"tracking.tracker {self.tracker!r} unknown; choose one of {TRACKERS}")
        if self.grid_size < 3 or self.object_points < 1:
            raise ValueError(
                f"tracking.grid_size must be >= 3 and tracking.object_points >= 1, got {self.grid_size} and "
                f"{self.object_points}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"tracking.device must be 'cpu' or 'cuda', got {self.device!r}")

    def resolved(self, dense_tracks_built: bool) -> str:
        """The tracker actually used, 'auto' decided by whether dense tracks are built for other reasons."""
        if self.tracker == "auto":
            return "flow_chain" if dense_tracks_built else "none"
        return self.tracker

    def build_tracker(self) -> Tracker:
        if self.tracker == "cotracker":
            return CoTracker(self.cotracker_checkpoint, self.cotracker_repo, self.device)
        return FlowChainTracker()


def step_speeds(tracks: np.ndarray, visible: np.ndarray, is_object: np.ndarray, times: np.ndarray):
    """Per step between samples: (camera speed over the background grid, each object track's speed, NaN where it is
    not seen at both ends or not an object track), px/s."""
    camera, objects = [], []
    for step in range(1, tracks.shape[1]):
        both = visible[:, step - 1] & visible[:, step]
        background = both & ~is_object
        if background.sum() < MIN_BACKGROUND_TRACKS:
            continue
        source, target = tracks[background, step - 1], tracks[background, step]
        homography, _ = cv2.findHomography(source, target, cv2.RANSAC, 1.0)
        if homography is None:
            continue
        dt = times[step] - times[step - 1]
        predicted = cv2.perspectiveTransform(tracks[:, step - 1][None].astype(np.float64), homography)[0]
        grid = ~is_object  # spread evenly over the background, unlike the object points
        camera.append(np.linalg.norm(predicted[grid] - tracks[grid, step - 1], axis=-1).mean() / dt)
        movers = both & is_object
        speeds = np.full(len(tracks), np.nan)
        speeds[movers] = np.linalg.norm(tracks[movers, step] - predicted[movers], axis=-1) / dt
        objects.append(speeds)
    return camera, objects


def object_regions(mask: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``int[N]``: the connected region of the first sample's object ``mask`` (measuring size) that each query point
    (processing px) starts in; 0 off the mask."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    x, y = measuring_pixel(queries.astype(int)).T
    return labels[y, x]


class TrackingStage(Stage):
    """Grid tracks and track-based pseudo-labels (MotionStone: points inside / outside object masks)."""

    name: ClassVar[str] = "tracking"

    def __init__(self, config: TrackingConfig) -> None:
        self.config = config
        self.tracker = config.build_tracker()
        self.resources = Resources(
            cpus=1.0, gpus=1.0 if config.tracker == "cotracker" and config.device == "cuda" else 0
        )

    def setup(self, device: str = "cpu") -> None:
        self.tracker.setup(self.config.device)

    def process_clip(self, clip: ClipRecord) -> None:
        width, height = clip.video.size
        queries, is_object = object_and_background_queries(
            clip.object_masks[0], self.config.grid_size, self.config.object_points
        )
        tracks = self.tracker.track(clip, queries)
        times = clip.video.times_s[clip.video.samples]
        camera, objects = step_speeds(tracks.positions, tracks.visibility, is_object, times)
        per_px = 100.0 / math.hypot(width, height)  # px/s -> %diag/s
        # as object_motion: each object region's median over its tracks' steps, the mean over regions by their
        # readings (the query points are spread over the masks evenly, so by area)
        speeds = np.array(objects).reshape(len(objects), len(queries))
        regions = object_regions(clip.object_masks[0], queries)
        groups = [speeds[:, regions == label] for label in np.unique(regions[is_object])]
        object_track_motion = mean_of_medians(group[np.isfinite(group)] for group in groups) * per_px
        clip.fields.update(
            tracker_backend=self.tracker.name,
            object_tracks=int(is_object.sum()),
            background_tracks=int((~is_object).sum()),
            camera_track_motion=float(np.mean(camera)) * per_px if camera else None,
            object_track_motion=object_track_motion,
        )
