"""``train-estimator --workers N``: the same training loop, data-parallel on a Ray cluster (pipeline/ray_train.py).

The clips go to the object store once and every worker maps them; rank 0 writes the checkpoints into the
output folder, where ``--resume`` finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motionpipe.pipeline.estimator_data import ClipSet
from motionpipe.pipeline.ray_train import fit_on_ray, this_replica
from motionpipe.pipeline.train_estimator import TrainConfig, train_estimator


def _train_worker(settings: dict[str, Any]) -> dict:
    """Runs in every Ray Train worker: the shared loop with this worker's rank; rank 0's summary is the result."""
    import ray

    data: ClipSet = ray.get(settings["data"])
    chosen = (settings[name] for name in ("out_dir", "config", "pairs_file", "resume"))
    return train_estimator(data, *chosen, replica=this_replica())


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

    out = Path(out_dir).resolve()

    def settings() -> dict[str, Any]:  # the clips go to the object store once
        return {
            "data": ray.put(data),
            "out_dir": str(out),
            "config": config,
            "pairs_file": pairs_file,
            "resume": resume,
        }

    return fit_on_ray(_train_worker, settings, "train-estimator", out, workers, use_gpu, address)
