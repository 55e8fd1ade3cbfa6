"""``motionpipe train-estimator``: MotionStone's estimator trained on pairs and calibrated pseudo-labels.

Deterministic on CPU for a seed; a checkpoint (model, optimiser, step, random state) is written every
``checkpoint_every`` steps as safetensors + JSON, so an interrupted run resumes where it stopped.
Training clips are flipped left-right and up-down at random (motion intensity does not change under a
flip; small training sets otherwise overfit), and the learning rate follows a cosine from its start to 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from motionpipe.pipeline.estimator_data import HEADS, ClipSet, Pairs, in_validation, judged_pairs, pseudo_label_pairs
from motionpipe.stages.estimator_io import ScoreCalibration, save_checkpoint
from motionpipe.stages.estimator_losses import estimator_loss
from motionpipe.stages.estimator_model import CPU_CONFIG, GPU_CONFIG, motion_estimator

MODEL_SIZES = {"cpu": CPU_CONFIG, "gpu": GPU_CONFIG}
OPTIMISER_FILE, TRAINING_FILE = "optimiser.safetensors", "training.json"


@dataclass(frozen=True)
class TrainConfig:
    """steps, batch_pairs (pairs per step), learning_rate; regression_weight: lambda of the regression term;
    margin: ranking margin in score points; pair_margin: relative pseudo-label difference that makes a pair;
    validation_fraction: share of keys held out; checkpoint_every: steps between checkpoints."""

    steps: int = 800
    batch_pairs: int = 8
    learning_rate: float = 2e-3
    regression_weight: float = 1.0
    margin: float = 1.0
    pair_margin: float = 0.2
    validation_fraction: float = 0.2
    seed: int = 0
    checkpoint_every: int = 100
    model: str = "cpu"

    def __post_init__(self) -> None:
        if self.model not in MODEL_SIZES:
            raise ValueError(f"model must be one of {sorted(MODEL_SIZES)}, got {self.model!r}")
        if self.steps < 1 or self.batch_pairs < 1 or not 0 <= self.validation_fraction < 1:
            raise ValueError("steps and batch_pairs must be >= 1, validation_fraction in [0, 1)")


def split(data: ClipSet, fraction: float) -> tuple[ClipSet, ClipSet]:
    held_out = np.array([in_validation(key, fraction) for key in data.keys])
    return data.subset(np.flatnonzero(~held_out)), data.subset(np.flatnonzero(held_out))


def training_pairs(data: ClipSet, pairs_file: str | None, margin: float) -> Pairs:
    return judged_pairs(pairs_file, data.keys) if pairs_file else pseudo_label_pairs(data.labels, margin)


def cosine_learning_rate(start: float, step: int, steps: int) -> float:
    """A function of the step alone, so a resumed run continues on the same schedule."""
    return start * 0.5 * (1 + math.cos(math.pi * step / steps))


def flipped(batch: torch.Tensor, flips: np.ndarray) -> torch.Tensor:
    """``[B, T, C, H, W]`` with clip i flipped left-right where ``flips[i, 0]``, up-down where ``flips[i, 1]``."""
    dims = [[dim for dim, flip in zip((-1, -2), row, strict=True) if flip] for row in flips]
    return torch.stack([clip.flip(clip_dims) for clip, clip_dims in zip(batch, dims, strict=True)])


@dataclass(frozen=True)
class Replica:
    """This process's part in data-parallel training: every replica draws the same pairs from the same seed and
    trains on its share (``rank`` of ``world``); ``wrap`` prepares the model (DistributedDataParallel under
    Ray Train); rank 0 writes the checkpoints."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    wrap: Callable[[torch.nn.Module], torch.nn.Module] = lambda model: model


IN_PROCESS = Replica()  # training in this process alone


def save_training_state(folder: Path, optimiser: torch.optim.Optimizer, step: int, rng: np.random.Generator) -> None:
    """Optimiser tensors in safetensors, the rest in JSON: resuming never unpickles."""
    from safetensors.torch import save_file

    state = optimiser.state_dict()
    tensors = {f"{index}.{name}": value for index, entry in state["state"].items() for name, value in entry.items()}
    tensors["torch_rng"] = torch.get_rng_state()
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / OPTIMISER_FILE))
    meta = {"step": step, "param_groups": state["param_groups"], "numpy_rng": rng.bit_generator.state}
    (folder / TRAINING_FILE).write_text(json.dumps(meta, sort_keys=True))


def load_training_state(folder: Path, optimiser: torch.optim.Optimizer, rng: np.random.Generator) -> int:
    from safetensors.torch import load_file

    meta = json.loads((folder / TRAINING_FILE).read_text())
    tensors = load_file(str(folder / OPTIMISER_FILE))
    torch.set_rng_state(tensors.pop("torch_rng"))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimiser.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["step"])


def train_estimator(
    data: ClipSet,
    out_dir: str | Path,
    config: TrainConfig,
    pairs_file: str | None = None,
    resume: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    replica: Replica = IN_PROCESS,
) -> dict:
    """Train, checkpoint and return a summary (losses, split sizes, checkpoint version)."""
    if config.batch_pairs < replica.world:
        raise ValueError(f"batch_pairs ({config.batch_pairs}) must be at least the number of workers ({replica.world})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train, validation = split(data, config.validation_fraction)
    pairs = training_pairs(train, pairs_file, config.pair_margin)
    if len(pairs) == 0:
        raise ValueError("no training pair differs enough to rank: add clips or lower pair_margin")
    calibrations = {head: ScoreCalibration.fit(train.labels[head]) for head in HEADS}
    targets = {head: torch.from_numpy(calibrations[head](train.labels[head])) for head in HEADS}
    inputs = torch.from_numpy(train.inputs)
    model = motion_estimator(MODEL_SIZES[config.model])
    step = 0
    if resume and (out / TRAINING_FILE).exists():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(out / "estimator.safetensors")))
    trained = replica.wrap(model.to(replica.device))
    optimiser = torch.optim.Adam(trained.parameters(), lr=config.learning_rate)
    if resume and (out / TRAINING_FILE).exists():
        step = load_training_state(out, optimiser, rng)
    extra = {
        "train_config": asdict(config),
        "labels": data.label_source,
        "parallax_left_out": data.parallax_left_out,
        "train_clips": len(train.keys),
        "validation_keys": validation.keys,
    }
    losses: list[float] = []
    version = json.loads((out / "estimator.json").read_text())["version"] if step else None
    while step < config.steps:
        trained.train()
        chosen = rng.choice(len(pairs), size=min(config.batch_pairs, len(pairs)), replace=False)
        flips = rng.random((2, len(chosen), 2)) < 0.5
        mine = np.arange(replica.rank, len(chosen), replica.world)
        first, second = pairs.first[chosen[mine]], pairs.second[chosen[mine]]
        batch = torch.cat([flipped(inputs[first], flips[0, mine]), flipped(inputs[second], flips[1, mine])])
        for group in optimiser.param_groups:
            group["lr"] = cosine_learning_rate(config.learning_rate, step, config.steps)
        both = trained(batch.to(replica.device))
        half = len(mine)
        loss = estimator_loss(
            tuple(s[:half] for s in both),
            tuple(s[half:] for s in both),
            tuple(torch.from_numpy(pairs.winners[h][chosen[mine]]).to(replica.device) for h in HEADS),
            tuple(targets[h][first].to(replica.device) for h in HEADS),
            tuple(targets[h][second].to(replica.device) for h in HEADS),
            config.regression_weight,
            config.margin,
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, loss.item())
        if replica.rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps):
            version = save_checkpoint(out, model, calibrations, extra | {"step": step})
            save_training_state(out, optimiser, step, rng)
    return {
        "version": version,
        "losses": losses,
        "train": len(train.keys),
        "validation": len(validation.keys),
        "pairs": len(pairs),
    }
