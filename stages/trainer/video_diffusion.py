"""A small video diffusion model wired with every motion condition, small enough to fine-tune on CPU.

It stands where a real image-to-video model (CogVideoX, SVD style) would: the same batch in, the same
conditioning modules (``conditioning.py``), the same loss. What a real model replaces:

- ``encode_latents``: average pooling by the latent factors stands in for the VAE encoder (a real model
  calls its VAE; the heatmap is already at that latent grid).
- ``TinyVideoDenoiser``: two residual 3D-convolution blocks stand in for the UNet/DiT. The first frame's
  latent is concatenated to the noisy latents (MotiF's x-cat), the motion mask too (MotionPro);
  the timestep embedding gets the decoupled scores (MotionStone) and a hashed bag-of-words caption
  embedding (a real model uses its text encoder and cross-attention); each block is modulated by
  region trajectories (MotionPro) and by sparse trajectories (Motion-I2V) through their own encoders.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from motionpipe.stages.trainer.conditioning import (
    AdaptiveFeatureModulation,
    MotionEncoder,
    MotionScoreEmbedding,
    sinusoidal_embedding,
)

LATENT_CHANNELS = 3
CAPTION_BUCKETS = 1024


@dataclass(frozen=True)
class DenoiserConfig:
    """channels: feature width. embed_dim: timestep embedding width. diffusion_steps: DDPM steps (linear betas)."""

    channels: int = 32
    embed_dim: int = 64
    motion_channels: int = 16
    diffusion_steps: int = 1000


def encode_latents(frames: torch.Tensor, temporal: int, spatial: int) -> torch.Tensor:
    """``[B, F, 3, H, W]`` in [-1, 1] -> ``[B, 3, ceil(F / temporal), ceil(H / spatial), ceil(W / spatial)]``."""
    video = frames.transpose(1, 2)
    size = (
        math.ceil(video.shape[2] / temporal),
        math.ceil(video.shape[3] / spatial),
        math.ceil(video.shape[4] / spatial),
    )
    return F.adaptive_avg_pool3d(video, size)


def caption_tokens(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Words hashed into ``CAPTION_BUCKETS`` (stable across processes): (token ids, offsets) for EmbeddingBag."""
    ids, offsets = [], []
    for caption in captions:
        offsets.append(len(ids))
        ids += [zlib.crc32(word.encode()) % CAPTION_BUCKETS for word in caption.lower().split()] or [0]
    return torch.tensor(ids), torch.tensor(offsets)


class ModulatedBlock(nn.Module):
    """Conv -> (timestep bias) -> modulation by both motion encodings -> conv, with a residual path."""

    def __init__(self, channels: int, embed_dim: int, motion_channels: int) -> None:
        super().__init__()
        self.first = nn.Conv3d(channels, channels, 3, padding=1)
        self.time_bias = nn.Linear(embed_dim, channels)
        self.region = AdaptiveFeatureModulation(channels, motion_channels)
        self.sparse = AdaptiveFeatureModulation(channels, motion_channels)
        self.second = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor, region: torch.Tensor, sparse: torch.Tensor):
        x = F.silu(self.first(h)) + self.time_bias(embedding)[:, :, None, None, None]
        x = self.sparse(self.region(x, region), sparse)
        return h + self.second(F.silu(x))


class TinyVideoDenoiser(nn.Module):
    """Predicts the noise of noisy video latents from the batch's conditions (see the module docstring)."""

    def __init__(self, config: DenoiserConfig = DenoiserConfig()) -> None:
        super().__init__()
        self.config = config
        c, e, m = config.channels, config.embed_dim, config.motion_channels
        self.stem = nn.Conv3d(2 * LATENT_CHANNELS + 1, c, 3, padding=1)
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.scores = MotionScoreEmbedding(e)
        self.caption = nn.EmbeddingBag(CAPTION_BUCKETS, e, mode="mean")
        self.region_encoder = MotionEncoder(m)
        self.sparse_encoder = MotionEncoder(m)
        self.blocks = nn.ModuleList([ModulatedBlock(c, e, m) for _ in range(2)])
        self.head = nn.Conv3d(c, LATENT_CHANNELS, 3, padding=1)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, batch: dict) -> torch.Tensor:
        """``noisy [B, 3, T', h', w']`` latents at ``timesteps [B]`` -> predicted noise, same shape."""
        first = F.adaptive_avg_pool2d(batch["first_frame"], noisy.shape[-2:])[:, :, None]  # its latent, as in encode
        mask = F.interpolate(batch["motion_mask"][:, :, None], size=noisy.shape[2:], mode="trilinear")
        h = self.stem(torch.cat([noisy, first.expand(-1, -1, noisy.shape[2], -1, -1), mask], dim=1))
        embedding = self.time_mlp(sinusoidal_embedding(timesteps, self.config.embed_dim))
        embedding = self.scores(embedding, batch["scores"]) + self.caption(*caption_tokens(batch["caption"]))
        region = self.region_encoder(batch["region_trajectories"], batch["region_mask"])
        sparse = self.sparse_encoder(batch["sparse_trajectories"], batch["sparse_mask"])
        for block in self.blocks:
            h = block(h, embedding, region, sparse)
        return self.head(F.silu(h))


class NoiseSchedule:
    """DDPM forward process with linear betas (1e-4 .. 0.02): what noisy latents look like at step t."""

    def __init__(self, steps: int) -> None:
        betas = torch.linspace(1e-4, 0.02, steps)
        self.alpha_bar = torch.cumprod(1 - betas, dim=0)
        self.steps = steps

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.alpha_bar[timesteps].view(-1, *([1] * (latents.dim() - 1)))
        return alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise
