"""``motionpipe train-diffusion``: fine-tune a local diffusers Stable Video Diffusion (``--model DIR``) on an
annotated run's conditions: its UNet (LoRA or in full) with the motion scores, the motion conditions and MotiF's
focal loss on SVD's own objective (``stages/trainer/svd.py``), in this process or data-parallel through Ray Train.
Checkpoints: ``OUT/motion_svd.safetensors`` (the trained parameters) + ``OUT/motion_svd.json``. Progress is judged
on a fixed probe (the first batch, with fixed noise), so 'the loss dropped' compares like with like instead of
two random draws.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from motionpipe.pipeline.run_outputs import write_atomically
from motionpipe.pipeline.train_estimator import IN_PROCESS, Replica
from motionpipe.pipeline.training_dataset import MotionTrainingDataset, TrainingDataConfig

SVD_WEIGHTS_FILE, SVD_META_FILE = "motion_svd.safetensors", "motion_svd.json"


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """steps: optimiser steps. batch_size: clips per step. learning_rate: Adam's. focal_weight: MotiF's lambda.
    workers: dataloader processes. checkpoint_every: steps between checkpoints (and at the end).
    model_dir: the local diffusers SVD folder to fine-tune. lora_rank: LoRA's rank on its attention projections
    (0: full fine-tuning of its UNet)."""

    data: TrainingDataConfig
    model_dir: str
    steps: int = 20
    batch_size: int = 2
    learning_rate: float = 2e-3
    focal_weight: float = 1.0
    workers: int = 0
    checkpoint_every: int = 100
    seed: int = 0
    lora_rank: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch_size and checkpoint_every must be >= 1")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if not self.model_dir:
            raise ValueError("a model to fine-tune is needed: --model DIR, a local diffusers SVD folder")
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


def on_device(batch: dict, device: str) -> dict:
    """The batch's tensors on ``device`` (keys and captions as they are)."""
    return {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in batch.items()}


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
        """The trained parameters and what rebuilds the model around them (its folder, the LoRA rank)."""
        from safetensors.torch import save_file

        state = {name: tensor.cpu() for name, tensor in self.core.trainable_state().items()}
        meta = meta | {"model_dir": str(Path(self.config.model_dir).resolve()), "lora_rank": self.config.lora_rank}
        write_atomically(folder / SVD_WEIGHTS_FILE, lambda path: save_file(state, str(path)))
        text = json.dumps(meta, indent=2, default=str) + "\n"
        write_atomically(folder / SVD_META_FILE, lambda path: path.write_text(text))


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
    trainee = SvdTrainee(config, replica)
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
