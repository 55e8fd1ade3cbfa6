"""Trackers behind one interface, and the track-based (MotionStone) pseudo-labels."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from conftest import make_clip, ready_stages, run_stages

from pipeline.config import build_config
from pipeline.sample_data import SampleSpec, ground_truth
from pipeline.shard_runner import build_annotation_stages
from pipeline.synthetic_video import Scene, SceneObject
from stages.flow_backends import MissingWeightsError
from stages.trackers import CoTracker, FlowChainTracker, grid_queries

PAN = (10.0, -4.0)  # %diag/s
OBJECT = SceneObject(start=(0.35, 0.5), radius=0.2, velocity=(10.0, 3.0))
COTRACKER_CHECKPOINT = os.environ.get("MOTIONPIPE_COTRACKER_CHECKPOINT", "")
COTRACKER_REPO = os.environ.get("MOTIONPIPE_COTRACKER_REPO", "")


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
    queries = grid_queries(width, height, 8)
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


def test_auto_tracker_runs_only_when_dense_tracks_are_built_anyway():
    names = [stage.name for stage in build_annotation_stages(build_config(overrides=["conditions.include=none"]))]
    assert "tracking" not in names and "tracks" not in names
    names = [stage.name for stage in build_annotation_stages(build_config(overrides=["conditions.include=all"]))]
    assert names[-2:] == ["tracking", "conditions"] and "tracks" in names
