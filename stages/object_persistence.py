"""Moving objects persist: a region seen moving in one measuring pair has motion near where its own velocity
carries it in some other pair of the clip (issue 22).

Flow error that survives a pair's checks (a blob on noisy or blocky background, the edge of a nearer layer under
parallax, an encoder that moves part of a still frame in blocks) turns up in one pair and elsewhere, or nowhere,
in the others. A region is kept when another pair has motion (the caller's witnesses: candidate motion, or only
the regions that pair confirmed) where the region's velocity carries it by then, within a tolerance that grows with
the distance carried (objects turn and zooms bend their paths), or when no other pair can tell: the region would be
carried out of the frame (objects entering or leaving), or the clip has one pair. A small region that no other pair
can tell about is dropped: scenery entering the frame's edge behind a nearer layer makes such flow error, and an
object entering or leaving shows in more than one pair before it is that small. Checking every other pair, not
only the neighbours, keeps objects that parallax's evidence shows in some pairs only (a neighbour-only check lost one
on the tuning seed of benchmarks/decouple.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from motionpipe.stages.flow_checks import region_medians

MIN_INSIDE_SHARE = 0.5  # another pair can check a region when this share of its carried pixels stays in the frame
MIN_SUPPORT_SHARE = 0.25  # share of the carried region that must meet the other pair's witnessed motion
TOLERANCE_SHARE = 0.5  # witnessed motion counts within this share of the region's radius...
DRIFT_SHARE = 0.3  # ...plus this share of the distance the region is carried
# Regions under this share of the frame that no other pair can check are dropped. benchmarks/decouple.py, seeds 0-5:
# still scenes under parallax with noise read 4.5 and 15.5 %diag/s, crf 42 5.0, from such regions at the frame's
# edge (51 and 62 px of 21888 where read); no object pair was lost (dropping all such regions lost entering objects).
MIN_UNCHECKED_SHARE = 0.005


def persistent_regions(
    objects: np.ndarray, witnesses: np.ndarray, forward: np.ndarray, intervals_s: np.ndarray, times_s: np.ndarray
) -> np.ndarray:
    """``objects[P, h, w]`` without the regions that no other pair bears out. ``witnesses[P, h, w]``: each pair's
    motion that can bear a region out (its candidate motion, or only what it confirmed); ``forward[P, h, w, 2]``:
    its flow (px over ``intervals_s[P]``); ``times_s[P]``: when each pair starts."""
    if not objects.any():  # most clips: nothing to check, and no distance maps to build
        return objects
    kept = objects.copy()
    # px from each pixel to the pair's nearest witnessed motion (none: farther than any tolerance)
    distances = [cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) for mask in witnesses]
    for pair, mask in enumerate(objects):
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        velocities = region_medians(forward[pair], labels, count) / intervals_s[pair]
        for label, velocity in enumerate(velocities[1:], start=1):
            ys, xs = np.nonzero(labels == label)
            radius = np.sqrt(len(xs) / np.pi)
            verdicts = set()
            for other in range(len(objects)):
                if other != pair:
                    shift = velocity * (times_s[other] - times_s[pair])
                    tolerance = max(1.0, TOLERANCE_SHARE * radius + DRIFT_SHARE * float(np.hypot(*shift)))
                    verdicts.add(borne_out(xs, ys, shift, distances[other], tolerance))
            unchecked_and_small = verdicts == {None} and len(xs) < MIN_UNCHECKED_SHARE * mask.size
            if (False in verdicts and True not in verdicts) or unchecked_and_small:
                kept[pair, ys, xs] = False
    return kept


def borne_out(xs: np.ndarray, ys: np.ndarray, shift: np.ndarray, distance: np.ndarray, tolerance: float) -> bool | None:
    """Whether the region's pixels, carried by ``shift`` (px), meet witnessed motion within ``tolerance`` px
    (``distance[h, w]``: px to the nearest); None when too few of them stay in the frame to tell."""
    height, width = distance.shape
    carried_x, carried_y = np.rint(xs + shift[0]).astype(int), np.rint(ys + shift[1]).astype(int)
    inside = (carried_x >= 0) & (carried_x < width) & (carried_y >= 0) & (carried_y < height)
    if inside.mean() < MIN_INSIDE_SHARE:
        return None
    return bool((distance[carried_y[inside], carried_x[inside]] <= tolerance).mean() >= MIN_SUPPORT_SHARE)
