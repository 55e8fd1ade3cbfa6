"""Forward-backward consistency of optical flow (Sundaram et al. 2010), shared by every stage that
needs to know where flow can be trusted: a pixel's forward flow, followed by the backward flow at
where it lands, must bring it back: |F + B|^2 < a (|F|^2 + |B|^2) + b.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

FB_ALPHA = 0.01  # relative tolerance
FB_BETA = 0.5  # absolute tolerance, px^2


@functools.lru_cache(maxsize=16)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """``float32[H, W, 2]`` (x, y) of every pixel; cached and read-only (clips of a run share a few sizes)."""
    grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


def sample_field(field: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``float32[H, W, C]`` at ``positions`` ``float32[H, W, 2]`` (x, y), edge-clamped."""
    return cv2.remap(field, positions[..., 0], positions[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def round_trip_agrees(moved: np.ndarray, returned: np.ndarray) -> np.ndarray:
    """``bool[...]``: a forward displacement and the backward one found where it lands cancel out."""
    error = squared_length(moved + returned)
    return error < FB_ALPHA * (squared_length(moved) + squared_length(returned)) + FB_BETA


def squared_length(vectors: np.ndarray) -> np.ndarray:
    """``|v|^2`` over the last axis of size 2 (written out: numpy's reduction over a 2-long axis is ~5x slower)."""
    return vectors[..., 0] ** 2 + vectors[..., 1] ** 2


def region_medians(field: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """``float32[count, 2]``: per component of ``labels`` (``count`` of them, as cv2.connectedComponents gives),
    the median of the vectors ``field[h, w, 2]`` over its pixels; row 0, the background's, is 0. One channel at a
    time: numpy's median down a 2-long axis costs twice as much."""
    medians = np.zeros((count, 2), np.float32)
    for label in range(1, count):
        region = labels == label
        medians[label] = [np.median(field[..., axis][region]) for axis in (0, 1)]
    return medians


def forward_backward_consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """``bool[..., H, W]`` for forward and backward flow fields ``[..., H, W, 2]`` of the same pairs (a batch
    costs less than its fields one by one: the arithmetic runs once over all of them)."""
    height, width = forward.shape[-3:-1]
    landed = pixel_grid(height, width) + forward
    fields = zip(backward.reshape(-1, height, width, 2), landed.reshape(-1, height, width, 2), strict=True)
    returned = np.stack([sample_field(field, at) for field, at in fields]).reshape(forward.shape)
    return round_trip_agrees(forward, returned)
