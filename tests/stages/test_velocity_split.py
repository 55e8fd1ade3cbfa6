"""Cutting off the parts of a candidate region that move unlike it."""

from __future__ import annotations

import cv2
import numpy as np

from motionpipe.stages.velocity_split import SPLIT_FLOOR_PX, split_by_velocity

SHAPE = (60, 80)


def regions(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def test_an_object_merged_with_slower_blocks_is_cut_off_by_a_one_pixel_seam():
    rng = np.random.default_rng(0)
    mask = np.zeros(SHAPE, bool)
    mask[10:50, 5:45] = True  # encoder blocks: small residuals every way, the larger part, so the region's median
    mask[20:40, 45:65] = True  # the object, touching them: 3 px right
    velocity = np.zeros(SHAPE + (2,), np.float32)
    velocity[10:50, 5:45] = rng.normal(0, 0.15, (40, 40, 2))
    velocity[20:40, 45:65] = (3.0, 0.0)
    split = split_by_velocity(mask, velocity, min_px=50)
    assert regions(mask) == 1 and regions(split) == 2
    assert split[10:50, 5:45].all()  # the region's own pixels stay
    assert not split[20:40, 45].any() and split[20:40, 46:65].all()  # the object loses its first column only


def test_a_region_moving_as_one_stays_whole():
    mask = np.zeros(SHAPE, bool)
    mask[10:50, 10:60] = True
    velocity = np.zeros(SHAPE + (2,), np.float32)
    velocity[mask] = (2.0, 1.0)
    velocity[10:50, 10:12] = (1.2, 0.6)  # the edge, smoothed by the flow: within half the median's length
    assert np.array_equal(split_by_velocity(mask, velocity, min_px=50), mask)


def test_a_part_too_small_to_be_an_object_is_not_cut_off():
    mask = np.zeros(SHAPE, bool)
    mask[10:50, 10:60] = True
    velocity = np.zeros(SHAPE + (2,), np.float32)
    velocity[mask] = (2.0, 0.0)
    velocity[20:25, 30:35] = (-2.0, 2.0)  # 25 px moving otherwise
    assert np.array_equal(split_by_velocity(mask, velocity, min_px=50), mask)
    cut = split_by_velocity(mask, velocity, min_px=20)  # large enough: its rim is the seam, its core a region
    assert regions(cut) == 2 and cut.sum() == mask.sum() - 16


def test_a_slow_region_splits_only_beyond_the_flow_error_floor():
    mask = np.zeros(SHAPE, bool)
    mask[10:50, 10:60] = True
    velocity = np.zeros(SHAPE + (2,), np.float32)
    velocity[10:50, 10:35] = (0.2, 0.0)
    velocity[10:50, 35:60] = (0.2 + 0.9 * SPLIT_FLOOR_PX, 0.0)  # half the region, off by under the floor
    assert np.array_equal(split_by_velocity(mask, velocity, min_px=50), mask)
