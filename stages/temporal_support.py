"""Moving objects keep moving: a region that a measuring pair shows moving is, a quarter second on, where its velocity
carries it (issue 22).

A heavily compressed video (crf 42) holds smooth background still for some frames and then moves it in blocks, so in
one pair a patch of still scene really does move against the rest, and its pixels confirm it. Over a longer baseline
such moves cancel (the encoder keeps the picture near its source), while an object's displacement adds up. So each
region is checked on a frame ``SUPPORT_GAP_S`` from its pair's first: moved as a still scene would move it, that frame
must match the first clearly worse over the region than moved by the still scene's flow plus the region's own
velocity. The still scene's flow over that baseline is the pair's, scaled, with an affine correction fitted to the DIS
flow that the background leaves (a camera does not keep its speed exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motionpipe.stages.flow_backends import DisFlow
from motionpipe.stages.flow_checks import pixel_grid, region_medians, squared_length
from motionpipe.stages.residual_motion import (
    Box,
    labels_matched_better,
    photometric_errors,
    region_box,
    within_frame,
)

SUPPORT_GAP_S = 0.25  # two samples at the default 8 fps: objects move 2-3x a pair's distance, encoder moves cancel
SUPPORT_DIS_PRESET = "balanced"  # the CPU default's: from the guess, what is left to find is small
FIT_STRIDE_PX = 4  # the affine correction is fitted on a grid of points this far apart
OUTLIER_FACTOR = 3.0  # points off the first affine fit by more than this many times its median misfit are left out
SUPPORT_RATIO = 1.1  # the region's match error moved as a still scene over that moved with its velocity, at least
# Where the scaled guess alone, uncorrected, shows every region of a pair moving by this ratio, the correction (and
# its DIS call) is skipped: on benchmarks/decouple.py's tuning seed no pair so shown lost a region to the corrected
# check at 3 (at 2, 3 of 872 pairs did); the held-out seed agreed (none of 852); 65-76% of pairs with regions skip it
SURE_RATIO = 3.0
# A region is judged only when this share of its pixels is judgeable: its velocity keeps them inside the later frame, or
# the still scene's motion alone carries them out (blobs at a pan's leading edge, judged as ever). An object entering
# at a clip's end was outside the frame a quarter second before (benchmarks/decouple.py seed 12, 30 fps: 16-27% of
# such a region's pixels landed inside, and it read 0 for 23.4 %diag/s as no frame could match the rest).
MIN_JUDGED_SHARE = 0.5


@dataclass(frozen=True)
class PairFlows:
    """A measuring pair's flows (``float32[h, w, 2]``, px over the pair's interval)."""

    forward: np.ndarray  # measured
    camera: np.ndarray  # the homography's
    still: np.ndarray  # a still scene's: the camera's plus the parallax along the epipolar lines (the camera's without)


def support_frame(times_s: np.ndarray, anchor: int, gap_s: float = SUPPORT_GAP_S) -> int:
    """The first frame at least ``gap_s`` after ``anchor`` (positions into ``times_s``); the last one at least that
    long before it when the clip ends sooner; -1 when neither exists."""
    later = np.nonzero(times_s >= times_s[anchor] + gap_s - 1e-6)[0]
    if len(later):
        return int(later[0])
    earlier = np.nonzero(times_s <= times_s[anchor] - gap_s + 1e-6)[0]
    return int(earlier[-1]) if len(earlier) else -1


def background_flow(
    first: np.ndarray, second: np.ndarray, guess: np.ndarray, objects: np.ndarray, box: Box
) -> np.ndarray:
    """``float32[h, w, 2]`` over ``box``: how the background moves between two grey frames: the ``guess`` (the pair's
    camera flow, scaled), corrected by an affine map fitted to the DIS flow left outside ``objects`` once the second
    frame is moved by it. A handheld camera does not keep its speed, and zooms do not scale linearly; DIS alone
    missed fast pans over this baseline, and a homography fitted to it (USAC) made annotation 16-38% slower."""
    height, width = first.shape
    grid = pixel_grid(height, width)
    moved = grid + guess
    warped = cv2.remap(second, moved[..., 0], moved[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    left = DisFlow(SUPPORT_DIS_PRESET).flow(first[None].astype(np.uint8), warped[None].astype(np.uint8))[0]
    sampled = (slice(FIT_STRIDE_PX // 2, None, FIT_STRIDE_PX),) * 2
    at, targets = grid[sampled], left[sampled]
    landed = at + guess[sampled] + targets
    background = ~objects[sampled] & within_frame(at, height, width) & within_frame(landed, height, width)
    if background.sum() < 3:
        return guess[box]
    points = np.hstack([at[background], np.ones((int(background.sum()), 1), np.float32)]).astype(np.float64)
    targets = targets[background]
    trusted = np.ones(len(points), bool)
    # least squares, then again without the points it fits worst (flow errors, missed objects); solved by the
    # 3 x 3 normal equations: 2.5x cheaper than a least-squares solve over the ~1000 points
    for _ in range(2):
        fitted = points[trusted]
        affine = np.linalg.lstsq(fitted.T @ fitted, fitted.T @ targets[trusted], rcond=None)[0]
        misfit = np.sqrt(squared_length(points @ affine - targets))
        trusted = misfit <= OUTLIER_FACTOR * np.median(misfit) + 1e-3
    affine = affine.astype(np.float32)
    return guess[box] + grid[box] @ affine[:2] + affine[2]


def regions_moving(
    labels: np.ndarray,
    count: int,
    judgeable: np.ndarray,
    frames: tuple[np.ndarray, np.ndarray],
    still: np.ndarray,
    moving: np.ndarray,
    ratio: float,
    box: Box,
) -> np.ndarray:
    """``bool[count]``: per region of ``labels`` (over ``box``; 0 is none), whether the second of the grey ``frames``
    moved by the ``moving`` flow matches the first ``ratio`` times better than moved by the ``still`` one (errors
    summed over the region); a region with fewer than ``MIN_JUDGED_SHARE`` of its pixels ``judgeable`` is kept, as the
    second frame cannot show where it went."""
    matched = labels_matched_better(labels, count, *photometric_errors(*frames, still, moving, box), ratio)
    sizes = np.bincount(labels.ravel(), minlength=count)
    unjudged = np.bincount(labels[judgeable], minlength=count) < MIN_JUDGED_SHARE * sizes
    unjudged[0] = False
    return matched | unjudged


def still_moving(
    objects: np.ndarray,
    first: np.ndarray,
    later: np.ndarray,
    flows: PairFlows,
    scale: float,
    ratio: float = SUPPORT_RATIO,
) -> np.ndarray:
    """``objects[h, w]`` of one pair less the regions that ``later`` (a grey frame ``scale`` pair intervals after
    ``first``, or before it when negative) does not bear out. Every flow scales with the interval: constant velocities
    are what the check expects of objects and of the camera's guess, which is corrected (background_flow) unless it
    already shows every region clearly moving (``SURE_RATIO``). A region is judged only when its own motion does not
    carry most of it out of ``later``'s frame (``MIN_JUDGED_SHARE``). Flows are formed over the regions' box only."""
    if not objects.any():
        return objects
    box = region_box(objects)
    count, labels = cv2.connectedComponents(objects[box].astype(np.uint8), connectivity=8)
    # each region's own displacement over the baseline; outside the regions, label 0, none
    own = (scale * region_medians((flows.forward - flows.still)[box], labels, count))[labels]
    guessed = scale * flows.still[box]  # the still scene's flow, scaled and not corrected
    grid = pixel_grid(*objects.shape)[box]
    # judgeable unless its own motion, not the still scene's, carries it out of the frame: an object entering or leaving
    judgeable = within_frame(grid + guessed + own, *objects.shape) | ~within_frame(grid + guessed, *objects.shape)
    frames = (first, later)
    if regions_moving(labels, count, judgeable, frames, guessed, guessed + own, SURE_RATIO, box)[1:].all():
        return objects
    parallax = (flows.still - flows.camera)[box]
    still = background_flow(first, later, scale * flows.camera, objects, box) + scale * parallax
    kept = np.zeros_like(objects)
    kept[box] = regions_moving(labels, count, judgeable, frames, still, still + own, ratio, box)[labels]
    return kept
