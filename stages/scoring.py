"""Scoring stage: the trained estimator scores object and camera motion intensity of every ok clip.

Torch and the model are imported in ``setup``: a run without a checkpoint never loads torch (~0.3 GiB and
~1.5 s per worker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from motionpipe.stages.base import ClipRecord, Resources, Stage, WorkerFault


@dataclass(frozen=True)
class ScoringConfig:
    """checkpoint: folder written by `motionpipe train-estimator` (empty: no scoring). batch_size: clips per
    forward pass. device: 'cpu' | 'cuda' (one GPU per worker)."""

    checkpoint: str = ""
    batch_size: int = 8
    device: str = "cpu"

    def check_weights(self) -> None:
        """Fail before any work starts when the checkpoint is missing (MissingWeightsError)."""
        if self.checkpoint:
            from motionpipe.stages.estimator_io import load_checkpoint_meta

            load_checkpoint_meta(self.checkpoint)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"scoring.batch_size must be >= 1, got {self.batch_size}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"scoring.device must be 'cpu' or 'cuda', got {self.device!r}")


Scorer = Callable[[np.ndarray], np.ndarray]  # float32[B, frames, 6, H, W] estimator inputs -> float32[B, 2]


def load_scorer(config: ScoringConfig) -> tuple[Scorer, str]:
    """The checkpoint's model as a function from estimator inputs to (object, camera) scores, and its version."""
    import torch

    from motionpipe.stages.estimator_io import load_checkpoint
    from motionpipe.stages.estimator_model import flip_averaged_scores

    model, meta = load_checkpoint(config.checkpoint, config.device)

    def score(inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            object_scores, camera_scores = flip_averaged_scores(model, torch.from_numpy(inputs).to(config.device))
        return torch.stack([object_scores, camera_scores], dim=1).cpu().numpy()

    return score, meta["version"]


class ScoringStage(Stage):
    """Scores the ok clips of each batch together, with the model loaded once per worker or a shared server."""

    name: ClassVar[str] = "scoring"

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.resources = Resources(cpus=1.0, gpus=1.0 if config.device == "cuda" else 0.0)
        self._score: Scorer | None = None
        self._version = ""
        self._model_config = None

    def serve_from(self, score: Scorer, version: str) -> None:
        """Use a model that lives elsewhere (a shared score server): this worker then loads no weights."""
        self._score, self._version = score, version
        self.resources = Resources(cpus=1.0)

    def setup(self, device: str = "cpu") -> None:
        from motionpipe.stages.estimator_io import load_checkpoint_meta
        from motionpipe.stages.estimator_model import EstimatorConfig

        self._model_config = EstimatorConfig.from_dict(load_checkpoint_meta(self.config.checkpoint)["config"])
        if self._score is None:
            self._score, self._version = load_scorer(self.config)

    def process(self, batch: list[ClipRecord]) -> list[ClipRecord]:
        from motionpipe.stages.estimator_io import estimator_input

        ok = [clip for clip in batch if clip.ok]
        for start in range(0, len(ok), self.config.batch_size):
            chunk = ok[start : start + self.config.batch_size]
            try:
                inputs = np.stack([estimator_input(c.video.frames[c.video.samples], self._model_config) for c in chunk])
                scores = self._score(inputs)
            except WorkerFault:
                raise
            except Exception as error:  # noqa: BLE001 - a failed batch marks its clips, never the shard
                for clip in chunk:
                    clip.fail("scoring:internal", f"{type(error).__name__}: {error}")
                continue
            for clip, (object_score, camera_score) in zip(chunk, scores.tolist(), strict=True):
                clip.fields.update(
                    object_score=object_score, camera_score=camera_score, estimator_version=self._version
                )
        return batch

    def process_clip(self, clip: ClipRecord) -> None:
        """Clips are scored in batches by ``process``; one clip is a batch of one."""
        self.process([clip])
