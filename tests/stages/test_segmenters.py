"""Object masks: the built-in motion-region segmenter, and SAM2's real code on CPU with random weights."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import disc_mask, make_clip, ready_stages, run_stages

from motionpipe.pipeline.synthetic_video import Scene, SceneObject
from motionpipe.stages.decouple import DecoupleConfig
from motionpipe.stages.flow_backends import MissingWeightsError
from motionpipe.stages.segmenters import MotionRegionSegmenter, Sam2Segmenter, moving_regions

OBJECT = SceneObject(start=(0.4, 0.5), radius=0.22, velocity=(10.0, 3.0))
SCENE = Scene(seed=61, pan=(5.0, 0.0), objects=(OBJECT,))
needs_sam2 = pytest.mark.skipif(
    importlib.util.find_spec("sam2") is None, reason="sam2 not installed (pip install -e '.[sam2]')"
)


def residual_disc(speed: float = 9.0) -> np.ndarray:
    residual = np.random.default_rng(0).uniform(0, 0.8, (128, 160)).astype(np.float32)
    ys, xs = np.mgrid[0:128, 0:160]
    residual[np.hypot(xs - 60, ys - 70) < 25] = speed
    residual[5, 150] = 50.0  # a single-pixel outlier is noise, not an object
    return residual


def test_motion_regions_find_the_moving_disc_and_drop_specks():
    mask = moving_regions(residual_disc(), threshold=2.0, min_area=0.002)
    ys, xs = np.mgrid[0:128, 0:160]
    disc = np.hypot(xs - 60, ys - 70) < 25
    assert (mask & disc).sum() / disc.sum() > 0.95 and not (mask & ~disc).any()
    segmenter = MotionRegionSegmenter(0.002)
    residuals = np.stack([residual_disc(), residual_disc(0.5)])
    masks = segmenter.object_masks(None, residuals, np.ones(residuals.shape, bool), np.array([2.0, 2.0]))
    assert masks.sum(axis=(1, 2))[1] == 0
    # a pair whose noise floor is higher than the disc's speed finds nothing there
    assert not segmenter.object_masks(None, residuals, np.ones(residuals.shape, bool), np.array([50.0, 2.0])).any()


def test_sam2_without_a_checkpoint_is_a_clear_error():
    with pytest.raises(MissingWeightsError, match="--sam2-checkpoint"):
        DecoupleConfig(segmenter="sam2").check_weights()
    with pytest.raises(MissingWeightsError, match="does not exist"):
        Sam2Segmenter(0.002, "configs/sam2.1/sam2.1_hiera_t.yaml", "/nonexistent/sam2.pt")


@needs_sam2
def test_sam2_real_code_on_cpu_with_random_weights_prompted_on_the_moving_object():
    stages = ready_stages(
        "conditions.include=none",
        "decode.max_frames=4",
        "decode.short_side=128",
        "decouple.segmenter=sam2",
        "decouple.allow_random_weights=true",
        "decouple.sam2_image_size=256",
    )
    clip = run_stages(stages, make_clip(SCENE))
    assert clip.fields["segment_backend"] == "sam2:sam2.1_hiera_t+random-weights"
    decouple = next(stage for stage in stages if stage.name == "decouple")
    width, height = clip.video.size
    measuring_height, measuring_width = clip.motion.pair_consistent.shape[1:]
    # prompts: where camera-compensated motion is high, which is on the disc
    from motionpipe.stages.camera_model import camera_flow, fit_camera
    from motionpipe.stages.motion_units import speed_pct_diag_per_s

    consistent = clip.motion.pair_consistent[0]
    fit = fit_camera(clip.motion.pair_forward[0], consistent)
    induced = camera_flow(fit.homography, measuring_width, measuring_height)
    residual = speed_pct_diag_per_s(clip.motion.pair_forward[0] - induced, clip.video.interval_s(*clip.video.pairs[0]))
    points = decouple.segmenter.prompts(residual, consistent, 2.0)
    assert len(points) >= 2
    disc = disc_mask(SCENE, OBJECT, 0.0, width, height)
    assert disc[points[:, 1].astype(int), points[:, 0].astype(int)].all()
    pairs = len(clip.video.pairs)
    masks = decouple.segmenter.object_masks(
        clip.video, np.stack([residual] * pairs), np.stack([consistent] * pairs), np.full(pairs, 2.0)
    )
    assert masks.shape == (len(clip.video.pairs), measuring_height, measuring_width) and masks.dtype == bool
