"""MotionStone's training objective: a margin ranking loss on judged pairs per head, plus a regression
to calibrated pseudo-labels (which keeps the scores spread over [1, 10] instead of clustering)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_MARGIN = 1.0  # score points


def ranking_loss(score_a: torch.Tensor, score_b: torch.Tensor, winner: torch.Tensor, margin: float) -> torch.Tensor:
    """``winner``: +1 where a has more motion, -1 where b has, 0 for ties (which do not rank)."""
    decided = winner != 0
    if not decided.any():
        return score_a.sum() * 0.0
    return F.margin_ranking_loss(score_a[decided], score_b[decided], winner[decided].float(), margin=margin)


def estimator_loss(
    scores_a: tuple[torch.Tensor, torch.Tensor],
    scores_b: tuple[torch.Tensor, torch.Tensor],
    winners: tuple[torch.Tensor, torch.Tensor],
    targets_a: tuple[torch.Tensor, torch.Tensor],
    targets_b: tuple[torch.Tensor, torch.Tensor],
    regression_weight: float,
    margin: float = DEFAULT_MARGIN,
) -> torch.Tensor:
    """Sum over the (object, camera) heads of ranking + weight x regression (smooth L1, score points)."""
    total = scores_a[0].new_zeros(())
    for head in range(2):
        total = total + ranking_loss(scores_a[head], scores_b[head], winners[head], margin)
        regression = F.smooth_l1_loss(scores_a[head], targets_a[head]) + F.smooth_l1_loss(
            scores_b[head], targets_b[head]
        )
        total = total + regression_weight * regression / 2
    return total
