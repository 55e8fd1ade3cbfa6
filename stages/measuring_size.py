"""The measuring size: every second pixel of the processing frame, where the measuring pairs are analysed.

DIS (the default) resolves flow at half the processing size and upsamples it, and the pairs' backward flow
is measured on frames halved by a pyramid step, so the pairs' statistics, camera fit, residual motion and
object masks lose nothing at half size and cost a quarter. Pixel ``(i, j)`` there is processing pixel
``(2i, 2j)`` (where ``cv2.pyrDown`` puts it too); lengths there are in half-size px, speeds in %diag/s as
everywhere.
"""

from __future__ import annotations

import numpy as np

STRIDE = 2


def field_at_measuring_size(field: np.ndarray) -> np.ndarray:
    """A flow field ``[..., H, W, 2]`` in processing px, read at the measuring pixels, in half-size px."""
    return field[..., ::STRIDE, ::STRIDE, :] * np.float32(1 / STRIDE)


def mask_at_measuring_size(mask: np.ndarray) -> np.ndarray:
    """A per-pixel map ``[..., H, W]`` at the processing size, read at the measuring pixels."""
    return mask[..., ::STRIDE, ::STRIDE]


def map_at_processing_size(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """A map ``[..., h, w]`` at the measuring size back at the processing size: each value covers its block."""
    return values.repeat(STRIDE, axis=-2).repeat(STRIDE, axis=-1)[..., :height, :width]


def measuring_pixel(processing_px: np.ndarray) -> np.ndarray:
    """Integer positions at the processing size -> the measuring pixel whose block holds them."""
    return np.asarray(processing_px) // STRIDE


def processing_pixel(measuring_px: np.ndarray) -> np.ndarray:
    """Positions at the measuring size -> the processing pixel they sit on."""
    return np.asarray(measuring_px) * STRIDE
