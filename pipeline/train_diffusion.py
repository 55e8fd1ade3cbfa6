"""``motionpipe train-diffusion``: fine-tune the small video diffusion model on an annotated run's conditions.

Noise prediction (DDPM) on encoded latents, loss = MotiF's motion focal loss. Progress is judged on a
fixed probe (the first batch, with fixed noise and timesteps), so 'the loss dropped' compares like with
like instead of two random draws. Checkpoints: ``OUT/denoiser.safetensors`` + ``OUT/denoiser.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from motionpipe.pipeline.run_outputs import write_atomically
from motionpipe.pipeline.training_dataset import MotionTrainingDataset, TrainingDataConfig
from motionpipe.stages.trainer.conditioning import motion_focal_loss
from motionpipe.stages.trainer.video_diffusion import DenoiserConfig, NoiseSchedule, TinyVideoDenoiser, encode_latents

WEIGHTS_FILE, META_FILE = "denoiser.safetensors", "denoiser.json"


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """steps: optimiser steps. batch_size: clips per step. learning_rate: Adam's. focal_weight: MotiF's lambda.
    workers: dataloader processes. checkpoint_every: steps between checkpoints (and at the end)."""

    data: TrainingDataConfig
    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    steps: int = 20
    batch_size: int = 2
    learning_rate: float = 2e-3
    focal_weight: float = 1.0
    workers: int = 0
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch_size and checkpoint_every must be >= 1")
        if self.focal_weight < 0 or self.learning_rate <= 0:
            raise ValueError("focal_weight must be >= 0 and learning_rate > 0")


@dataclass(frozen=True)
class DiffusionTrainResult:
    losses: list[float]
    probe_before: float
    probe_after: float
    clips: int


def batches(dataset: MotionTrainingDataset, config: DiffusionTrainConfig) -> Iterator[dict]:
    """Batches forever, a new epoch (permutation) each time the selection is used up."""
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.workers)
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from loader
        epoch += 1


def diffusion_loss(
    model: TinyVideoDenoiser,
    schedule: NoiseSchedule,
    batch: dict,
    config: DiffusionTrainConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Noise the batch's latents at random steps and score the model's noise prediction with MotiF's loss."""
    latents = encode_latents(batch["frames"], config.data.latent_temporal, config.data.latent_spatial)
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, schedule.steps, (len(latents),), generator=generator)
    predicted = model(schedule.add_noise(latents, noise, timesteps), timesteps, batch)
    return motion_focal_loss(predicted, noise, batch["heatmap"], config.focal_weight)


def probe_loss(model: TinyVideoDenoiser, schedule: NoiseSchedule, batch: dict, config: DiffusionTrainConfig) -> float:
    with torch.no_grad():
        return diffusion_loss(model, schedule, batch, config, torch.Generator().manual_seed(config.seed + 1)).item()


def save_denoiser(folder: Path, model: TinyVideoDenoiser, meta: dict) -> None:
    from safetensors.torch import save_file

    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    write_atomically(folder / WEIGHTS_FILE, lambda path: save_file(state, str(path)))
    write_atomically(folder / META_FILE, lambda path: path.write_text(json.dumps(meta, indent=2, default=str) + "\n"))


def load_denoiser(folder: str | Path) -> tuple[TinyVideoDenoiser, dict]:
    from safetensors.torch import load_file

    meta = json.loads((Path(folder) / META_FILE).read_text())
    model = TinyVideoDenoiser(DenoiserConfig(**meta["model"]))
    model.load_state_dict(load_file(str(Path(folder) / WEIGHTS_FILE)))
    return model, meta


def train_diffusion(
    config: DiffusionTrainConfig, out: str | Path, on_step: Callable[[int, float], None] | None = None
) -> DiffusionTrainResult:
    """Fine-tune for ``config.steps`` steps; ``on_step(step, loss)`` hears of each."""
    torch.manual_seed(config.seed)
    dataset = MotionTrainingDataset(config.data)
    if len(dataset) == 0:
        raise ValueError(f"the selection {config.data.where!r} holds no clip to train on (with scores and conditions)")
    model, schedule = TinyVideoDenoiser(config.model), NoiseSchedule(config.model.diffusion_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    stream = batches(dataset, config)
    probe = next(stream)
    before = probe_loss(model, schedule, probe, config)
    losses = []
    meta = {"data": asdict(config.data), "model": asdict(config.model), "train": asdict(config) | {"data": None}}
    for step in range(1, config.steps + 1):
        batch = probe if step == 1 else next(stream)
        loss = diffusion_loss(model, schedule, batch, config, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_denoiser(Path(out), model, meta | {"step": step, "losses": losses})
    return DiffusionTrainResult(losses, before, probe_loss(model, schedule, probe, config), len(dataset))
