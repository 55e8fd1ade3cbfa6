"""Decouple stage: camera motion vs object motion per clip (DESIGN.md §4, MotionStone pseudo-labels).

Per measuring pair: a homography for the camera (stages/camera_model.py); the residual flow,
flow minus what the camera explains, is object motion. Object masks are connected regions of large
residual speed, cleaned morphologically (the built-in segmenter); object_motion is the median
residual speed of their forward-backward-consistent pixels (the median, because flow smoothed
across object edges would drag a mean down: measured -14% on a synthetic disc). A pan over a still scene reads
zero object motion; an object the camera follows reads its speed relative to the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from stages.base import ClipRecord, Stage
from stages.camera_model import CameraRates, camera_flow, camera_rates, fit_camera, forward_backward_consistent
from stages.motion_units import speed_pct_diag_per_s

CAMERA_TYPES = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "rotate", "complex")


@dataclass(frozen=True)
class DecoupleConfig:
    """Camera/object separation.

    object_threshold: residual speed, %diag/s, above which a pixel may belong to a moving object.
    min_object_area: connected regions smaller than this fraction of the frame are noise.
    static_threshold: %diag/s; a camera whose translation, zoom and rotation each move the frame less
        than this on average is 'static'.
    dominance: a camera motion component must exceed the others by this factor to name the type;
        otherwise the type is 'complex'.
    """

    object_threshold: float = 2.0
    min_object_area: float = 0.002
    static_threshold: float = 0.75
    dominance: float = 2.0

    def __post_init__(self) -> None:
        if self.object_threshold <= 0 or self.static_threshold <= 0:
            raise ValueError("decouple.object_threshold and decouple.static_threshold must be > 0 %diag/s")
        if not 0 <= self.min_object_area < 1:
            raise ValueError(f"decouple.min_object_area must be a fraction in [0, 1), got {self.min_object_area}")
        if self.dominance < 1:
            raise ValueError(f"decouple.dominance must be >= 1, got {self.dominance}")


def mean_radius_pct_diag(width: int, height: int) -> float:
    """Mean distance of the frame's pixels from its centre, in %diag: turns zoom and rotation rates
    into the mean speed they give the frame."""
    xs = (np.arange(width) - (width - 1) / 2)[None, :]
    ys = (np.arange(height) - (height - 1) / 2)[:, None]
    return float(np.hypot(xs, ys).mean() * 100 / math.hypot(width, height))


def classify_camera(rates: CameraRates, width: int, height: int, config: DecoupleConfig) -> str:
    """Name the camera motion from its per-second rates (thresholds in %diag/s)."""
    radius = mean_radius_pct_diag(width, height)
    components = {
        "translation": math.hypot(rates.tx, rates.ty),
        "zoom": abs(rates.zoom) * radius,
        "rotate": abs(rates.rot) * radius,
    }
    ranked = sorted(components.items(), key=lambda item: -item[1])
    (kind, speed), (_, runner_up) = ranked[0], ranked[1]
    if speed < config.static_threshold:
        return "static"
    if speed < config.dominance * runner_up:
        return "complex"
    if kind == "zoom":
        return "zoom_in" if rates.zoom > 0 else "zoom_out"
    if kind == "rotate":
        return "rotate"
    if abs(rates.tx) >= config.dominance * abs(rates.ty):
        return "pan_right" if rates.tx > 0 else "pan_left"
    if abs(rates.ty) >= config.dominance * abs(rates.tx):
        return "tilt_down" if rates.ty > 0 else "tilt_up"
    return "complex"


def moving_regions(residual_speed: np.ndarray, config: DecoupleConfig) -> np.ndarray:
    """Built-in segmenter: large residual speed, opened and closed, small components dropped."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    candidate = (residual_speed > config.object_threshold).astype(np.uint8)
    candidate = cv2.morphologyEx(cv2.morphologyEx(candidate, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
    min_pixels = config.min_object_area * candidate.size
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    return keep[labels]


class DecoupleStage(Stage):
    """Camera model, object masks and the decoupled pseudo-labels, from the measuring pairs."""

    name: ClassVar[str] = "decouple"

    def __init__(self, config: DecoupleConfig) -> None:
        self.config = config

    def process_clip(self, clip: ClipRecord) -> None:
        video, motion = clip.video, clip.motion
        width, height = video.size
        rates, camera_speeds, object_speeds, areas, inliers = [], [], [], [], []
        for (first, second), forward, backward in zip(
            video.pairs.tolist(), motion.pair_forward, motion.pair_backward, strict=True
        ):
            dt = video.interval_s(first, second)
            fit = fit_camera(forward, backward)
            induced = camera_flow(fit.homography, width, height)
            residual_speed = speed_pct_diag_per_s(forward - induced, dt)
            objects = moving_regions(residual_speed, self.config)
            reliable = objects & forward_backward_consistent(forward, backward)
            rates.append(camera_rates(fit.homography, width, height, dt))
            camera_speeds.append(float(speed_pct_diag_per_s(induced, dt).mean()))
            object_speeds.append(residual_speed[reliable])
            areas.append(float(objects.mean()))
            inliers.append(fit.inlier_fraction)
        mean_rates = CameraRates(*(float(np.mean([getattr(r, f) for r in rates])) for f in ("tx", "ty", "zoom", "rot")))
        object_points = np.concatenate(object_speeds)
        clip.fields.update(
            camera_backend="homography:usac",
            segment_backend="motion_regions",
            camera_motion=float(np.mean(camera_speeds)),
            object_motion=float(np.median(object_points)) if object_points.size else 0.0,
            object_area=float(np.mean(areas)),
            camera_type=classify_camera(mean_rates, width, height, self.config),
            cam_tx=mean_rates.tx,
            cam_ty=mean_rates.ty,
            cam_zoom=mean_rates.zoom,
            cam_rot=mean_rates.rot,
            camera_inliers=float(np.mean(inliers)),
        )
