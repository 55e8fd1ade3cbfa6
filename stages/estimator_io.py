"""The estimator's inputs and checkpoints.

Inputs: the clip's samples, resized to the model's size, padded to its frame count by repeating the
last frame (a short clip then reads as stopping, not as jumping back), each beside its
camera-compensated difference to the previous sample. Checkpoints: weights in safetensors (loading
never unpickles) beside a JSON file with the model config, the score calibrations and what produced
it; the version is a hash of the weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from motionpipe.stages.compensated_difference import compensated_differences
from motionpipe.stages.estimator_model import SCORE_MAX, SCORE_MIN, EstimatorConfig, MotionEstimator
from motionpipe.stages.flow_backends import MissingWeightsError

WEIGHTS_FILE, META_FILE = "estimator.safetensors", "estimator.json"


def estimator_input(samples: np.ndarray, config: EstimatorConfig) -> np.ndarray:
    """``uint8[T, H, W, 3]`` samples -> ``float32[frames, INPUT_CHANNELS, height, width]``: RGB in [0, 1], then
    the camera-compensated difference in [-1, 1]."""
    resized = [cv2.resize(frame, (config.width, config.height), interpolation=cv2.INTER_AREA) for frame in samples]
    resized += [resized[-1]] * (config.frames - len(resized))
    frames = np.stack(resized[: config.frames]).astype(np.float32) / 255.0
    return np.concatenate([frames, compensated_differences(frames)], axis=3).transpose(0, 3, 1, 2).copy()


@dataclass(frozen=True)
class ScoreCalibration:
    """Maps a pseudo-label (%diag/s) to [1, 10] by its quantile in the training set (ours: spreads the scores
    over the range, as MotionStone's regression term wants, whatever the dataset's motion distribution)."""

    quantiles: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray, count: int = 21) -> ScoreCalibration:
        quantiles = np.quantile(np.log1p(np.maximum(values, 0)), np.linspace(0, 1, count))
        return cls(tuple(float(q) for q in np.maximum.accumulate(quantiles + np.arange(count) * 1e-9)))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        levels = np.linspace(SCORE_MIN, SCORE_MAX, len(self.quantiles))
        return np.interp(np.log1p(np.maximum(values, 0)), self.quantiles, levels).astype(np.float32)


def save_checkpoint(
    folder: str | Path,
    model: MotionEstimator,
    calibrations: dict[str, ScoreCalibration],
    extra: dict[str, Any] | None = None,
) -> str:
    """Write weights and metadata into ``folder``; returns the version (hash of the weights)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    version = hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]
    meta = {
        "version": version,
        "config": model.config.to_dict(),
        "calibrations": {name: list(calibration.quantiles) for name, calibration in calibrations.items()},
        **(extra or {}),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return version


def load_checkpoint_meta(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata; a missing checkpoint is a clear error."""
    folder = Path(folder).expanduser()
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / META_FILE).is_file():
        raise MissingWeightsError(
            f"no estimator checkpoint in {folder} (expects {WEIGHTS_FILE} and {META_FILE}); "
            "train one with `motionpipe train-estimator`"
        )
    return json.loads((folder / META_FILE).read_text())


def load_checkpoint(folder: str | Path, device: str = "cpu") -> tuple[MotionEstimator, dict[str, Any]]:
    """The model in eval mode on ``device`` and its metadata."""
    from safetensors.torch import load_file

    meta = load_checkpoint_meta(folder)
    folder = Path(folder).expanduser()
    model = MotionEstimator(EstimatorConfig.from_dict(meta["config"]))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except RuntimeError as error:
        raise ValueError(
            f"the checkpoint in {folder} does not fit this version's estimator (retrain it): {error}"
        ) from error
    return model.to(torch.device(device)).eval(), meta
