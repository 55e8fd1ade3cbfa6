"""Known-answer tests of the motion statistics on real encoded synthetic clips (units: %diag/s)."""

import math

import numpy as np
import pytest
from conftest import clip_record, make_clip

from motionpipe.pipeline.synthetic_video import Scene, SceneObject
from motionpipe.stages.decode import DecodeConfig, DecodeStage
from motionpipe.stages.flow import PAIRS_PER_SHARED_CALL, FlowConfig, FlowStage
from motionpipe.stages.flow_checks import forward_backward_consistent, region_medians
from motionpipe.stages.measuring_size import (
    field_at_measuring_size,
    map_at_processing_size,
    mask_at_measuring_size,
    measuring_pixel,
    processing_pixel,
)
from motionpipe.stages.motion_units import MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S, speed_pct_diag_per_s

MOVING_OBJECT = SceneObject(start=(0.35, 0.5), radius=0.22, velocity=(12.0, 4.0))


@pytest.fixture(scope="module")
def stages():
    decode, flow = DecodeStage(DecodeConfig()), FlowStage(FlowConfig())
    decode.setup()
    flow.setup()
    return decode, flow


def annotate(stages, payload: bytes) -> dict:
    clip = clip_record(payload)
    for stage in stages:
        stage.process([clip])
    assert clip.ok, clip.error_detail
    return clip.fields


def test_units_are_percent_of_diagonal_per_second():
    flow = np.zeros((30, 40, 2), np.float32)
    flow[..., 0] = 5.0  # 5 px over a 50 px diagonal in 0.1 s
    np.testing.assert_allclose(speed_pct_diag_per_s(flow, 0.1), 100.0)
    assert MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S == pytest.approx(100 / math.hypot(320, 512) * 8)


@pytest.mark.parametrize("px_per_frame, direction", [(1.0, (1, 0)), (3.0, (-1, 0)), (2.0, (0, 1))])
def test_translating_texture_reads_its_speed_within_10_percent(stages, px_per_frame, direction):
    fps, width, height = 24.0, 320, 240
    expected = 100 * px_per_frame * fps / math.hypot(width, height)
    pan = (expected * direction[0], expected * direction[1])
    fields = annotate(stages, make_clip(Scene(seed=11, pan=pan), width, height, fps))
    assert fields["flow_mean"] == pytest.approx(expected, rel=0.10)
    assert fields["flow_p50"] == pytest.approx(expected, rel=0.10)
    assert fields["motion_fraction"] > 0.99
    assert not fields["static_clip"]


def test_static_clip_has_no_motion(stages):
    fields = annotate(stages, make_clip(Scene(seed=12)))
    assert fields["motion_fraction"] < 0.01
    assert fields["flow_mean"] < 0.1 * MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S
    assert fields["static_clip"]


def test_moving_object_on_a_static_background(stages):
    fields = annotate(stages, make_clip(Scene(seed=13, objects=(MOVING_OBJECT,))))
    assert fields["flow_p50"] < MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S
    assert fields["flow_max"] == pytest.approx(MOVING_OBJECT.speed, rel=0.15)
    # the mask holds the disc's path over the window: more than the disc, far less than the frame
    disc_area = math.pi * (0.22 * 240) ** 2 / (320 * 240)
    assert disc_area < fields["motion_fraction"] < 0.6


def test_same_scene_reads_the_same_at_other_resolutions_and_frame_rates(stages):
    scene = Scene(seed=14, pan=(8.0, -3.0), objects=(MOVING_OBJECT,))
    renders = {(320, 240, 24.0): None, (640, 480, 24.0): None, (320, 240, 12.0): None, (320, 240, 30.0): None}
    for width, height, fps in renders:
        renders[width, height, fps] = annotate(stages, make_clip(scene, width, height, fps))
    reference = renders[320, 240, 24.0]
    for variant, fields in renders.items():
        assert fields["flow_mean"] == pytest.approx(reference["flow_mean"], rel=0.10), variant
        assert fields["flow_p95"] == pytest.approx(reference["flow_p95"], rel=0.10), variant
        assert fields["motion_fraction"] == pytest.approx(reference["motion_fraction"], abs=0.05), variant


def test_measuring_size_check_marks_the_pixels_where_the_halved_backward_flow_disagrees():
    height, width = 9, 13  # odd: the measuring size rounds up, as cv2.pyrDown does
    forward = np.zeros((height, width, 2), np.float32)
    forward[..., 0] = 4.0  # 4 px right at processing size
    backward = np.zeros(((height + 1) // 2, (width + 1) // 2, 2), np.float32)
    backward[..., 0] = -2.0  # 2 px left at half size: it undoes the forward flow
    backward[1:3, 4, 0] = 3.0  # except in half-size rows 1-2 of column 4, which column 2 lands in
    measured = field_at_measuring_size(forward)
    assert measured.shape == backward.shape and np.all(measured[..., 0] == 2.0)
    verdict = forward_backward_consistent(measured, backward)
    expected = np.ones(backward.shape[:2], bool)
    expected[1:3, 2] = False
    np.testing.assert_array_equal(verdict, expected)
    # back at processing size each verdict covers its 2x2 block
    full = map_at_processing_size(verdict, height, width)
    assert full.shape == (height, width) and not full[2:6, 4:6].any() and full.sum() == height * width - 8
    np.testing.assert_array_equal(mask_at_measuring_size(full), verdict)
    assert measuring_pixel(np.array([4, 5])).tolist() == [2, 2] and processing_pixel(np.array([2])).tolist() == [4]


def test_pairs_are_analysed_at_the_measuring_size_against_a_backward_flow_of_halved_frames(stages):
    decode, flow = stages
    scene = Scene(seed=15, pan=(9.0, 4.0), objects=(MOVING_OBJECT,))
    clip = clip_record(make_clip(scene))
    for stage in stages:
        stage.process([clip])
    motion = clip.motion
    assert motion.pair_consistent.shape == motion.pair_forward.shape[:3] == (4, 128, 171)
    assert motion.mean_speed.shape == (128, 171) and motion.pair_consistent.dtype == bool
    first, second = clip.video.pairs[0]
    frames = clip.video.frames
    full_forward = flow._backend.flow(frames[[first]], frames[[second]])[0]
    np.testing.assert_array_equal(motion.pair_forward[0], field_at_measuring_size(full_forward))
    backward = flow._backend.flow_of_halved_frames(frames[[second]], frames[[first]])[0]
    np.testing.assert_array_equal(
        motion.pair_consistent[0], forward_backward_consistent(motion.pair_forward[0], backward)
    )
    # the check at the measuring size agrees with the one at processing size nearly everywhere: where the pan
    # uncovers the border and around the moving disc it may differ (in a pair's 1/12 s the disc moves about 3.7
    # measuring px against the background: an occlusion band of ~4% of the frame along its 180 px rim)
    full_backward = flow._backend.flow(frames[[second]], frames[[first]])[0]
    full_check = mask_at_measuring_size(forward_backward_consistent(full_forward, full_backward))
    assert (motion.pair_consistent[0] == full_check).mean() > 0.95
    assert motion.pair_consistent[0][8:-8, 8:-8].mean() > 0.9


def test_a_batch_keeps_no_more_flow_alive_than_its_clips_chains_need():
    """The chain's flows are views that live until the batch's clips are written: a clip whose chain exceeds
    a shared call's pair budget is measured alone, so its views keep its own flows alive, not the batch's."""
    decode, flow = DecodeStage(DecodeConfig(), keep_chain=True), FlowStage(FlowConfig())
    decode.setup()
    flow.setup()
    clips = [clip_record(make_clip(Scene(seed=seed, pan=(6.0, -3.0)))) for seed in (21, 22)]
    decode.process(clips)
    flow.process(clips)
    for clip in clips:
        motion, frames, chain = clip.motion, clip.video.frames, clip.video.chain
        full = FlowStage._full_size(clip.video)
        assert clip.ok and len(motion.chain_forward) == len(chain) - 1 and len(full) > PAIRS_PER_SHARED_CALL
        assert motion.chain_forward.base is motion.chain_backward.base and len(motion.chain_forward.base) == len(full)
        first, second = chain[0], chain[1]
        np.testing.assert_array_equal(motion.chain_forward[0], flow._backend.flow(frames[[first]], frames[[second]])[0])
        np.testing.assert_array_equal(
            motion.chain_backward[0], flow._backend.flow(frames[[second]], frames[[first]])[0]
        )


def test_flow_config_is_validated():
    with pytest.raises(ValueError, match="dis_preset"):
        FlowConfig(dis_preset="turbo")
    with pytest.raises(ValueError, match="backend"):
        FlowConfig(backend="raft_huge")
    with pytest.raises(ValueError, match="device"):
        FlowConfig(device="tpu")


def test_region_medians_are_each_components_own_median_per_channel():
    labels = np.zeros((6, 8), np.int32)
    labels[:3, :3], labels[4:, 5:] = 1, 2
    field = np.zeros((6, 8, 2), np.float32)
    field[:3, :3] = [[[1, -1]], [[2, -5]], [[9, 0]]]  # rows of region 1: x medians 2, y medians -1
    field[4:, 5:, 0], field[4:, 5:, 1] = np.arange(6).reshape(2, 3), 7
    field[labels == 0] = 100  # the background does not count
    medians = region_medians(field, labels, 3)
    assert medians.dtype == np.float32
    assert medians.tolist() == [[0, 0], [2, -1], [2.5, 7]]
