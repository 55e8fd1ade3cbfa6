"""Flow statistics stage: per-clip speed statistics and the MotionPro motion-mask area, in %diag/s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stages.base import ClipRecord, Resources, Stage
from stages.motion_units import MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S, speed_pct_diag_per_s
from stages.optical_flow import DIS_PRESETS, DisFlow

FLOW_MAX_PERCENTILE = 99.9


@dataclass(frozen=True)
class FlowConfig:
    """Optical flow for the motion statistics.

    backend: 'dis' (OpenCV DIS, the CPU default).
    dis_preset: 'ultrafast' | 'fast' | 'medium' (accuracy vs speed).
    mask_threshold: MotionPro motion-mask threshold in %diag/s.
    """

    backend: str = "dis"
    dis_preset: str = "medium"
    mask_threshold: float = MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S

    def __post_init__(self) -> None:
        if self.backend != "dis":
            raise ValueError(f"flow.backend {self.backend!r} is not available; choose 'dis'")
        if self.dis_preset not in DIS_PRESETS:
            raise ValueError(f"flow.dis_preset {self.dis_preset!r} unknown; choose one of {sorted(DIS_PRESETS)}")
        if self.mask_threshold <= 0:
            raise ValueError(f"flow.mask_threshold must be > 0 %diag/s, got {self.mask_threshold}")


class FlowStatsStage(Stage):
    """Measures motion on the decoded pairs; every statistic is resolution- and frame-rate-invariant."""

    name: ClassVar[str] = "flow"
    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self._flow: DisFlow | None = None

    def setup(self, device: str = "cpu") -> None:
        self._flow = DisFlow(self.config.dis_preset)

    def process_clip(self, clip: ClipRecord) -> None:
        if self._flow is None:
            raise RuntimeError("FlowStatsStage.setup() must run before process()")
        video = clip.video
        speeds = np.stack(
            [
                speed_pct_diag_per_s(self._flow.flow(first, second), dt)
                for (first, second), dt in zip(video.pairs, video.pair_dt_s, strict=True)
            ]
        )
        mean_speed_map = speeds.mean(axis=0)
        p50, p95, peak = np.percentile(speeds, [50, 95, FLOW_MAX_PERCENTILE])
        clip.fields.update(
            flow_backend=self._flow.name,
            flow_pairs=len(video.pairs),
            flow_mean=float(speeds.mean()),
            flow_p50=float(p50),
            flow_p95=float(p95),
            flow_max=float(peak),
            motion_fraction=float((mean_speed_map > self.config.mask_threshold).mean()),
            static_clip=bool(p95 < self.config.mask_threshold),
        )
