"""Chained dense tracks f(0->i) and their visibility, against analytic motion."""

from __future__ import annotations

import cv2
import numpy as np

from motionpipe.pipeline.synthetic_video import noise_texture
from motionpipe.stages.dense_tracks import chain_tracks
from motionpipe.stages.flow_backends import DisFlow

HEIGHT, WIDTH, STEPS, BORDER = 240, 320, 8, 32


def chained(frames: np.ndarray):
    forward, backward = DisFlow("medium").flow_both_ways(frames[:-1], frames[1:])
    return chain_tracks(forward, backward, record_after=list(range(len(frames) - 1)))


def test_chained_field_over_8_frames_stays_within_a_pixel_of_the_analytic_one():
    texture = noise_texture(np.random.default_rng(5), WIDTH, HEIGHT)
    step = np.vstack([cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 0.6, 1.0), [0, 0, 1]])
    step[:2, 2] += (1.3, -0.8)
    transforms = [np.linalg.matrix_power(step, k) for k in range(STEPS + 1)]
    frames = np.stack(
        [
            cv2.warpAffine(texture, m[:2], (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            for m in transforms
        ]
    )
    tracks = chained(frames)
    assert tracks.displacement.shape == (STEPS + 1, HEIGHT, WIDTH, 2)
    assert tracks.visibility.shape == (STEPS + 1, HEIGHT, WIDTH) and tracks.visibility[0].all()
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
    truth = (points @ transforms[STEPS].T)[..., :2] - points[..., :2]
    inside = np.zeros((HEIGHT, WIDTH), bool)
    inside[BORDER:-BORDER, BORDER:-BORDER] = True
    inside &= np.all((points @ transforms[STEPS].T)[..., :2] > BORDER, axis=-1)
    inside &= ((points @ transforms[STEPS].T)[..., 0] < WIDTH - BORDER) & (
        (points @ transforms[STEPS].T)[..., 1] < HEIGHT - BORDER
    )
    error = np.linalg.norm(tracks.displacement[STEPS] - truth, axis=-1)[inside]
    assert np.percentile(error, 95) < 1.0, np.percentile(error, 95)
    assert tracks.visibility[STEPS][inside].mean() > 0.95


def test_an_occluding_object_hides_the_background_it_covers():
    rng = np.random.default_rng(6)
    background = noise_texture(rng, WIDTH, HEIGHT)
    patch = noise_texture(rng, 60, 60)
    frames = []
    for k in range(STEPS + 1):
        frame = background.copy()
        left = 40 + 6 * k
        frame[90:150, left : left + 60] = patch
        frames.append(frame)
    tracks = chained(np.stack(frames))
    visible = tracks.visibility[STEPS]
    newly_covered = visible[95:145, 104:146]  # under the patch at the end, background at the start
    assert newly_covered.mean() < 0.1
    assert visible[20:220, 200:300].mean() > 0.95  # background the patch never reaches
    carried = tracks.displacement[STEPS][100:140, 50:90]  # inside the patch at the start
    np.testing.assert_allclose(np.median(carried.reshape(-1, 2), axis=0), (48, 0), atol=1.0)
    assert visible[100:140, 50:90].mean() > 0.9
