"""Camera-compensated frame differences: what is left of a frame change once the camera's motion is
taken out, i.e. where objects move.

Ours, for the estimator's input: between consecutive samples an affine camera model (pan, tilt, zoom,
roll) is fitted by ECC (Evangelidis & Psarakis, 2008) on the grey frames, the previous frame is warped
onto the current one and subtracted. A plain difference mixes object and camera motion; a small network
trained for minutes on CPU cannot learn to undo the camera itself, with this it does not have to.
"""

from __future__ import annotations

import cv2
import numpy as np

ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
ECC_SMOOTHING = 3  # Gaussian kernel size: ECC converges on smoothed images


def camera_affine(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """``float32[2, 3]`` mapping ``current``'s pixels into ``previous`` (identity when ECC does not converge,
    e.g. on a flat frame: its difference is then the plain one)."""
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(current, previous, warp, cv2.MOTION_AFFINE, ECC_CRITERIA, None, ECC_SMOOTHING)
    except cv2.error:
        return np.eye(2, 3, dtype=np.float32)
    return warp


def compensated_differences(frames: np.ndarray) -> np.ndarray:
    """``float32[T, H, W, 3]`` in [0, 1] -> ``float32[T, H, W, 3]`` in [-1, 1]: frame t minus frame t-1 warped
    by the camera's motion; zero for the first frame."""
    grey = frames.mean(axis=3, dtype=np.float32)
    height, width = grey.shape[1:]
    differences = np.zeros_like(frames, dtype=np.float32)
    for t in range(1, len(frames)):
        warp = camera_affine(grey[t - 1], grey[t])
        aligned = cv2.warpAffine(
            frames[t - 1],
            warp,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        differences[t] = frames[t] - aligned
    return differences
