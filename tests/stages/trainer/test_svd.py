"""Stable Video Diffusion fine-tuned with motionpipe's conditions: diffusers' real classes, tiny random configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers", reason="the diffusion extra is not installed (pip install -e '.[diffusion]')")
pytest.importorskip("peft", reason="the diffusion extra is not installed (pip install -e '.[diffusion]')")

from motionpipe.pipeline.train_diffusion import (  # noqa: E402
    DiffusionTrainConfig,
    SvdTrainee,
    load_motion_svd,
    train_diffusion,
)
from motionpipe.pipeline.training_dataset import MotionTrainingDataset, TrainingDataConfig  # noqa: E402
from motionpipe.stages.trainer.svd import CONDITION_CHANNELS, MotionSvd, load_svd  # noqa: E402


def data_config(annotated_run: Path) -> TrainingDataConfig:
    return TrainingDataConfig(str(annotated_run / "out"), score_columns=("object_motion", "camera_motion"), width=32,
                              height=32)  # fmt: skip


def test_the_motion_inputs_start_at_zero_so_step_0_is_the_pretrained_model(tiny_svd):
    parts = load_svd(tiny_svd)
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 8, 8, 16, 16, generator=generator)  # noisy + image latents, as SVD's UNet takes them
    context, noise_levels = torch.randn(2, 1, 32, generator=generator), torch.tensor([0.3, -0.2])
    added = torch.tensor([[6.0, 127.0, 0.02]]).expand(2, -1)
    with torch.no_grad():
        pretrained = parts.unet(latents, noise_levels, context, added_time_ids=added).sample
        model = MotionSvd(parts.unet, lora_rank=4)
        conditions = torch.randn(2, 8, CONDITION_CHANNELS, 16, 16, generator=generator)
        scores = torch.tensor([[3.0, 7.0]] * 2)
        ours = model(latents[:, :, :4], latents[:, :, 4:], conditions, noise_levels, context, scores)
    torch.testing.assert_close(ours, pretrained)
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert any("lora" in name for name in trained) and "unet.conv_in.weight" in trained
    assert not any(name.startswith("unet.down_blocks") and "lora" not in name for name in trained)  # base frozen


@pytest.mark.parametrize("lora_rank", [4, 0])
def test_fine_tuning_lowers_the_loss_and_the_checkpoint_reloads(annotated_run, tiny_svd, tmp_path, lora_rank):
    data = data_config(annotated_run)
    config = DiffusionTrainConfig(
        data, steps=12, batch_size=2, learning_rate=1e-3, model_dir=str(tiny_svd), lora_rank=lora_rank
    )
    result = train_diffusion(config, tmp_path / "ckpt")
    assert len(result.losses) == 12 and result.clips == 11
    assert result.probe_after < result.probe_before, (result.probe_before, result.probe_after)

    model, parts, meta = load_motion_svd(tmp_path / "ckpt")
    assert meta["step"] == 12 and meta["lora_rank"] == lora_rank
    trainee = SvdTrainee(config)
    trainee.model, trainee.parts = model, parts
    batch = next(iter(torch.utils.data.DataLoader(MotionTrainingDataset(data), batch_size=2)))
    with torch.no_grad():
        reloaded = trainee.loss(batch, torch.Generator().manual_seed(config.seed + 1))
    assert reloaded.item() == pytest.approx(result.probe_after, rel=1e-5)


def test_a_folder_that_is_not_an_svd_model_is_a_clear_error(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(FileNotFoundError, match="not a diffusers SVD folder: no unet/config.json, vae/config.json"):
        load_svd(tmp_path)


def test_ray_train_runs_the_same_fine_tune_on_two_workers(annotated_run, tiny_svd, tmp_path):
    from motionpipe.pipeline.train_diffusion import train_diffusion_on_ray

    data = data_config(annotated_run)
    config = DiffusionTrainConfig(data, steps=2, batch_size=1, model_dir=str(tiny_svd), lora_rank=4)
    result = train_diffusion_on_ray(config, tmp_path / "ckpt", workers=2)
    assert len(result.losses) == 2 and result.clips == 11
    _, _, meta = load_motion_svd(tmp_path / "ckpt")
    assert meta["step"] == 2 and meta["losses"] == result.losses
