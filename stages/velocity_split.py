"""A candidate region moves as one: where part of it moves unlike the rest, that part is cut off (issue 22).

At crf 42 the encoder moves smooth background in blocks, and an object's region merges with the blocks around it.
Judged as one, by its median velocity, the merged region is the blocks': the quarter-second check
(stages/temporal_support.py) then drops the object with them (a 13.6 %diag/s object read 0 on benchmarks/decouple.py's
seed 2), or the object's median is read over both. So each region's pixels whose residual is far from the region's
median are a region of their own, cut from the rest by a one-pixel seam, where they are large enough to be one.
"""

from __future__ import annotations

import cv2
import numpy as np

from motionpipe.stages.flow_checks import region_medians, squared_length
from motionpipe.stages.residual_motion import region_box

# A pixel moves unlike its region when its residual is off the region's median by more than this share of the
# median's length plus SPLIT_FLOOR_PX (flow error). On benchmarks/decouple.py seeds 0-2, shares 0.35, 0.5 and 0.7
# and a second round of splitting gave the same pair accuracies.
SPLIT_SHARE = 0.5
SPLIT_FLOOR_PX = 0.5
SEAM_KERNEL = np.ones((3, 3), np.uint8)


def split_by_velocity(mask: np.ndarray, velocity: np.ndarray, min_px: float) -> np.ndarray:
    """``mask[h, w]`` with the parts of its regions that move unlike them, where those parts cover ``min_px`` or
    more, cut off by a one-pixel seam; ``velocity[h, w, 2]``: the residual flow (px), the flow a still scene would
    not have."""
    if not mask.any():
        return mask
    box = region_box(mask)  # regions are small and frames are not
    within = mask[box]
    count, labels = cv2.connectedComponents(within.astype(np.uint8), connectivity=8)
    medians = region_medians(velocity[box], labels, count)
    off = np.sqrt(squared_length(velocity[box] - medians[labels]))
    unlike = within & (off > SPLIT_SHARE * np.sqrt(squared_length(medians))[labels] + SPLIT_FLOOR_PX)
    _, part_labels, stats, _ = cv2.connectedComponentsWithStats(unlike.astype(np.uint8), connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= min_px
    large[0] = False
    unlike = large[part_labels]
    if not unlike.any():
        return mask
    split = mask.copy()
    split[box] &= ~(unlike & cv2.dilate((within & ~unlike).astype(np.uint8), SEAM_KERNEL).astype(bool))
    return split
