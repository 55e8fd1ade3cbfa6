"""``motionpipe train-diffusion``: fine-tune a video diffusion model on an annotated run's conditions.

With ``model_dir`` (``--model DIR``): a local diffusers Stable Video Diffusion folder, its UNet fine-tuned
(LoRA or in full) with the motion scores, the motion conditions and MotiF's focal loss on SVD's own objective
(``stages/trainer/svd.py``); checkpoints ``OUT/motion_svd.safetensors`` (the trained parameters) +
``OUT/motion_svd.json``. Without it: the small built-in denoiser (noise prediction on pooled latents), a
fixture for tests and quick checks; checkpoints ``OUT/denoiser.*``. Progress is judged on a fixed probe (the
first batch, with fixed noise), so 'the loss dropped' compares like with like instead of two random draws.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import DataLoader

from motionpipe.pipeline.run_outputs import write_atomically
from motionpipe.pipeline.train_estimator import IN_PROCESS, Replica
from motionpipe.pipeline.training_dataset import MotionTrainingDataset, TrainingDataConfig
from motionpipe.stages.trainer.conditioning import motion_focal_loss
from motionpipe.stages.trainer.video_diffusion import DenoiserConfig, NoiseSchedule, TinyVideoDenoiser, encode_latents

WEIGHTS_FILE, META_FILE = "denoiser.safetensors", "denoiser.json"
SVD_WEIGHTS_FILE, SVD_META_FILE = "motion_svd.safetensors", "motion_svd.json"


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """steps: optimiser steps. batch_size: clips per step. learning_rate: Adam's. focal_weight: MotiF's lambda.
    workers: dataloader processes. checkpoint_every: steps between checkpoints (and at the end).
    model_dir: a local diffusers SVD folder to fine-tune (empty: the built-in small denoiser). lora_rank: LoRA's
    rank on its attention projections (0: full fine-tuning of its UNet)."""

    data: TrainingDataConfig
    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    steps: int = 20
    batch_size: int = 2
    learning_rate: float = 2e-3
    focal_weight: float = 1.0
    workers: int = 0
    checkpoint_every: int = 100
    seed: int = 0
    model_dir: str = ""
    lora_rank: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch_size and checkpoint_every must be >= 1")
        if self.lora_rank < 0 or (self.lora_rank and not self.model_dir):
            raise ValueError("lora_rank must be >= 0, and applies to a --model only")
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


class Trainee(Protocol):
    """What the loop trains: a loss per batch (random draws from ``generator``), its parameters, its checkpoint."""

    def loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def save(self, folder: Path, meta: dict) -> None: ...


def on_device(batch: dict, device: str) -> dict:
    """The batch's tensors on ``device`` (keys and captions as they are)."""
    return {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in batch.items()}


class ToyTrainee:
    """The built-in small denoiser: DDPM noise prediction on pooled latents."""

    def __init__(self, config: DiffusionTrainConfig, replica: Replica = IN_PROCESS) -> None:
        self.config, self.device = config, replica.device
        self.core = TinyVideoDenoiser(config.model).to(replica.device)
        self.model, self.schedule = replica.wrap(self.core), NoiseSchedule(config.model.diffusion_steps)

    def loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """Noise the batch's latents at random steps and score the noise prediction with MotiF's loss."""
        data, batch = self.config.data, on_device(batch, self.device)
        latents = encode_latents(batch["frames"], data.latent_temporal, data.latent_spatial)
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.schedule.steps, (len(latents),), generator=generator).to(self.device)
        predicted = self.model(self.schedule.add_noise(latents, noise, timesteps), timesteps, batch)
        return motion_focal_loss(predicted, noise, batch["heatmap"], self.config.focal_weight)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.core.parameters()

    def save(self, folder: Path, meta: dict) -> None:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.core.state_dict().items()}
        save_checkpoint(folder, WEIGHTS_FILE, META_FILE, state, meta | {"model": asdict(self.config.model)})


class SvdTrainee:
    """A local Stable Video Diffusion's UNet with motionpipe's conditions (stages/trainer/svd.py)."""

    def __init__(self, config: DiffusionTrainConfig, replica: Replica = IN_PROCESS) -> None:
        from motionpipe.stages.trainer.svd import MotionSvd, load_svd

        self.config, self.device = config, replica.device
        self.parts = load_svd(config.model_dir)
        self.parts.vae.to(replica.device)
        self.parts.image_encoder.to(replica.device)
        self.core = MotionSvd(self.parts.unet, config.lora_rank).to(replica.device)
        self.model = replica.wrap(self.core)

    def loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        from motionpipe.stages.trainer.svd import svd_focal_loss

        batch = on_device(batch, self.device)
        return svd_focal_loss(self.model, self.parts, batch, self.config.focal_weight, generator)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return (parameter for parameter in self.core.parameters() if parameter.requires_grad)

    def save(self, folder: Path, meta: dict) -> None:
        svd = {"model_dir": str(Path(self.config.model_dir).resolve()), "lora_rank": self.config.lora_rank}
        state = {name: tensor.cpu() for name, tensor in self.core.trainable_state().items()}
        save_checkpoint(folder, SVD_WEIGHTS_FILE, SVD_META_FILE, state, meta | svd)


def save_checkpoint(folder: Path, weights: str, meta_file: str, state: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    write_atomically(folder / weights, lambda path: save_file(state, str(path)))
    write_atomically(folder / meta_file, lambda path: path.write_text(json.dumps(meta, indent=2, default=str) + "\n"))


def load_denoiser(folder: str | Path) -> tuple[TinyVideoDenoiser, dict]:
    from safetensors.torch import load_file

    meta = json.loads((Path(folder) / META_FILE).read_text())
    model = TinyVideoDenoiser(DenoiserConfig(**meta["model"]))
    model.load_state_dict(load_file(str(Path(folder) / WEIGHTS_FILE)))
    return model, meta


def load_motion_svd(folder: str | Path):
    """(MotionSvd, SvdParts, meta) of a checkpoint: the SVD folder it names, with the trained parameters on it."""
    from safetensors.torch import load_file

    from motionpipe.stages.trainer.svd import MotionSvd, load_svd

    meta = json.loads((Path(folder) / SVD_META_FILE).read_text())
    parts = load_svd(meta["model_dir"])
    model = MotionSvd(parts.unet, meta["lora_rank"])
    unexpected = model.load_state_dict(load_file(str(Path(folder) / SVD_WEIGHTS_FILE)), strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{folder} holds parameters this model does not have: {unexpected[:3]}")
    return model, parts, meta


def train_diffusion(
    config: DiffusionTrainConfig,
    out: str | Path,
    on_step: Callable[[int, float], None] | None = None,
    replica: Replica = IN_PROCESS,
) -> DiffusionTrainResult:
    """Fine-tune for ``config.steps`` steps; ``on_step(step, loss)`` hears of each. Under Ray Train (``replica``)
    each worker reads its share of every epoch (the dataset follows torch.distributed's rank) and rank 0 writes
    the checkpoints."""
    torch.manual_seed(config.seed)
    dataset = MotionTrainingDataset(config.data)
    if len(dataset) == 0:
        raise ValueError(f"the selection {config.data.where!r} holds no clip to train on (with scores and conditions)")
    trainee: Trainee = (SvdTrainee if config.model_dir else ToyTrainee)(config, replica)
    optimizer = torch.optim.Adam(trainee.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    stream = batches(dataset, config)
    probe = next(stream)

    def probe_loss() -> float:
        with torch.no_grad():
            return trainee.loss(probe, torch.Generator().manual_seed(config.seed + 1)).item()

    before = probe_loss()
    losses = []
    meta = {"data": asdict(config.data), "train": asdict(config) | {"data": None}}
    for step in range(1, config.steps + 1):
        batch = probe if step == 1 else next(stream)
        loss = trainee.loss(batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if replica.rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps):
            trainee.save(Path(out), meta | {"step": step, "losses": losses})
    return DiffusionTrainResult(losses, before, probe_loss(), len(dataset))


def _train_worker(settings: dict) -> DiffusionTrainResult:
    """Runs in every Ray Train worker: the same loop with this worker's rank, device and DDP wrapper."""
    from motionpipe.pipeline.ray_train import this_replica

    return train_diffusion(settings["config"], settings["out"], replica=this_replica())


def train_diffusion_on_ray(
    config: DiffusionTrainConfig, out: str | Path, workers: int, use_gpu: bool = False, address: str | None = None
) -> DiffusionTrainResult:
    """``workers`` data-parallel replicas (one GPU each with ``use_gpu``) -> rank 0's result."""
    from motionpipe.pipeline.ray_train import fit_on_ray

    folder = str(Path(out).resolve())
    return fit_on_ray(_train_worker, lambda: {"config": config, "out": folder}, "train-diffusion", folder, workers,
                      use_gpu, address)  # fmt: skip
