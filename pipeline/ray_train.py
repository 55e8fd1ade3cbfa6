"""Data-parallel training on a Ray cluster through Ray Train's TorchTrainer (DistributedDataParallel; gloo on CPU,
NCCL on GPUs), shared by ``train-estimator --workers`` and ``train-diffusion --workers``: every worker runs the
same loop with its rank, device and DDP wrapper; rank 0 writes the checkpoints into the output folder, which
must therefore be on storage every worker sees (one machine, or a shared mount)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from motionpipe.pipeline.ray_executor import connect
from motionpipe.pipeline.train_estimator import Replica


def this_replica() -> Replica:
    """Inside a Ray Train worker: its rank, the world size, its device and Ray Train's DDP wrapper."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    return Replica(
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        device=str(ray.train.torch.get_device()),
        wrap=ray.train.torch.prepare_model,
    )


def fit_on_ray(
    loop: Callable[[dict[str, Any]], Any],
    settings: Callable[[], dict[str, Any]],
    name: str,
    out_dir: str | Path,
    workers: int,
    use_gpu: bool = False,
    address: str | None = None,
) -> Any:
    """Run ``loop(settings())`` on ``workers`` Ray Train workers (one GPU each with ``use_gpu``) -> rank 0's result;
    ``settings`` is called once Ray is up (it may put data in the object store)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started_here = connect(address)
    try:
        trainer = TorchTrainer(
            loop,
            train_loop_config=settings(),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            run_config=RunConfig(name=name, storage_path=str(Path(out_dir).resolve() / "ray_train")),
        )
        result = trainer.fit()
        if result.error is not None:
            raise result.error
        return result.return_value
    finally:
        if started_here:
            ray.shutdown()
