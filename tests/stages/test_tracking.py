"""Trackers behind one interface, and the track-based (MotionStone) pseudo-labels."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest
from conftest import SLOW_AND_FAST, make_clip, ready_stages, run_stages

from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.sample_data import SampleSpec, ground_truth
from motionpipe.pipeline.shard_runner import build_annotation_stages
from motionpipe.pipeline.synthetic_video import Scene, SceneObject
from motionpipe.stages.flow_backends import MissingWeightsError
from motionpipe.stages.measuring_size import measuring_pixel
from motionpipe.stages.trackers import CoTracker, FlowChainTracker, object_and_background_queries

PAN = (10.0, -4.0)  # %diag/s
OBJECT = SceneObject(start=(0.35, 0.5), radius=0.2, velocity=(10.0, 3.0))
COTRACKER_CHECKPOINT = os.environ.get("MOTIONPIPE_COTRACKER_CHECKPOINT", "")
COTRACKER_REPO = os.environ.get("MOTIONPIPE_COTRACKER_REPO", "")
SAM2_CHECKPOINT = os.environ.get("MOTIONPIPE_SAM2_CHECKPOINT", "")
needs_sam2 = pytest.mark.skipif(importlib.util.find_spec("sam2") is None, reason="sam2 not installed")


def annotated(scene: Scene, *overrides: str):
    return run_stages(ready_stages("conditions.include=none", *overrides), make_clip(scene))


def available_trackers():
    yield pytest.param(FlowChainTracker(), id="flow_chain")
    if COTRACKER_CHECKPOINT:
        yield pytest.param(CoTracker(COTRACKER_CHECKPOINT, COTRACKER_REPO), id="cotracker")
    else:
        yield pytest.param(
            None,
            id="cotracker",
            marks=pytest.mark.skip(reason="set MOTIONPIPE_COTRACKER_CHECKPOINT (and _REPO) to test"),
        )


@pytest.fixture(scope="module")
def panned_clip():
    return annotated(Scene(seed=71, pan=PAN), "tracking.tracker=flow_chain")


@pytest.mark.parametrize("tracker", list(available_trackers()))
def test_tracker_interface_on_a_pan(tracker, panned_clip):
    tracker.setup("cpu")
    width, height = panned_clip.video.size
    queries, _ = object_and_background_queries(np.zeros((height // 2, width // 2), bool), 8, 1)
    tracks = tracker.track(panned_clip, queries)
    samples = len(panned_clip.video.samples)
    assert tracks.positions.shape == (64, samples, 2) and tracks.positions.dtype == np.float32
    assert tracks.visibility.shape == (64, samples) and tracks.visibility.dtype == bool
    np.testing.assert_allclose(tracks.positions[:, 0], queries, atol=0.5)
    elapsed = panned_clip.video.interval_s(panned_clip.video.samples[0], panned_clip.video.samples[-1])
    expected = -np.array(PAN) / 100 * math.hypot(width, height) * elapsed  # content moves against the camera
    visible = tracks.visibility[:, -1]
    assert visible.mean() > 0.5
    np.testing.assert_allclose(np.median(tracks.positions[visible, -1] - queries[visible], axis=0), expected, atol=1.0)


def test_cotracker_without_weights_or_package_is_a_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="checkpoint"):
        CoTracker("")
    checkpoint = tmp_path / "cotracker.pth"
    checkpoint.write_bytes(b"")
    if not COTRACKER_REPO:
        with pytest.raises(MissingWeightsError, match="not on PyPI"):
            CoTracker(str(checkpoint))


def test_track_pseudo_labels_on_a_still_camera_with_an_object():
    scene = Scene(seed=72, objects=(OBJECT,))
    fields = annotated(scene, "tracking.tracker=flow_chain").fields
    truth = ground_truth(scene, SampleSpec())
    assert fields["tracker_backend"] == "flow_chain" and fields["object_tracks"] > 10
    assert fields["camera_track_motion"] < 0.3
    assert fields["object_track_motion"] == pytest.approx(truth["object_motion"], rel=0.15)


def test_track_pseudo_labels_on_a_pan_with_an_object():
    scene = Scene(seed=73, pan=(-10.0, 0.0), objects=(OBJECT,))
    fields = annotated(scene, "tracking.tracker=flow_chain").fields
    truth = ground_truth(scene, SampleSpec())
    assert fields["camera_track_motion"] == pytest.approx(truth["camera_motion"], rel=0.1)
    assert fields["object_track_motion"] == pytest.approx(truth["object_motion"], rel=0.2)


@pytest.mark.parametrize("arrangement", SLOW_AND_FAST)
def test_track_pseudo_labels_of_a_slow_and_a_fast_object_read_their_mean_speed(arrangement):
    """As object_motion: the median over every object track's steps read 16.4-16.8 %diag/s for means of 11.0-12.2,
    and 5.9 or 14.5 with the slow one larger as the texture changed; each region's median, weighted, within 4%."""
    scene = Scene(seed=1411826650, objects=SLOW_AND_FAST[arrangement])
    fields = annotated(scene, "tracking.tracker=flow_chain").fields
    truth = ground_truth(scene, SampleSpec())
    assert fields["object_track_motion"] == pytest.approx(truth["object_motion"], rel=0.08)


def test_auto_tracker_runs_only_when_dense_tracks_are_built_anyway():
    names = [stage.name for stage in build_annotation_stages(build_config(overrides=["conditions.include=none"]))]
    assert "tracking" not in names and "tracks" not in names
    names = [stage.name for stage in build_annotation_stages(build_config(overrides=["conditions.include=all"]))]
    assert names[-2:] == ["tracking", "conditions"] and "tracks" in names


def test_query_points_spread_inside_the_object_masks_and_over_the_background():
    mask = disc_around_30_25(12)  # an object of 9% of a 160 x 120 frame (measuring size 80 x 60)
    queries, is_object = object_and_background_queries(mask, 16, 64)
    at = measuring_pixel(queries.astype(int))
    assert is_object.sum() == 64 and (~is_object).sum() == 256  # a 16 x 16 grid would put about 23 on the object
    distance = np.hypot(at[:, 0] - 30, at[:, 1] - 25)  # off the mask's edge, both ways
    assert distance[is_object].max() < 12 - 1 and distance[~is_object].min() > 12 + 1
    background = at[~is_object]
    assert np.ptp(background[:, 0]) > 70 and np.ptp(background[:, 1]) > 50  # over the whole frame
    # a mask over nearly all the frame (random SAM2 weights make such) still leaves background points
    queries, is_object = object_and_background_queries(disc_around_30_25(40), 16, 64)
    assert is_object.sum() == 64 and (~is_object).sum() > 100
    queries, is_object = object_and_background_queries(np.zeros((60, 80), bool), 16, 64)
    assert not is_object.any() and len(queries) == 256


def disc_around_30_25(radius: float) -> np.ndarray:
    """``bool[60, 80]``: within ``radius`` measuring px of (30, 25)."""
    ys, xs = np.mgrid[:60, :80]
    return (xs - 30) ** 2 + (ys - 25) ** 2 < radius**2


@needs_sam2
def test_sam2_masks_prompt_the_tracker_with_random_weights():
    # the MotionStone chain: SAM2's masks of the first sample -> query points inside them and on the background.
    # Random weights draw arbitrary masks, which the checks of motion evidence may drop or keep by chance: with them
    # off, what is tested is the plumbing from masks to queries
    clip = annotated(
        Scene(seed=72, objects=(OBJECT,)),
        "decode.short_side=128",
        "tracking.tracker=flow_chain",
        "decouple.segmenter=sam2",
        "decouple.allow_random_weights=true",
        "decouple.sam2_image_size=256",
        "decouple.confirm_ratio=1",
        "decouple.support_ratio=0",
    )
    fields = clip.fields
    assert fields["segment_backend"].startswith("sam2:") and fields["tracker_backend"] == "flow_chain"
    _, is_object = object_and_background_queries(clip.object_masks[0], 16, 64)
    assert clip.object_masks[0].any() and fields["object_tracks"] == is_object.sum() > 0
    assert fields["background_tracks"] == (~is_object).sum() > 0 and fields["camera_track_motion"] < 0.5


@pytest.mark.weights
@pytest.mark.skipif(not SAM2_CHECKPOINT, reason="set MOTIONPIPE_SAM2_CHECKPOINT to a local SAM2.1 tiny checkpoint")
def test_sam2_chain_track_labels_with_real_weights():
    scene = Scene(seed=73, pan=(-10.0, 0.0), objects=(OBJECT,))
    fields = annotated(
        scene, "tracking.tracker=flow_chain", "decouple.segmenter=sam2", f"decouple.sam2_checkpoint={SAM2_CHECKPOINT}"
    ).fields
    truth = ground_truth(scene, SampleSpec())
    assert fields["object_tracks"] >= 32
    assert fields["object_track_motion"] == pytest.approx(truth["object_motion"], rel=0.2)
