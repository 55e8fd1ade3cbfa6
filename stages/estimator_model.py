"""MotionStone's motion estimator: a TAdaConv video backbone with two MLP heads that score object and
camera motion intensity in [1, 10].

TAdaConv (Huang et al., ICLR 2022) makes a 2D convolution temporal by calibrating its kernel per frame,
W_t = alpha_t * W_b, with alpha_t generated from the frame's own descriptor and its temporal context
(neighbouring frames through 1D convolutions, the whole clip through a global descriptor). The
calibration scales the kernel's input channels, which is computed here, exactly, as scaling the frame's
input channels before a shared convolution. The stem sees each frame with its plain and its
camera-compensated difference to the previous one (ours: motion is what the heads score; the plain
difference shows all of it from the first layer, the compensated one the objects' share).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SCORE_MIN, SCORE_MAX = 1.0, 10.0
INPUT_CHANNELS = 6  # RGB, then the camera-compensated difference (stages.estimator_io.estimator_input)


@dataclass(frozen=True)
class EstimatorConfig:
    """Model size. frames x height x width is the input clip; channels, one per stage (each halves H, W)."""

    frames: int = 16
    height: int = 64
    width: int = 112
    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 1
    head_hidden: int = 64
    reduction: int = 4

    def __post_init__(self) -> None:
        if self.frames < 2 or min(self.height, self.width) < 16 or not self.channels:
            raise ValueError(f"estimator config too small to see motion: {self}")

    def to_dict(self) -> dict:
        return asdict(self) | {"channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> EstimatorConfig:
        return cls(**(data | {"channels": tuple(data["channels"])}))


CPU_CONFIG = EstimatorConfig()
GPU_CONFIG = EstimatorConfig(
    frames=16, height=224, width=384, channels=(64, 128, 256, 512), blocks_per_stage=2, head_hidden=256
)


class TemporalCalibration(nn.Module):
    """alpha_t in R^{C_in} per frame from local (neighbouring frames) and global (whole clip) context; starts at 1."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.global_fc = nn.Linear(channels, channels)
        self.local = nn.Conv1d(channels, hidden, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm1d(hidden)
        self.out = nn.Conv1d(hidden, channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.out.weight)  # identity calibration at initialisation: a plain 2D conv
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[B, C, T, H, W]`` -> ``alpha[B, C, T]``."""
        frame_descriptor = x.mean(dim=(3, 4))  # [B, C, T]
        clip_descriptor = self.global_fc(frame_descriptor.mean(dim=2))[:, :, None]
        hidden = F.relu(self.norm(self.local(frame_descriptor + clip_descriptor)))
        return 1.0 + self.out(hidden)


class TAdaConv2d(nn.Module):
    """A 2D convolution applied to every frame with a per-frame calibrated kernel."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, reduction: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.calibration = TemporalCalibration(in_channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        alpha = self.calibration(x)  # [B, C_in, T]
        calibrated = (x * alpha[..., None, None]).transpose(1, 2).reshape(batch * frames, channels, height, width)
        y = self.conv(calibrated)
        return y.reshape(batch, frames, *y.shape[1:]).transpose(1, 2)


class TAdaBlock(nn.Module):
    """TAdaConv -> BN -> ReLU -> TAdaConv -> BN, with a residual connection (projected when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, reduction: int) -> None:
        super().__init__()
        self.first = TAdaConv2d(in_channels, out_channels, stride, reduction)
        self.norm1 = nn.BatchNorm3d(out_channels)
        self.second = TAdaConv2d(out_channels, out_channels, 1, reduction)
        self.norm2 = nn.BatchNorm3d(out_channels)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=(1, stride, stride), bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.first(x)))
        return F.relu(self.norm2(self.second(y)) + self.shortcut(x))


class MotionEstimator(nn.Module):
    """``float[B, T, INPUT_CHANNELS, H, W]`` from ``estimator_input`` -> (object score, camera score), each
    ``float[B]`` in [1, 10]."""

    def __init__(self, config: EstimatorConfig) -> None:
        super().__init__()
        self.config = config
        first = config.channels[0]
        self.stem = nn.Sequential(
            nn.Conv3d(  # the input channels and the plain difference
                INPUT_CHANNELS + 3, first, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False
            ),
            nn.BatchNorm3d(first),
            nn.ReLU(),
        )
        stages, channels = [], first
        for index, width in enumerate(config.channels):
            for block in range(config.blocks_per_stage):
                stride = 2 if block == 0 and index > 0 else 1
                stages.append(TAdaBlock(channels, width, stride, config.reduction))
                channels = width
        self.backbone = nn.Sequential(*stages)
        self.object_head = self._head(channels, config.head_hidden)
        self.camera_head = self._head(channels, config.head_hidden)

    @staticmethod
    def _head(channels: int, hidden: int) -> nn.Module:
        return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Pooled space-time features ``[B, C]``."""
        x = frames[:, :, :3].transpose(1, 2) * 2 - 1  # [B, 3, T, H, W] in [-1, 1]
        difference = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
        compensated = frames[:, :, 3:].transpose(1, 2) * 2  # same scale as the plain difference
        y = self.backbone(self.stem(torch.cat([x, difference, compensated], dim=1)))
        return y.mean(dim=(2, 3, 4))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(frames)
        to_score = lambda z: SCORE_MIN + (SCORE_MAX - SCORE_MIN) * torch.sigmoid(z[:, 0])  # noqa: E731
        return to_score(self.object_head(pooled)), to_score(self.camera_head(pooled))


FLIPS = ((), (-1,), (-2,), (-1, -2))


def flip_averaged_scores(model: MotionEstimator, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores averaged over the clip and its three flips (ours: motion intensity does not change under a flip,
    training sees flipped clips, and the average evens out a small model's view-dependent errors)."""
    scores = [model(frames.flip(list(dims)) if dims else frames) for dims in FLIPS]
    return tuple(torch.stack(head).mean(dim=0) for head in zip(*scores, strict=True))  # type: ignore[return-value]


def motion_estimator(config: EstimatorConfig = CPU_CONFIG) -> MotionEstimator:
    """Builder, as torchvision's: random initialisation; load weights with ``stages.estimator_io``."""
    return MotionEstimator(config)
