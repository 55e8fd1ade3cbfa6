"""Known answers for the long-baseline check (stages/temporal_support.py) on textured frames with known motion."""

import cv2
import numpy as np
import pytest

from motionpipe.stages.temporal_support import PairFlows, still_moving, support_frame

HEIGHT, WIDTH, MARGIN = 96, 128, 80
SCALE = 3.0  # the later frame is three pair intervals on (1/4 s after a pair 1/12 s long)
CENTRE, RADIUS = (64, 48), 10


def texture(seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (HEIGHT + 2 * MARGIN, WIDTH + 2 * MARGIN)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


BACKGROUND, OBJECT = texture(0), texture(1)
DISC = (np.mgrid[:HEIGHT, :WIDTH][1] - CENTRE[0]) ** 2 + (np.mgrid[:HEIGHT, :WIDTH][0] - CENTRE[1]) ** 2 <= RADIUS**2


def frame(pan_px: float, object_at: tuple[float, float] | None = None) -> np.ndarray:
    """The background seen by a camera panned ``pan_px`` to the right (the scene moves left), with the object's
    textured disc centred at ``object_at``."""
    shown = BACKGROUND[MARGIN : MARGIN + HEIGHT, MARGIN + int(pan_px) : MARGIN + int(pan_px) + WIDTH].copy()
    if object_at is not None:
        dx, dy = int(object_at[0] - CENTRE[0]), int(object_at[1] - CENTRE[1])
        moved = np.roll(DISC, (dy, dx), axis=(0, 1))
        shown[moved] = OBJECT[MARGIN : MARGIN + HEIGHT, MARGIN : MARGIN + WIDTH][DISC]
    return np.rint(shown)


def check(pan_per_pair: float, velocity_per_pair: tuple[float, float], later: np.ndarray) -> bool:
    """Whether the disc region, seen moving ``velocity_per_pair`` px against a camera panning ``pan_per_pair`` px a
    pair, is kept when the frame ``SCALE`` pairs on is ``later``."""
    camera = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    camera[..., 0] = -pan_per_pair
    forward = camera.copy()
    forward[DISC] += velocity_per_pair
    kept = still_moving(DISC, frame(0, CENTRE), later, PairFlows(forward, camera, camera), SCALE)
    assert not kept[~DISC].any()
    return bool(kept[DISC].all())


@pytest.mark.parametrize("pan", [0.0, 2.0, 12.0])  # 12 px a pair: a fast pan, 36 px over the baseline
def test_an_object_that_keeps_moving_is_kept(pan):
    velocity = (3.0, 1.0)
    later = frame(SCALE * pan, (CENTRE[0] + SCALE * velocity[0] - SCALE * pan, CENTRE[1] + SCALE * velocity[1]))
    assert check(pan, velocity, later)


@pytest.mark.parametrize("pan", [0.0, 2.0, 12.0])
def test_still_scenery_seen_moving_in_one_pair_is_dropped(pan):
    # an encoder moved a patch of still background in the pair; a quarter second on it is where the camera puts it
    assert not check(pan, (3.0, 1.0), frame(SCALE * pan))


def test_when_the_camera_speeds_up_the_corrected_guess_still_tells_objects_from_still_scenery():
    # the pan goes from 2 px a pair to 4 over the baseline: 6 px more than the pair's camera, scaled, says. A still
    # patch seen moving 2 px a pair with the camera's change of speed, (6, 0) over the baseline, would pass the
    # uncorrected guess; the correction fitted to the background drops it, and keeps an object that moves on
    pan, faster = 2.0, SCALE * 2.0 + 6.0
    assert not check(pan, (2.0, 0.0), frame(faster))
    velocity = (0.0, 3.0)
    assert check(pan, velocity, frame(faster, (CENTRE[0] - faster, CENTRE[1] + SCALE * velocity[1])))


def test_under_parallax_the_still_scene_moves_nearer_scenery_along_the_lines():
    # the disc is nearer scenery that parallax moves 2 px a pair against the pan's 2 (4 in all), while it also moves
    # 2 px a pair across the epipolar lines (an object there): a quarter second on, it is where both carry it
    pan, parallax, across = 2.0, 2.0, (0.0, 2.0)
    camera = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    camera[..., 0] = -pan
    still = camera.copy()
    still[DISC, 0] -= parallax
    forward = still.copy()
    forward[DISC] += across
    at = (CENTRE[0] - SCALE * (pan + parallax), CENTRE[1] + SCALE * across[1])
    later = frame(SCALE * pan, at)
    assert still_moving(DISC, frame(0, CENTRE), later, PairFlows(forward, camera, still), SCALE)[DISC].all()
    # nearer scenery with a little flow error across the lines, a quarter second on where parallax carries it: the
    # still scene's flow explains it (the camera's alone would not, and the region would pass for an object)
    noisy = still.copy()
    noisy[DISC, 1] += 0.5
    where_parallax_carries = frame(SCALE * pan, (CENTRE[0] - SCALE * (pan + parallax), CENTRE[1]))
    flows = PairFlows(noisy, camera, still)
    assert not still_moving(DISC, frame(0, CENTRE), where_parallax_carries, flows, SCALE).any()
    assert still_moving(DISC, frame(0, CENTRE), where_parallax_carries, PairFlows(noisy, camera, camera), SCALE)[
        DISC
    ].all()


def test_an_object_that_stopped_is_dropped_like_still_scenery():
    # the price of the check, stated: motion that does not last to the later frame is not counted
    assert not check(2.0, (3.0, 1.0), frame(SCALE * 2.0, (CENTRE[0] - SCALE * 2.0, CENTRE[1])))


def test_the_later_frame_is_the_first_a_quarter_second_on_or_one_before_near_the_end():
    times = np.array([0.0, 1 / 12, 0.125, 0.25, 0.3, 0.375, 0.5])
    assert support_frame(times, 0) == 3
    assert support_frame(times, 1) == 5  # 1/12 + 0.25 = 0.333: the first frame at or after it
    assert support_frame(times, 6) == 3  # nothing after 0.5 s: 0.25 s before
    assert support_frame(np.array([0.0, 1 / 12]), 0) == -1
