"""Which of a pair's residual flow (flow minus what the camera model explains) is evidence of moving objects.

Three things in real video make a plain homography residual read objects that are not there (issue 22):
- pixels whose flow leaves the frame, or that sit on its edge, have no true match in the second frame;
- flow error grows with sensor noise, compression and speed, so a fixed speed threshold turns noise into
  objects: each pair's threshold sits ``noise_factor`` times above its noise floor, the median residual
  of its reliable pixels (mostly background, whose true residual is zero);
- a translating camera gives nearer still scenery parallax, which no homography explains. The fitted plane
  is the largest surface, usually the farthest, so parallax is residual *along* the camera's own flow at
  that pixel (nearer things move the same way, faster). When a clip shows that over a large part of the
  frame, the along-flow component is taken for parallax, not objects; residual across the camera's flow,
  or against it, is still object motion (motion along an epipolar line is ambiguous in two frames: a
  still scene reading no object motion is what the user asked for).
Then every candidate region must be confirmed by the pixels themselves: the second frame, moved by the
flow, must match the first clearly better than moved by the camera. A blob of flow error on still
background fails that whatever its speed; a moving object passes it.
"""

from __future__ import annotations

import cv2
import numpy as np

from stages.flow_checks import pixel_grid, squared_length

EDGE_PX = 2  # measuring px along the frame's edge where flow has too little context to trust
PARALLAX_SLOPE = 0.5  # a parallax-like residual's across-flow part is at most this share of its along-flow part
MIN_PARALLAX_RATIO = 0.15  # parallax of at least this share of the camera's displacement (depth <= 0.87 x the plane's)
MIN_CAMERA_PX = 0.25  # measuring px: below this the camera's flow gives no direction to compare with
PHOTOMETRIC_WINDOW_PX = 5  # measuring px over which match errors are averaged


def lands_inside(forward: np.ndarray, edge_px: int = EDGE_PX) -> np.ndarray:
    """``bool[..., H, W]``: the pixel is ``edge_px`` from the frame's edge and its flow lands as far inside."""
    height, width = forward.shape[-3:-1]
    landed = pixel_grid(height, width) + forward
    inside = (landed[..., 0] >= edge_px) & (landed[..., 0] <= width - 1 - edge_px)
    inside &= (landed[..., 1] >= edge_px) & (landed[..., 1] <= height - 1 - edge_px)
    inside[..., :edge_px, :] = inside[..., -edge_px:, :] = False
    inside[..., :edge_px] = inside[..., -edge_px:] = False
    return inside


def reliable_medians(speeds: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """``float[P]``: per pair, the median of ``speeds[P, h, w]`` over its reliable pixels (0 with none): the noise
    floor, as most reliable pixels are background whose true residual is zero."""
    return np.array(
        [float(np.median(speed[mask])) if mask.any() else 0.0 for speed, mask in zip(speeds, reliable, strict=True)]
    )


def along_and_across(residual: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residual's signed component along the camera's flow at each pixel and its unsigned one across it (px);
    where the camera barely moves the pixel, all of it counts as across."""
    length = np.sqrt(squared_length(camera))
    moving = length > MIN_CAMERA_PX
    unit = camera / np.where(moving, length, 1.0)[..., None]
    along = np.where(moving, residual[..., 0] * unit[..., 0] + residual[..., 1] * unit[..., 1], 0.0)
    cross = np.abs(residual[..., 0] * unit[..., 1] - residual[..., 1] * unit[..., 0])
    across = np.where(moving, cross, np.sqrt(squared_length(residual)))
    return along, across


def parallax_share(
    along: np.ndarray, across: np.ndarray, camera_px: np.ndarray, noise_px: np.ndarray, reliable: np.ndarray
) -> float:
    """Median over pairs of the share of reliable pixels whose residual runs along the camera's flow, the same way,
    by more than ``MIN_PARALLAX_RATIO`` of the camera's displacement there and more than the pair's noise
    ``noise_px[P]`` (what nearer still scenery does under a translating camera)."""
    parallax_like = (along > MIN_PARALLAX_RATIO * camera_px) & (along > noise_px[:, None, None])
    parallax_like &= across < PARALLAX_SLOPE * along
    shares = [like[mask].mean() if mask.any() else 0.0 for like, mask in zip(parallax_like, reliable, strict=True)]
    return float(np.median(shares))


def object_evidence(along: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Residual length without its parallax-like part (along the camera's flow, the same way), px."""
    against = np.minimum(along, 0.0)
    return np.sqrt(across**2 + against**2)


def photometric_errors(
    first: np.ndarray, second: np.ndarray, camera: np.ndarray, forward: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a pair (grey ``float32[h, w]`` frames at the measuring size), how badly the second frame
    matches the first when pixels move as the camera says and as the flow says: ``(camera_error, flow_error)``,
    absolute differences averaged over a small window (where an object moves, the flow matches better; where
    the flow is an error on still background, the camera does)."""
    grid = pixel_grid(*first.shape)
    errors = []
    for motion in (camera, forward):
        moved = grid + motion
        warped = cv2.remap(second, moved[..., 0], moved[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errors.append(cv2.blur(np.abs(first - warped), (PHOTOMETRIC_WINDOW_PX, PHOTOMETRIC_WINDOW_PX)))
    return errors[0], errors[1]


def confirmed_regions(
    mask: np.ndarray, camera_error: np.ndarray, flow_error: np.ndarray, ratio: float
) -> np.ndarray:
    """The connected regions of ``mask`` whose pixels the flow matches clearly better than the camera does
    (mean errors over the region at least ``ratio`` apart)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    camera_sum = np.bincount(labels.ravel(), camera_error.ravel(), minlength=count)
    flow_sum = np.bincount(labels.ravel(), flow_error.ravel(), minlength=count)
    keep = camera_sum > ratio * flow_sum
    keep[0] = False
    return keep[labels]
