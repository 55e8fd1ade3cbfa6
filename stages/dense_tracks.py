"""DOT-style dense tracks: motion fields f(0->i) from the first sample to every sample (Motion-I2V),
chained through closely spaced flows, with visibility from forward-backward consistency (MotionPro).

Chaining: f(0->k+1)(x) = f(0->k)(x) + F_k(x + f(0->k)(x)), F_k sampled bilinearly. A track stays
visible while each step passes the forward-backward check |F + B|^2 < a(|F|^2 + |B|^2) + b and
lands inside the frame, away from motion boundaries (where smoothed flow drags background
along with an occluder); once it fails it stays invisible (ours: a chained track that crossed an
occlusion follows whatever covered it, so it cannot be trusted again). The global visibility mask
M_g = prod_i M^i is therefore the last frame's mask.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from motionpipe.stages.base import ClipError, ClipRecord, DenseTracks, Stage
from motionpipe.stages.flow_checks import pixel_grid, round_trip_agrees, sample_field, squared_length

EDGE_ALPHA = 0.01  # motion-boundary check (Sundaram et al. 2010): |grad F|^2 > a |F|^2 + b
EDGE_BETA = 0.002


def motion_boundary(flow: np.ndarray) -> np.ndarray:
    """Where the flow changes sharply: tracks there are about to be occluded or dragged by a neighbour."""
    # per component |dF/dx|^2 + |dF/dy|^2, then the two components summed (not .sum(axis=-1): slow on 2 values)
    gradient = cv2.Sobel(flow, cv2.CV_32F, 1, 0, ksize=1) ** 2 + cv2.Sobel(flow, cv2.CV_32F, 0, 1, ksize=1) ** 2
    return gradient[..., 0] + gradient[..., 1] > EDGE_ALPHA * squared_length(flow) + EDGE_BETA


def chain_tracks(forward: np.ndarray, backward: np.ndarray, record_after: list[int]) -> DenseTracks:
    """Chain step flows ``[S, H, W, 2]`` from frame 0; record f(0->k+1) after each step index in ``record_after``.

    The first recorded frame is frame 0 itself (zero displacement, all visible).
    """
    height, width = forward.shape[1:3]
    grid = pixel_grid(height, width)
    displacement = np.zeros_like(grid)
    visible = np.ones((height, width), bool)
    displacements, visibilities = [displacement.copy()], [visible.copy()]
    wanted = set(record_after)
    for step, (step_forward, step_backward) in enumerate(zip(forward, backward, strict=True)):
        position = grid + displacement
        moved = sample_field(step_forward, position)
        landed = position + moved
        returned = sample_field(step_backward, landed)
        inside = (landed[..., 0] >= 0) & (landed[..., 0] <= width - 1) & (landed[..., 1] >= 0)
        inside &= landed[..., 1] <= height - 1
        on_edge = sample_field(motion_boundary(step_forward).astype(np.float32), position) > 0.5
        visible &= round_trip_agrees(moved, returned) & inside & ~on_edge
        displacement = landed - grid
        if step in wanted:
            displacements.append(displacement.copy())
            visibilities.append(visible.copy())
    return DenseTracks(displacement=np.stack(displacements), visibility=np.stack(visibilities))


class DenseTracksStage(Stage):
    """Chains the flow stage's chain flows into f(0->i) at every sample."""

    name: ClassVar[str] = "tracks"

    def process_clip(self, clip: ClipRecord) -> None:
        video, motion = clip.video, clip.motion
        chain = video.chain.tolist()
        if len(chain) < 2:
            raise ClipError("tracks:too_short", "the sampled window holds a single frame: no f(0->i) to build")
        samples = set(video.samples.tolist())
        record_after = [step for step, position in enumerate(chain[1:]) if position in samples]
        clip.tracks = chain_tracks(motion.chain_forward, motion.chain_backward, record_after)
        clip.fields["tracks_backend"] = "flow_chain"
        clip.fields["visible_fraction"] = float(clip.tracks.visibility[-1].mean())
