"""Conditioning modules that plug motionpipe's batches into a video diffusion model.

- ``MotionScoreEmbedding`` (MotionStone): object and camera motion scores through two separate MLPs,
  outputs concatenated and added to the timestep embedding.
- ``MotionEncoder`` + ``AdaptiveFeatureModulation`` (MotionPro): region-wise trajectories and their mask
  are encoded to features that modulate the model's: GroupNorm(h) * gamma + beta + h.
- ``motion_focal_loss`` (MotiF): the diffusion MSE plus lambda * ||m' (eps - eps_hat)||^2.

The last layer of every injection path starts at zero, so adding them to a pretrained model leaves its
output unchanged at step 0 (fine-tuning starts from the model as it was).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """``[B]`` scalars -> ``[B, dim]`` sin/cos features at geometric frequencies (as timesteps are embedded)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device) / half)
    angles = values.float()[:, None] * frequencies[None]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(embedding, (0, dim % 2))


def zero_init(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ScoreMLP(nn.Module):
    """One score -> ``[B, out_dim]``: sinusoidal features of the score (x100, scores are in 1..10), then an MLP."""

    def __init__(self, out_dim: int, features: int = 64) -> None:
        super().__init__()
        self.features = features
        self.layers = nn.Sequential(nn.Linear(features, out_dim), nn.SiLU(), zero_init(nn.Linear(out_dim, out_dim)))

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        return self.layers(sinusoidal_embedding(score * 100.0, self.features))


class MotionScoreEmbedding(nn.Module):
    """MotionStone's decoupled score injection: ``scores [B, 2]`` (object, camera) -> ``[B, embed_dim]`` to add to
    the timestep embedding; each head owns half the channels, so the two intensities stay apart."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (two halves), got {embed_dim}")
        self.object_mlp = ScoreMLP(embed_dim // 2)
        self.camera_mlp = ScoreMLP(embed_dim // 2)

    def forward(self, timestep_embedding: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        motion = torch.cat([self.object_mlp(scores[:, 0]), self.camera_mlp(scores[:, 1])], dim=-1)
        return timestep_embedding + motion


class MotionEncoder(nn.Module):
    """Region trajectories ``[B, F, 2, h, w]`` (px) and their mask ``[B, 1, h, w]`` -> features ``[B, C, F, h, w]``."""

    def __init__(self, channels: int, displacement_scale: float = 0.1) -> None:
        super().__init__()
        self.displacement_scale = displacement_scale  # px -> roughly unit range at training sizes
        self.layers = nn.Sequential(
            nn.Conv3d(3, channels, 3, padding=1), nn.SiLU(), nn.Conv3d(channels, channels, 3, padding=1), nn.SiLU()
        )

    def forward(self, trajectories: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        frames = trajectories.shape[1]
        mask = mask[:, None].expand(-1, frames, -1, -1, -1)
        inputs = torch.cat([trajectories * self.displacement_scale, mask], dim=2)  # [B, F, 3, h, w]
        return self.layers(inputs.transpose(1, 2))


class AdaptiveFeatureModulation(nn.Module):
    """MotionPro's modulation of features ``h [B, C, F, H, W]`` by motion features ``[B, M, F', h, w]`` (resized to
    h's grid): GroupNorm(h) * gamma + beta + h, gamma and beta from zero-initialised convolutions."""

    def __init__(self, channels: int, motion_channels: int, groups: int = 8) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels, affine=False)
        self.to_gamma_beta = zero_init(nn.Conv3d(motion_channels, 2 * channels, 3, padding=1))

    def forward(self, features: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        motion = F.interpolate(motion, size=features.shape[2:], mode="trilinear", align_corners=False)
        gamma, beta = self.to_gamma_beta(motion).chunk(2, dim=1)
        return self.norm(features) * gamma + beta + features


def motion_focal_loss(
    predicted: torch.Tensor, target: torch.Tensor, heatmap: torch.Tensor, weight: float = 1.0
) -> torch.Tensor:
    """MotiF: MSE(eps_hat, eps) + weight * mean((m' (eps - eps_hat))^2).

    ``predicted``, ``target``: ``[B, C, T', H', W']``; ``heatmap``: ``[B, T', H', W']`` in [0, 1] at the latent
    grid, broadcast over channels."""
    error = (predicted - target) ** 2
    return error.mean() + weight * (error * heatmap[:, None] ** 2).mean()
