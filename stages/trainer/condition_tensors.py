"""A clip's stored conditions (``schemas/conditions.py``) turned into training arrays at the training size.

Stored fields are at the annotation's processing size; training happens at another (``W x H``, stretched).
Displacements are rescaled per axis, masks resized nearest, the heatmap area-resampled to the training
latent grid. Randomness (MotionPro's region selection, Motion-I2V's sparse subset) comes from the
caller's generator, so an epoch is reproducible from its seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Size = tuple[int, int]  # (width, height) in px, OpenCV's order


def resize_planes(field: np.ndarray, size: Size, nearest: bool = False) -> np.ndarray:
    """``[..., h, w]`` -> ``float32[..., H, W]``: nearest for masks, area (shrinking) or bilinear for values."""
    leading, (height, width) = field.shape[:-2], field.shape[-2:]
    planes = field.reshape(-1, height, width).astype(np.float32)
    method = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if size[0] < width else cv2.INTER_LINEAR)
    resized = [cv2.resize(plane, size, interpolation=method) for plane in planes]
    return np.stack(resized).reshape(*leading, size[1], size[0])


def pad_frames(array: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` entries along axis 0, the last repeated when there are fewer (the clip stops)."""
    if len(array) >= count:
        return array[:count]
    return np.concatenate([array, np.repeat(array[-1:], count - len(array), axis=0)])


def px_scale(proc_size: np.ndarray, size: Size) -> np.ndarray:
    """``float32[2]``: processing px -> training px, for (x, y)."""
    return np.asarray(size, np.float32) / proc_size.astype(np.float32)


def region_selection(grid: int, field: Size, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """MotionPro's random region selection: ``ceil(ratio k^2)`` of the k x k cells, as ``bool[h, w]``."""
    cells = np.zeros(grid * grid, np.uint8)
    cells[rng.choice(grid * grid, size=max(1, math.ceil(ratio * grid * grid)), replace=False)] = 1
    return cv2.resize(cells.reshape(grid, grid), field, interpolation=cv2.INTER_NEAREST).astype(bool)


def region_trajectories(
    arrays: dict[str, np.ndarray], frames: int, size: Size, field: Size, ratio_min: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """MotionPro's region-wise trajectories: (``float32[F, 2, h, w]`` f(0->i) in training px, ``float32[1, h, w]``
    mask), kept where tracks stay visible (M_g) and inside the regions drawn with a ratio in [ratio_min, 1]."""
    flow = pad_frames(arrays["region_flow"], frames)
    scaled = resize_planes(flow, field) * px_scale(arrays["proc_size"], size)[:, None, None]
    visible = resize_planes(arrays["global_visibility"], field, nearest=True) > 0.5
    chosen = region_selection(int(arrays["region_grid"]), field, rng.uniform(ratio_min, 1.0), rng)
    mask = (visible & chosen).astype(np.float32)
    return scaled * mask, mask[None]


def sparse_trajectories(
    arrays: dict[str, np.ndarray], frames: int, size: Size, field: Size, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Motion-I2V's sparse condition: a random subset (1..N) of the stored points, each writing its f(0->i) in
    training px at its starting cell (``float32[F, 2, h, w]``), and the binary mask of those cells."""
    tracks = arrays["sparse_tracks"].astype(np.float32)  # [N, T, 2] processing px
    visible = arrays["sparse_visibility"]
    flow = np.zeros((frames, 2, field[1], field[0]), np.float32)
    mask = np.zeros((1, field[1], field[0]), np.float32)
    if len(tracks) == 0:
        return flow, mask
    chosen = rng.choice(len(tracks), size=int(rng.integers(1, len(tracks) + 1)), replace=False)
    proc_size = arrays["proc_size"].astype(np.float32)
    for point in chosen:
        start = tracks[point, 0]
        column, row = np.minimum((start / proc_size * field).astype(int), np.array(field) - 1)
        moved = pad_frames((tracks[point] - start) * visible[point, :, None], frames)
        flow[:, :, row, column] = moved * px_scale(arrays["proc_size"], size)
        mask[0, row, column] = 1.0
    return flow, mask


def latent_heatmap(arrays: dict[str, np.ndarray], frames: int, temporal: int, latent: Size) -> np.ndarray:
    """MotiF's heatmap at the training latent grid: ``float32[ceil(F / temporal), h', w']`` in [0, 1]."""
    heatmap = arrays["heatmap"].astype(np.float32) / 255.0
    return resize_planes(pad_frames(heatmap, math.ceil(frames / temporal)), latent)


def motion_mask(arrays: dict[str, np.ndarray], size: Size) -> np.ndarray:
    """MotionPro's motion mask at the training size, ``float32[1, H, W]`` of 0/1."""
    return resize_planes(arrays["motion_mask"], size, nearest=True)[None]
