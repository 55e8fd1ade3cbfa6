"""A short CPU fine-tune of the small video diffusion model on a real annotated run."""

from __future__ import annotations

import torch
from conftest import motionpipe

from motionpipe.pipeline.train_diffusion import DiffusionTrainConfig, ToyTrainee, load_denoiser, train_diffusion
from motionpipe.pipeline.training_dataset import MotionTrainingDataset, TrainingDataConfig


def test_twenty_steps_lower_the_loss_and_the_checkpoint_reloads(annotated_run, tmp_path):
    data = TrainingDataConfig(str(annotated_run / "out"), score_columns=("object_motion", "camera_motion"))
    config = DiffusionTrainConfig(data, steps=20, batch_size=2)
    result = train_diffusion(config, tmp_path / "ckpt")
    assert len(result.losses) == 20 and result.clips == 11
    assert result.probe_after < 0.7 * result.probe_before, (result.probe_before, result.probe_after)

    model, meta = load_denoiser(tmp_path / "ckpt")
    assert meta["step"] == 20 and meta["data"]["score_columns"] == ["object_motion", "camera_motion"]
    batch = next(iter(torch.utils.data.DataLoader(MotionTrainingDataset(data), batch_size=2)))
    trainee = ToyTrainee(config)
    trainee.model = model
    with torch.no_grad():
        reloaded = trainee.loss(batch, torch.Generator().manual_seed(config.seed + 1))
    assert reloaded.item() == result.probe_after


def test_the_command_line_trains_and_reports(annotated_run, tmp_path):
    done = motionpipe(
        "train-diffusion", str(annotated_run / "out"), "--out", str(tmp_path / "ckpt"), "--steps", "3",
        "--scores", "object_motion,camera_motion", "--size", "48x32", "--frames", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 steps on 11 clips" in done.stdout and (tmp_path / "ckpt" / "denoiser.safetensors").is_file()
    refused = motionpipe("train-diffusion", str(annotated_run / "out"), "--out", str(tmp_path / "c2"))
    assert refused.returncode == 2 and "object_score is null in every row" in refused.stderr  # no --estimator ran
