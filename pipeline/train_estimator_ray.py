"""``train-estimator --workers N``: the same training loop, data-parallel on a Ray cluster through Ray Train's
TorchTrainer (DistributedDataParallel; gloo on CPU, NCCL on GPUs).

The clips go to the object store once and every worker maps them; rank 0 writes the checkpoints into the
output folder, which must therefore be on storage that every worker sees (one machine, or a shared mount),
and where ``--resume`` finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motionpipe.pipeline.estimator_data import ClipSet
from motionpipe.pipeline.ray_executor import connect
from motionpipe.pipeline.train_estimator import Replica, TrainConfig, train_estimator


def _train_worker(settings: dict[str, Any]) -> dict:
    """Runs in every Ray Train worker: the shared loop with this worker's rank, device and DDP wrapper; rank 0's
    summary is the run's result."""
    import ray
    import ray.train.torch

    context = ray.train.get_context()
    replica = Replica(
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        device=str(ray.train.torch.get_device()),
        wrap=ray.train.torch.prepare_model,
    )
    data: ClipSet = ray.get(settings["data"])
    return train_estimator(
        data, settings["out_dir"], settings["config"], settings["pairs_file"], settings["resume"], replica=replica
    )


def train_estimator_on_ray(
    data: ClipSet,
    out_dir: str | Path,
    config: TrainConfig,
    workers: int,
    use_gpu: bool = False,
    pairs_file: str | None = None,
    resume: bool = False,
    address: str | None = None,
) -> dict:
    """Train with ``workers`` data-parallel replicas (one GPU each with ``use_gpu``); returns rank 0's summary."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir).resolve()
    started_here = connect(address)
    try:
        settings = {
            "data": ray.put(data),
            "out_dir": str(out),
            "config": config,
            "pairs_file": pairs_file,
            "resume": resume,
        }
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config=settings,
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            run_config=RunConfig(name="train-estimator", storage_path=str(out / "ray_train")),
        )
        result = trainer.fit()
        if result.error is not None:
            raise result.error
        return result.return_value
    finally:
        if started_here:
            ray.shutdown()
