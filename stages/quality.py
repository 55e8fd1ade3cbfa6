"""Quality flags: a suspected scene cut inside the window, and frames with too little texture for flow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from motionpipe.stages.base import ClipRecord, Stage
from motionpipe.stages.decode import resize_to_short_side
from motionpipe.stages.flow_backends import DisFlow
from motionpipe.stages.flow_checks import forward_backward_consistent

CUT_CHECK_SHORT_SIDE = 72  # px: cuts are global, so a coarse flow suffices (96 px measured 2.6x slower)
TEXTURE_WINDOW = 15  # px; local contrast is measured over this window
TEXTURE_CONTRAST = 4.0  # grey-level standard deviation that gives flow something to hold on to


@dataclass(frozen=True)
class QualityConfig:
    """cut_consistency: a step between consecutive samples whose forward-backward-consistent area falls
    below this fraction, and below half the clip's median step, is a flow breakdown: a suspected cut.
    low_texture_fraction: a clip is low-texture when less than this fraction of its first frame has texture.
    """

    cut_consistency: float = 0.35
    low_texture_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("cut_consistency", "low_texture_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"quality.{name} must be a fraction in (0, 1), got {getattr(self, name)}")


def textured_fraction(frame: np.ndarray) -> float:
    """Fraction of pixels whose neighbourhood has enough contrast for flow to be measured."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    window = (TEXTURE_WINDOW, TEXTURE_WINDOW)
    variance = cv2.blur(gray * gray, window) - cv2.blur(gray, window) ** 2
    return float((np.sqrt(np.maximum(variance, 0)) > TEXTURE_CONTRAST).mean())


def shrunk_gray(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Grey image with its short side at ``short_side``, shrunk as the decoder shrinks frames."""
    return resize_to_short_side(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), short_side)


def step_consistency(frames: Sequence[np.ndarray], flow: DisFlow) -> np.ndarray:
    """Forward-backward-consistent area fraction of each step between consecutive frames, at low resolution."""
    small = np.stack([shrunk_gray(frame, CUT_CHECK_SHORT_SIDE) for frame in frames])
    forward, backward = flow.flow_both_ways(small[:-1], small[1:])
    return forward_backward_consistent(forward, backward).mean(axis=(1, 2))


class QualityStage(Stage):
    """Flags that tell a user when the motion numbers of a clip deserve less trust."""

    name: ClassVar[str] = "quality"

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self._flow: DisFlow | None = None

    def setup(self, device: str = "cpu") -> None:
        self._flow = DisFlow("ultrafast")

    def process_clip(self, clip: ClipRecord) -> None:
        samples = [clip.video.frames[index] for index in clip.video.samples]  # views: no 4 MB copy
        consistency = step_consistency(samples, self._flow) if len(samples) > 1 else np.ones(1)
        breakdown = (consistency < self.config.cut_consistency) & (consistency < 0.5 * np.median(consistency))
        clip.fields.update(
            scene_cut_suspected=bool(breakdown.any()),
            low_texture=textured_fraction(samples[0]) < self.config.low_texture_fraction,
        )
