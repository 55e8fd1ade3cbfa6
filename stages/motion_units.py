"""Motion units shared by every stage (DESIGN.md §2): percent of the frame diagonal per second.

Normalising by the diagonal and the time between frames makes one clip read the same at any
resolution or frame rate, so thresholds and scores carry across datasets.
"""

from __future__ import annotations

import math

import numpy as np

from motionpipe.stages.flow_checks import squared_length

# MotionPro's mask threshold, 1 px per frame at 320x512 and 8 fps, in %diag/s (about 1.33).
MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S = 100.0 * 1.0 / math.hypot(320, 512) * 8.0


def pct_diag_per_s(width: int, height: int, dt_s: float) -> float:
    """%diag/s of a displacement of one px between frames ``dt_s`` seconds apart, at ``width x height``."""
    return 100.0 / math.hypot(width, height) / dt_s


def speed_pct_diag_per_s(flow: np.ndarray, dt_s: float) -> np.ndarray:
    """Per-pixel speed of a flow field ``float[H, W, 2]`` (px) measured over ``dt_s`` seconds."""
    height, width = flow.shape[:2]
    magnitude_px = np.sqrt(squared_length(flow))  # np.hypot guards against overflow at 6x the cost
    return magnitude_px * pct_diag_per_s(width, height, dt_s)
