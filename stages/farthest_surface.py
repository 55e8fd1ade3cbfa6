"""Objects move against the farthest still surface: when the plane a pair's homography fitted is a nearer layer,
refit it to the farthest surface (issue 22).

A homography fits the largest surface, and under a translating camera that may be a nearer layer (scenery over
half the frame). Measured against it, everything still and farther moves back along the epipolar lines, and an
object's residual carries that layer's parallax too: it read its speed plus the layer's, or nothing once the
parallax allowance across the lines (a share of the residual along them) swallowed its own motion.
``explain_parallax`` finds how the farthest surface moves (its level); the homography refitted to the pixels that
move so puts every still point on the near side and gives objects their speed against the background, as the
benchmark and MotionStone's camera/object split define it. The camera's own rates stay the first fit's.
"""

from __future__ import annotations

import numpy as np

from motionpipe.stages.camera_model import camera_flow, fit_camera
from motionpipe.stages.flow_checks import squared_length
from motionpipe.stages.residual_motion import MIN_PARALLAX_RATIO, ParallaxExplanation, explain_parallax

# A pair's fitted plane counts as a nearer layer when the farthest surface moves the far way from it by this share of
# the camera's displacement (medians over the pixels) ...
NEARER_PLANE_SHARE = 0.3
# ... and by this many times the pair's noise floor: under noise and compression the level, a low quantile of the
# parallax, sits a little beyond the background, and slow pans (1-2 px a pair) put it past the share alone
# (benchmarks/decouple.py seed 7 parallax_real: objects read 13.9 and 4.3 %diag/s, truly 14.9 and 4.0, went to 0
# against such a "surface").
NEARER_PLANE_NOISE = 5.0
# A refit is kept when this share of the farthest surface's points fits it, and it moves as the level says (within
# MIN_PARALLAX_RATIO of the camera's displacement): a plane fitted to a cluster of a few points, extrapolated over
# the frame, made a still scene read 57.5 %diag/s.
MIN_REFIT_INLIERS = 0.5


def against_farthest_surface(
    forward: np.ndarray,
    reliable: np.ndarray,
    camera: np.ndarray,
    explanation: ParallaxExplanation,
    noise_px: np.ndarray,
    min_share: float,
) -> tuple[np.ndarray, ParallaxExplanation] | None:
    """Where pairs' fitted planes (``camera`` flow, ``[P, h, w, 2]``) are nearer layers than the farthest surface
    that ``explanation`` found: the camera flow with those pairs' homographies refitted to the ``reliable`` pixels
    whose ``forward`` flow is within what counts as parallax (``MIN_PARALLAX_RATIO`` of the camera's displacement)
    of the farthest surface's, and the parallax explained against it (``explain_parallax`` with ``noise_px`` and
    ``min_share``). None when no pair's plane is a nearer layer, no refit holds, or the refit shows no parallax."""
    height, width = forward.shape[1:3]
    moved = np.sqrt(squared_length(camera))
    # within what counts as parallax of the farthest surface, per pixel (a zoom's displacement grows outwards)
    on_farthest = reliable & (
        np.sqrt(squared_length(forward - explanation.farthest_flow)) <= MIN_PARALLAX_RATIO * moved
    )
    displacement = np.median(moved, axis=(1, 2))
    offset = np.median(np.sqrt(squared_length(explanation.farthest_flow - camera)), axis=(1, 2))
    nearer = (offset > NEARER_PLANE_SHARE * displacement) & (offset > NEARER_PLANE_NOISE * explanation.noise_px)
    planes, any_refit = camera.copy(), False
    for pair in np.flatnonzero(nearer):
        fit = fit_camera(forward[pair], on_farthest[pair])
        flow = camera_flow(fit.homography, width, height)
        off_level = np.median(np.sqrt(squared_length(flow - explanation.farthest_flow[pair])))
        if fit.inlier_fraction >= MIN_REFIT_INLIERS and off_level <= MIN_PARALLAX_RATIO * displacement[pair]:
            planes[pair], any_refit = flow, True
    if not any_refit:
        return None
    # the frames bore the parallax out against the first planes (matched_unlike_camera); it is the same scene's
    explained = explain_parallax(forward - planes, planes, reliable, noise_px, min_share)
    return None if explained is None else (planes, explained)
