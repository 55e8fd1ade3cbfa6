"""Evaluation of the estimator: pairwise ranking accuracy per head (MotionStone's measure) and rank
correlation with the pseudo-labels, beside two single-number baselines on the same clips."""

from __future__ import annotations

import numpy as np
import torch

from motionpipe.pipeline.estimator_data import HEADS, ClipSet, Pairs
from motionpipe.stages.estimator_model import MotionEstimator, flip_averaged_scores


def predict(model: MotionEstimator, inputs: np.ndarray, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Scores per head for every clip, in eval mode, averaged over flips as the scoring stage does."""
    model.eval()
    outputs: dict[str, list[np.ndarray]] = {head: [] for head in HEADS}
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            scores = flip_averaged_scores(model, torch.from_numpy(inputs[start : start + batch_size]))
            for head, values in zip(HEADS, scores, strict=True):
                outputs[head].append(values.numpy())
    return {head: np.concatenate(values) for head, values in outputs.items()}


def pairwise_accuracy(scores: np.ndarray, pairs: Pairs, head: str) -> float:
    """Fraction of the head's decided pairs that the scores order as judged (NaN without decided pairs)."""
    winners = pairs.winners[head]
    decided = winners != 0
    if not decided.any():
        return float("nan")
    difference = scores[pairs.first[decided]] - scores[pairs.second[decided]]
    return float(np.mean(np.sign(difference) == winners[decided]))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (ties broken by order; enough for continuous scores)."""
    rank_a, rank_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def ssim_dissimilarity(inputs: np.ndarray) -> np.ndarray:
    """Baseline: 1 - mean SSIM of consecutive frames, per clip (grey, Gaussian window)."""
    import cv2

    def ssim(a: np.ndarray, b: np.ndarray) -> float:
        blur = lambda image: cv2.GaussianBlur(image, (7, 7), 1.5)  # noqa: E731
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
        c1, c2 = 0.01**2, 0.03**2
        return float(
            np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
        )

    grey = inputs[:, :, :3].mean(axis=2).astype(np.float64)  # [N, T, H, W]
    return np.array([1 - np.mean([ssim(clip[t], clip[t + 1]) for t in range(len(clip) - 1)]) for clip in grey])


def evaluate(model: MotionEstimator, data: ClipSet, pairs: Pairs, flow_mean: np.ndarray) -> dict[str, dict[str, float]]:
    """Per predictor and head: pairwise accuracy; for the estimator also Spearman with the pseudo-labels."""
    scores = predict(model, data.inputs)
    baselines = {"1 - mean SSIM": ssim_dissimilarity(data.inputs), "flow_mean": flow_mean}
    report = {"estimator": {}}
    for head in HEADS:
        report["estimator"][f"{head}_accuracy"] = pairwise_accuracy(scores[head], pairs, head)
        report["estimator"][f"{head}_spearman"] = spearman(scores[head], data.labels[head])
    for name, values in baselines.items():
        report[name] = {f"{head}_accuracy": pairwise_accuracy(values, pairs, head) for head in HEADS}
    report["estimator"]["score_histograms"] = {
        head: np.histogram(scores[head], bins=9, range=(1, 10))[0].tolist() for head in HEADS
    }
    return report
