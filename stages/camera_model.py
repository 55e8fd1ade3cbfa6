"""Camera motion per frame pair: a homography fitted by RANSAC to flow correspondences.

The homography explains what the camera does to a (distant or planar) background; what it does
not explain is object motion. Correspondences come from a grid over the frame, keeping only
points whose forward and backward flow agree, so occlusions and flow failures do not vote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Fields come at the measuring size (half the processing size), px below are half-size px.
GRID_STEP_PX = 6  # ~600 points at 171x128: camera and object scores as with 4 px (1300 points), fit 40% faster
# USAC_ACCURATE (LO-RANSAC) with a tight threshold: MAGSAC++'s soft weighting let a slow object
# (1 px/pair at this size) pull the fit off the background (measured: camera 1.3 %diag/s on a still camera).
# Noisy or heavily compressed flow scatters more than that: when fewer than MIN_INLIER_FRACTION of the
# points fit, the threshold widens (a fast pan at crf 42 had 8-20% inliers at 0.15 px and read half its speed).
RANSAC_THRESHOLDS_PX = (0.15, 0.5, 1.5)
MIN_INLIER_FRACTION = 0.3
MIN_CORRESPONDENCES = 12


@dataclass(frozen=True)
class CameraFit:
    """One pair's camera model: homography (first -> second frame, px), and how well it holds."""

    homography: np.ndarray  # float64[3, 3]
    inlier_fraction: float  # of the consistent grid points


def fit_camera(forward: np.ndarray, consistent: np.ndarray) -> CameraFit:
    """Fit the homography on a grid of the correspondences ``consistent`` marks (USAC_ACCURATE), as tight as the
    flow's noise lets most of them fit."""
    height, width = forward.shape[:2]
    ys, xs = np.mgrid[GRID_STEP_PX // 2 : height : GRID_STEP_PX, GRID_STEP_PX // 2 : width : GRID_STEP_PX]
    keep = consistent[ys, xs]
    source = np.stack([xs[keep], ys[keep]], axis=-1).astype(np.float32)
    target = source + forward[ys[keep], xs[keep]]
    if len(source) < MIN_CORRESPONDENCES:
        return CameraFit(np.eye(3), 0.0)
    fit = CameraFit(np.eye(3), 0.0)
    for threshold in RANSAC_THRESHOLDS_PX:
        homography, inliers = cv2.findHomography(
            source, target, cv2.USAC_ACCURATE, threshold, maxIters=2000, confidence=0.999
        )
        if homography is not None:
            fit = CameraFit(homography, float(inliers.mean()))
            if fit.inlier_fraction >= MIN_INLIER_FRACTION:
                break
    return fit


def camera_flow(homography: np.ndarray, width: int, height: int) -> np.ndarray:
    """``float32[H, W, 2]``: the displacement the homography gives every pixel."""
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    h = homography.astype(np.float32)
    scale = h[2, 0] * xs + h[2, 1] * ys + h[2, 2]
    moved_x = (h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / scale
    moved_y = (h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / scale
    return np.dstack([moved_x - xs, moved_y - ys])


@dataclass(frozen=True)
class CameraRates:
    """Camera parameters per second (ours): ``tx, ty`` camera velocity in %diag/s (x right, y down;
    the image content moves the other way), ``zoom`` d ln(scale)/dt in 1/s (> 0 zooms in), ``rot``
    image rotation in rad/s (> 0 clockwise on screen, y pointing down)."""

    tx: float
    ty: float
    zoom: float
    rot: float


def camera_rates(homography: np.ndarray, width: int, height: int, dt_s: float) -> CameraRates:
    """Translation, zoom and rotation of the homography at the frame centre, per second."""
    centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    mapped = homography @ centre
    moved = mapped[:2] / mapped[2] - centre[:2]
    # Jacobian of the projective map at the centre
    w = mapped[2]
    jacobian = (homography[:2, :2] * w - np.outer(mapped[:2], homography[2, :2])) / w**2
    scale = math.sqrt(max(abs(np.linalg.det(jacobian)), 1e-12))
    angle = math.atan2(jacobian[1, 0] - jacobian[0, 1], jacobian[0, 0] + jacobian[1, 1])
    per_px = 100.0 / math.hypot(width, height) / dt_s
    return CameraRates(tx=-moved[0] * per_px, ty=-moved[1] * per_px, zoom=math.log(scale) / dt_s, rot=angle / dt_s)
