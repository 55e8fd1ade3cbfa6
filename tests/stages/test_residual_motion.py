"""Object evidence on real encoded clips degraded as real video is: noise, fast pans (units: %diag/s)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import ready_stages, run_stages

from motionpipe.pipeline.sample_data import SampleSpec, ground_truth
from motionpipe.pipeline.synthetic_video import DepthLayer, Scene, SceneObject, render_scene
from motionpipe.pipeline.video_encoding import encode_video
from motionpipe.stages.residual_motion import (
    CONFIRM_REFERENCE_PX,
    MIN_PARALLAX_SPREAD,
    PARALLAX_SPILL,
    along_and_across,
    coherent_lengths,
    confirm_ratio_at,
    confirmed_regions,
    farthest_level,
    hypothesis_parts,
    lands_inside,
    matched_unlike_camera,
    nearer_way,
    object_evidence,
    parallax_field,
    parallax_spread,
    photometric_errors,
    pixels_matched_better,
    region_box,
    regions_matched_better,
    unit,
)

STILL_OBJECT_MOTION = 0.5  # issue 22: a still scene reads below this under any camera motion


def noisy_clip(scene: Scene, sigma: float = 6.0, fps: float = 24.0) -> bytes:
    """A clip with new Gaussian sensor noise every frame (8-bit levels), as a dim camera records it."""
    frames = render_scene(scene, 320, 240, fps, round(2.5 * fps)).astype(np.float32)
    frames += np.random.default_rng(scene.seed).normal(0, sigma, frames.shape).astype(np.float32)
    return encode_video(np.clip(frames + 0.5, 0, 255).astype(np.uint8), fps)


@pytest.fixture(scope="module")
def stages():
    return ready_stages("conditions.include=none")


@pytest.mark.parametrize("pan, zoom", [((0.0, 0.0), 0.0), ((-35.0, 0.0), 0.0), ((0.0, 0.0), 0.3)])
def test_noisy_still_scene_reads_no_object_motion(stages, pan, zoom):
    # before issue 22 these read 2.3-5.3 %diag/s: blobs of flow noise and the frame's edges
    fields = run_stages(stages, noisy_clip(Scene(seed=51, pan=pan, zoom_rate=zoom))).fields
    assert fields["object_motion"] < STILL_OBJECT_MOTION


def test_fast_object_under_noise_reads_its_speed(stages):
    # before: 3.1 against 17.5 true (noise blobs outnumbered the object's pixels)
    scene = Scene(seed=52, pan=(8.0, 0.0), objects=(SceneObject((0.4, 0.5), 0.18, (16.0, 4.0)),))
    fields = run_stages(stages, noisy_clip(scene)).fields
    assert fields["object_motion"] == pytest.approx(ground_truth(scene, SampleSpec())["object_motion"], rel=0.15)


def test_residual_averaged_over_a_window_keeps_an_object_s_and_shrinks_noise_s():
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 2 * np.pi, (1, 128, 160))
    residual = np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)  # 1 px every way
    ys, xs = np.mgrid[:128, :160]
    disc = (xs - 80) ** 2 + (ys - 64) ** 2 < 20**2
    residual[0][disc] = (0.6, 0.8)  # an object: 1 px one way
    reliable = np.ones((1, 128, 160), bool)
    reliable[0, :, :40] = False  # unreliable pixels count for nothing, their own lengths included
    residual[0, :, :40] = 50.0
    lengths = coherent_lengths(residual, reliable)[0]
    inner = (xs - 80) ** 2 + (ys - 64) ** 2 < 14**2  # whose 9 px window (corners 5.7 px off) lies in the disc
    assert lengths[inner] == pytest.approx(1.0, abs=1e-5)
    assert np.median(lengths[~disc & reliable[0]]) < 0.2  # about 1 / 9, the square root of the window's area
    assert lengths[:, 44:].max() <= 1.0 + 1e-5  # the unreliable pixels' 50 px reach none of them


def test_pixels_whose_flow_leaves_the_frame_are_not_trusted():
    forward = np.zeros((1, 20, 30, 2), np.float32)
    forward[..., 0] = 5.0  # everything moves 5 px right
    inside = lands_inside(forward, edge_px=2)[0]
    assert inside[10, 2:23].all() and not inside[10, 23:].any() and not inside[10, :2].any()
    assert not inside[:2].any() and not inside[-2:].any()


def test_a_region_counts_only_where_the_flow_matches_better_than_the_camera():
    mask = np.zeros((20, 30), bool)
    mask[2:8, 2:8] = mask[12:18, 12:18] = True
    camera_error = np.ones((20, 30), np.float32)
    flow_error = np.ones((20, 30), np.float32)
    flow_error[2:8, 2:8] = 0.2  # the flow explains this region's pixels: it moves
    kept = confirmed_regions(mask, camera_error, flow_error, 2.0)
    assert kept[2:8, 2:8].all() and not kept[12:18, 12:18].any()


@pytest.mark.parametrize("seed", range(4))
def test_regions_are_matched_over_their_box_exactly_as_over_the_whole_frame(seed):
    # the box saves work only: errors averaged over it are, at the regions' pixels, the whole frame's
    rng = np.random.default_rng(seed)
    height, width = 64, 96
    first, second = (rng.uniform(0, 255, (height, width)).astype(np.float32) for _ in range(2))
    still, moving = (rng.normal(0, 3, (height, width, 2)).astype(np.float32) for _ in range(2))
    mask = np.zeros((height, width), bool)
    mask[rng.integers(0, 8) : 20, 30:44] = True  # near the top edge, where the box meets the frame's
    mask[40:52, rng.integers(80, 90) :] = True  # at the right edge
    box = region_box(mask)
    whole_errors = photometric_errors(first, second, still, moving)
    for whole, boxed in zip(whole_errors, photometric_errors(first, second, still[box], moving[box], box), strict=True):
        np.testing.assert_allclose(boxed[mask[box]], whole[mask], rtol=1e-5)
    for ratio in (0.95, 1.0, 1.05):
        whole = confirmed_regions(mask, *whole_errors, ratio)
        assert (regions_matched_better(mask, (first, second), still[box], moving[box], ratio, box) == whole).all()
    assert box[1] == slice(28, width)  # two px of the 5 px window's reach beyond the regions


def test_object_pixels_count_where_the_frames_bear_their_motion_out():
    # a textured disc moves 3 px right over textured still background; the mask also takes in a ring of background
    # 6 px wide around it, moving 1.5 px as smoothed flow would have it: the ring goes, the disc stays
    rng = np.random.default_rng(5)
    height, width = 64, 96
    ys, xs = np.mgrid[:height, :width]
    background = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 1.0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 1.0)
    disc = np.hypot(xs - 40, ys - 32) < 12
    moved_disc = np.hypot(xs - 43, ys - 32) < 12
    first = np.where(disc, texture, background)
    second = np.where(moved_disc, np.roll(texture, 3, axis=1), background)
    ring = (np.hypot(xs - 40, ys - 32) < 18) & ~disc
    moving = np.zeros((height, width, 2), np.float32)
    moving[disc, 0], moving[ring, 0] = 3.0, 1.5
    kept = pixels_matched_better(disc | ring, (first, second), np.zeros_like(moving), moving)
    inner = np.hypot(xs - 40, ys - 32) < 9  # out of the 5 px window's reach of the ring
    outer = np.hypot(xs - 40, ys - 32) >= 15
    assert kept[inner].all() and not kept[outer & ring].any()
    # frames that bear nothing out (no texture) leave the mask whole
    flat = np.full((height, width), 128, np.float32)
    assert (pixels_matched_better(disc | ring, (flat, flat), np.zeros_like(moving), moving) == (disc | ring)).all()


def test_only_motion_the_frames_bear_out_is_matched_unlike_the_camera():
    # the left half (nearer scenery) moves 3 px right, the right half stays; the flow says so on the left and is
    # 1 px of error turning every way on the right, as compression's is: only the left is matched unlike the camera
    rng = np.random.default_rng(7)
    height, width = 48, 96
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (height, width + 8)).astype(np.float32), (0, 0), 1.0)
    first = texture[:, 4 : width + 4]
    second = np.hstack([texture[:, 1 : width // 2 + 1], first[:, width // 2 :]])
    forward = np.zeros((height, width, 2), np.float32)
    forward[:, : width // 2, 0] = 3.0
    angles = rng.uniform(0, 2 * np.pi, (height, width // 2))
    forward[:, width // 2 :] = np.dstack([np.cos(angles), np.sin(angles)])
    matched = matched_unlike_camera((first, second), np.zeros_like(forward), forward)
    assert matched[4:-4, 4 : width // 2 - 4].mean() > 0.95
    assert matched[4:-4, width // 2 + 4 : -4].mean() < 0.05


def test_the_confirmation_ratio_shrinks_toward_1_on_smaller_frames():
    assert confirm_ratio_at(2.0, CONFIRM_REFERENCE_PX) == 2.0
    assert confirm_ratio_at(2.0, 4 * CONFIRM_REFERENCE_PX) == 2.0  # never stricter than asked
    assert confirm_ratio_at(2.0, 48) == pytest.approx(1.375)  # 96 px processing frames
    assert confirm_ratio_at(1.0, 48) == 1.0


def away_from(epipole: tuple[float, float]) -> np.ndarray:
    """``float32[40, 60, 2]``: unit vectors from ``epipole`` to each pixel of a 60 x 40 frame."""
    away = np.dstack(np.meshgrid(np.arange(60.0), np.arange(40.0))) - np.array(epipole)
    return (away / np.linalg.norm(away, axis=2, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("epipole", [(25.0, -30.0), (90.0, 20.0)])
def test_the_epipole_is_found_from_the_residuals_lines(epipole):
    # plane + parallax of a still scene: residuals on the lines from the epipole, 0.5-2 px as depths vary,
    # a fifth of the pixels moving anywhere (objects, flow error)
    rng = np.random.default_rng(3)
    residual = away_from(epipole) * rng.uniform(0.5, 2.0, (40, 60, 1)).astype(np.float32)
    stray = rng.random((40, 60)) < 0.2
    residual[stray] = rng.normal(0, 1.5, (int(stray.sum()), 2))
    directions = unit(parallax_field(residual, np.zeros_like(residual), np.ones((40, 60), bool), rng))
    assert np.median(np.sum(directions * away_from(epipole), axis=2)) > 0.99  # the lines, the scenery's way


def test_an_epipole_at_infinity_gives_parallel_lines():
    # a camera translating sideways: nearer scenery all moves one way, by more the nearer it is
    rng = np.random.default_rng(5)
    residual = np.zeros((40, 60, 2), np.float32)
    residual[...] = np.array([-0.6, 0.8], np.float32)
    residual *= rng.uniform(0.5, 2.0, (40, 60, 1)).astype(np.float32)
    directions = unit(parallax_field(residual, np.zeros_like(residual), np.ones((40, 60), bool), rng))
    assert np.allclose(directions, [-0.6, 0.8], atol=0.01)


def test_a_compact_object_is_not_spread_like_parallax():
    ys, xs = np.mgrid[:64, :64]
    disc = (xs - 20) ** 2 + (ys - 24) ** 2 < 12**2  # a moving object of 11% of the frame
    scattered = np.random.default_rng(6).random((64, 64)) < 0.11  # nearer scenery all over it
    assert parallax_spread(disc[None]) < MIN_PARALLAX_SPREAD < parallax_spread(scattered[None])


def test_only_residual_across_the_epipolar_lines_is_object_evidence():
    along = np.array([2.0, -2.0, 0.0, 2.0])
    across = np.array([0.0, 0.0, 1.5, 1.5])
    assert object_evidence(along, across) == pytest.approx([0.0, 0.0, 1.5, 1.5 - PARALLAX_SPILL * 2.0])


def layered_scene(pan: tuple[float, float], objects: tuple = ()) -> Scene:
    """Still scenery at three depths (a background plane, layers at 0.7 and 0.4 of its depth) seen by a camera
    translating by ``pan`` %diag/s at the plane's depth."""
    return Scene(seed=62, pan=pan, objects=objects, layers=(DepthLayer(0.7, 0.25), DepthLayer(0.4, 0.15)))


def test_a_still_layered_scene_under_a_translating_camera_reads_no_object_motion(stages):
    # before (the parallax rule along the camera's flow): 2.2 %diag/s
    clip = encode_video(render_scene(layered_scene((7.0, 7.0)), 320, 240, 24.0, 60), 24.0)
    fields = run_stages(stages, clip).fields
    assert fields["object_motion"] < STILL_OBJECT_MOTION and fields["camera_parallax"] is True


def test_an_object_crossing_the_epipolar_lines_reads_its_speed_under_parallax(stages):
    # before: 10.2 against 14.6 true (the object's region merged with layers' edges moving the other way)
    scene = layered_scene((7.0, 7.0), (SceneObject((0.5, 0.3), 0.15, (4.0, 14.0)),))
    fields = run_stages(stages, encode_video(render_scene(scene, 320, 240, 24.0, 60), 24.0)).fields
    assert fields["object_motion"] == pytest.approx(ground_truth(scene, SampleSpec())["object_motion"], rel=0.15)


@pytest.mark.parametrize("pan, velocity", [((0.0, 8.0), (0.0, 9.0)), ((-9.0, 0.0), (-12.0, 0.0))])
def test_a_camera_tracking_an_object_past_layered_scenery_reads_the_object_s_speed(stages, pan, velocity):
    # the object heads the way the camera moves, along the epipolar lines, farther than the farthest surface would
    # be: before, 0 (both ways along the lines were taken for parallax)
    scene = layered_scene(pan, (SceneObject((0.5, 0.5), 0.15, velocity),))
    fields = run_stages(stages, encode_video(render_scene(scene, 320, 240, 24.0, 60), 24.0)).fields
    assert fields["camera_parallax"] is True
    assert fields["object_motion"] == pytest.approx(ground_truth(scene, SampleSpec())["object_motion"], rel=0.15)


def test_a_still_scene_whose_largest_surface_is_a_nearer_layer_reads_no_object_motion(stages):
    # the fitted plane is the middle layer: the background moves back along the lines, and is the farthest surface
    scene = Scene(seed=64, pan=(12.0, 0.0), layers=(DepthLayer(0.65, 0.45), DepthLayer(0.4, 0.2)))
    fields = run_stages(stages, encode_video(render_scene(scene, 320, 240, 24.0, 60), 24.0)).fields
    assert fields["object_motion"] < STILL_OBJECT_MOTION and fields["camera_parallax"] is True


def test_the_farthest_level_is_the_background_s_not_a_large_object_s():
    # parallax per unit distance, the near way positive: background at -1 that flow smoothing spreads upwards, nearer
    # layers over 40% of the frame, and a tracking shot's subject over a ninth of it at -2.5, farther than anything
    rng = np.random.default_rng(8)
    ys, xs = np.mgrid[:64, :80]
    background = -1.0 + np.abs(rng.normal(0, 0.15, (64, 80)))
    per_unit = np.where(rng.random((64, 80)) < 0.4, rng.uniform(0.2, 2.0, (64, 80)), background)
    subject = (np.abs(xs - 30) < 10) & (np.abs(ys - 32) < 16)
    per_unit[subject] = -2.5
    level = farthest_level(per_unit.astype(np.float32), np.ones((64, 80), bool))
    assert subject.mean() > 0.11 and -1.0 <= level < -0.9
    # the fitted plane is the farthest surface: nothing lies beyond it
    assert farthest_level(np.abs(per_unit).astype(np.float32), np.ones((64, 80), bool)) == 0


def test_the_nearer_way_is_the_way_the_camera_s_flow_goes():
    directions = np.zeros((2, 4, 4, 2), np.float32)
    directions[..., 0] = 1.0
    camera = np.zeros_like(directions)
    camera[0, ..., 0], camera[1, ..., 0] = 3.0, -3.0
    assert nearer_way(directions, camera).tolist() == [1.0, -1.0]


def test_hypothesis_parts_are_the_parts_along_and_across_each_epipole_s_line_times_its_distance():
    rng = np.random.default_rng(0)
    vectors, points = rng.normal(size=(50, 2)), rng.uniform(-1, 1, (50, 2))
    epipoles = np.vstack([rng.normal(size=(6, 3)), [[1.0, 0.5, 0.0]]])  # the last at infinity
    along, across = hypothesis_parts(vectors, points, epipoles)
    for epipole, along_e, across_e in zip(epipoles, along, across, strict=True):
        towards = epipole[:2] - epipole[2] * points
        expected = along_and_across(vectors, unit(towards))
        distance = np.hypot(*towards.T)
        np.testing.assert_allclose(along_e, expected[0] * distance, atol=1e-9)
        np.testing.assert_allclose(across_e, expected[1] * distance, atol=1e-9)
