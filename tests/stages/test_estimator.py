"""The MotionStone estimator: TAdaConv's temporal calibration, losses, checkpoints, a tiny training run,
and the scoring stage on real decoded clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import clip_record, make_clip

from motionpipe.pipeline.synthetic_video import Scene, SceneObject
from motionpipe.stages.decode import DecodeConfig, DecodeStage
from motionpipe.stages.estimator_io import ScoreCalibration, estimator_input, load_checkpoint, save_checkpoint
from motionpipe.stages.estimator_losses import estimator_loss, ranking_loss
from motionpipe.stages.estimator_model import (
    INPUT_CHANNELS,
    EstimatorConfig,
    TAdaConv2d,
    TemporalCalibration,
    flip_averaged_scores,
    motion_estimator,
)
from motionpipe.stages.flow_backends import MissingWeightsError
from motionpipe.stages.scoring import ScoringConfig, ScoringStage

TINY = EstimatorConfig(frames=6, height=24, width=32, channels=(8, 16), head_hidden=16)


def test_calibration_depends_on_neighbouring_frames_and_the_whole_clip():
    torch.manual_seed(0)
    calibration = TemporalCalibration(channels=8, reduction=2).eval()
    torch.nn.init.normal_(calibration.out.weight, std=0.5)
    x = torch.randn(1, 8, 9, 5, 5, requires_grad=True)
    alpha = calibration(x)
    alpha[0, :, 4].sum().backward()
    per_frame = x.grad.abs().sum(dim=(0, 1, 3, 4))
    assert per_frame[3] > 0 and per_frame[5] > 0  # neighbours (1D convs)
    assert per_frame[0] > 0 and per_frame[8] > 0  # the whole clip (global descriptor)


def test_tadaconv_starts_as_a_plain_per_frame_convolution():
    torch.manual_seed(1)
    layer = TAdaConv2d(4, 6).eval()
    x = torch.randn(2, 4, 5, 8, 8)
    plain = torch.stack([layer.conv(x[:, :, t]) for t in range(5)], dim=2)
    torch.testing.assert_close(layer(x), plain)


def test_ranking_loss_orders_a_toy_pair():
    a, b = torch.tensor([2.0], requires_grad=True), torch.tensor([3.0], requires_grad=True)
    optimiser = torch.optim.SGD([a, b], lr=0.1)
    for _ in range(50):
        optimiser.zero_grad()
        ranking_loss(a, b, torch.tensor([1]), margin=1.0).backward()
        optimiser.step()
    assert a.item() >= b.item() + 1.0 - 1e-6
    assert ranking_loss(a, b, torch.tensor([0]), margin=1.0).item() == 0.0  # ties do not rank


def test_scores_stay_in_range_and_save_load_is_exact(tmp_path):
    torch.manual_seed(2)
    model = motion_estimator(TINY).eval()
    frames = torch.rand(3, TINY.frames, INPUT_CHANNELS, TINY.height, TINY.width)
    scores = model(frames)
    assert all(((s >= 1) & (s <= 10)).all() for s in scores)
    calibration = ScoreCalibration.fit(np.array([0.0, 1.0, 5.0, 20.0]))
    version = save_checkpoint(tmp_path / "ckpt", model, {"object": calibration, "camera": calibration})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["version"] == version and meta["calibrations"]["object"] == list(calibration.quantiles)
    for expected, got in zip(scores, loaded(frames), strict=True):
        torch.testing.assert_close(got, expected)
    with pytest.raises(MissingWeightsError, match="train-estimator"):
        load_checkpoint(tmp_path / "missing")


def test_calibration_spreads_pseudo_labels_over_the_score_range():
    values = np.random.default_rng(0).exponential(3.0, 500)
    calibration = ScoreCalibration.fit(values)
    scores = calibration(values)
    assert scores.min() == pytest.approx(1.0) and scores.max() == pytest.approx(10.0)
    assert np.all(np.diff(calibration(np.sort(values))) >= 0)
    assert np.histogram(scores, bins=9, range=(1, 10))[0].min() > 30  # spread, not clustered


def moving_square_clips(speeds: list[float], frames: int = 6) -> torch.Tensor:
    """Model inputs of grey clips with a bright square moving right at ``speed`` px per frame."""
    clips = []
    for speed in speeds:
        samples = np.full((frames, TINY.height, TINY.width, 3), 50, np.uint8)
        for t in range(frames):
            left = int(2 + speed * t)
            samples[t, 8:16, left : left + 8] = 230
        clips.append(estimator_input(samples, TINY))
    return torch.from_numpy(np.stack(clips))


def test_a_tiny_training_run_lowers_the_loss():
    torch.manual_seed(3)
    model = motion_estimator(TINY)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    fast, slow = moving_square_clips([3, 3, 2, 3]), moving_square_clips([0, 1, 0, 0])
    winners = (torch.ones(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    targets_fast, targets_slow = (torch.full((4,), 8.0), torch.full((4,), 1.0)), (torch.full((4,), 2.0),) * 2

    def loss() -> torch.Tensor:
        return estimator_loss(model(fast), model(slow), winners, targets_fast, targets_slow, regression_weight=0.5)

    first = loss().item()
    for _ in range(30):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()
    assert loss().item() < 0.5 * first


def test_estimator_input_resizes_and_pads_frames():
    samples = np.zeros((4, 50, 70, 3), np.uint8)
    samples[-1] = 255
    prepared = estimator_input(samples, TINY)
    assert prepared.shape == (6, INPUT_CHANNELS, 24, 32) and prepared.dtype == np.float32
    assert prepared[3:, :3].min() == 1.0  # the last frame repeats
    assert np.abs(prepared[3, 3:]).min() == 1.0 and np.abs(prepared[4:, 3:]).max() == 0.0  # its change, then none


def test_scoring_stage_scores_ok_clips_and_leaves_errors_alone(tmp_path):
    save_checkpoint(tmp_path / "ckpt", motion_estimator(TINY), {})
    decode = DecodeStage(DecodeConfig())
    scoring = ScoringStage(ScoringConfig(checkpoint=str(tmp_path / "ckpt"), batch_size=2))
    decode.setup()
    scoring.setup()
    clips = [clip_record(make_clip(Scene(seed=s, objects=(SceneObject((0.4, 0.5), 0.2, (9.0, 0.0)),)))) for s in (1, 2)]
    clips += [clip_record(b""), clip_record(make_clip(Scene(seed=3, pan=(8.0, 0.0))))]
    for stage in (decode, scoring):
        stage.process(clips)
    assert [clip.ok for clip in clips] == [True, True, False, True]
    for clip in (clips[0], clips[1], clips[3]):
        assert 1 <= clip.fields["object_score"] <= 10 and 1 <= clip.fields["camera_score"] <= 10
        assert len(clip.fields["estimator_version"]) == 12
    assert "object_score" not in clips[2].fields


def test_flip_averaged_scores_do_not_depend_on_the_clip_orientation():
    torch.manual_seed(4)
    model = motion_estimator(TINY).eval()
    clips = moving_square_clips([2, 0])
    with torch.inference_mode():
        upright, flipped = flip_averaged_scores(model, clips), flip_averaged_scores(model, clips.flip(-1))
    for a, b in zip(upright, flipped, strict=True):
        torch.testing.assert_close(a, b)
