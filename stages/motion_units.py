"""Motion units shared by every stage (DESIGN.md §2): percent of the frame diagonal per second.

Normalising by the diagonal and the time between frames makes one clip read the same at any
resolution or frame rate, so thresholds and scores carry across datasets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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


def mean_of_medians(groups: Iterable[np.ndarray]) -> float:
    """The mean of the non-empty ``groups``' medians, each weighted by its size; 0 without any. Object motion over
    several objects: each object's median is robust to a few wrong readings, and the mean moves smoothly as the
    objects' sizes change, where a median over all their readings jumps from one object's speed to another's."""
    medians, sizes = [], []
    for group in groups:
        if group.size:
            medians.append(float(np.median(group)))
            sizes.append(group.size)
    return float(np.average(medians, weights=sizes)) if sizes else 0.0
