"""Object masks behind one interface: which pixels of each measuring pair belong to moving objects.

``motion_regions`` (built in, no weights): connected regions of large camera-compensated speed,
cleaned morphologically. ``sam2``: SAM2's video predictor, prompted on the first sample with
points where camera-compensated motion is high, spread over the moving regions (MotiF, appendix
A.1), its masks propagated through the samples. Weights come from a local checkpoint only.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from motionpipe.stages.base import DecodedVideo
from motionpipe.stages.conditions import spread_points
from motionpipe.stages.flow_backends import RANDOM_WEIGHTS_MARK, MissingWeightsError
from motionpipe.stages.measuring_size import mask_at_measuring_size, processing_pixel

MORPH_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))  # at the measuring size (5 x 5 at full size)
Propagate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(frames ``uint8[T, H, W, 3]``, prompt points ``float32[N, 2]`` (x, y) on the first) -> masks ``bool[T, H, W]``."""


def moving_regions(residual_speed: np.ndarray, threshold: float, min_area: float) -> np.ndarray:
    """Residual speed above ``threshold`` (%diag/s), opened and closed, components under ``min_area`` dropped."""
    candidate = (residual_speed > threshold).astype(np.uint8)
    candidate = cv2.morphologyEx(
        cv2.morphologyEx(candidate, cv2.MORPH_OPEN, MORPH_KERNEL), cv2.MORPH_CLOSE, MORPH_KERNEL
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area * candidate.size
    return keep[labels]


class Segmenter(ABC):
    """Object masks per measuring pair, from the clip's frames and the pairs' object evidence (residual speeds)."""

    name: str

    def __init__(self, min_area: float) -> None:
        self.min_area = min_area

    def setup(self, device: str) -> None:
        """Load weights, once per worker."""

    @abstractmethod
    def object_masks(
        self, video: DecodedVideo, residual_speeds: np.ndarray, reliable: np.ndarray, thresholds: np.ndarray
    ) -> np.ndarray:
        """``bool[P, h, w]`` for residual speeds ``[P, h, w]`` in %diag/s at the measuring size; ``reliable``
        marks pixels whose flow can be trusted; ``thresholds[P]``: the speed above which a pair's pixel may move
        by itself."""


class MotionRegionSegmenter(Segmenter):
    name = "motion_regions"

    def object_masks(
        self, video: DecodedVideo, residual_speeds: np.ndarray, reliable: np.ndarray, thresholds: np.ndarray
    ) -> np.ndarray:
        return np.stack(
            [
                moving_regions(speed, threshold, self.min_area)
                for speed, threshold in zip(residual_speeds, thresholds, strict=True)
            ]
        )


class Sam2Segmenter(Segmenter):
    """SAM2 video predictor over the samples; real ``sam2`` package code, local checkpoint."""

    def __init__(
        self,
        min_area: float,
        config: str,
        checkpoint: str,
        allow_random_weights: bool = False,
        image_size: int = 1024,
        max_prompts: int = 8,
    ) -> None:
        super().__init__(min_area)
        self.config, self.checkpoint = config, checkpoint
        self.image_size, self.max_prompts = image_size, max_prompts
        require_sam2_checkpoint(checkpoint, allow_random_weights)
        self.name = f"sam2:{Path(config).stem}" + ("" if checkpoint else RANDOM_WEIGHTS_MARK)
        self._predictor = None
        self._served: Propagate | None = None

    def serve_from(self, propagate: Propagate) -> None:
        """Use a SAM2 that lives elsewhere (a shared segment server): this worker then loads no model."""
        self._served = propagate

    def setup(self, device: str) -> None:
        if self._served is not None:
            return
        import torch
        from sam2.build_sam import build_sam2_video_predictor  # sets up a global Hydra: import only here

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random weights (tests) are the same in every process: served == in-worker
            self._predictor = build_sam2_video_predictor(
                self.config,
                self.checkpoint or None,
                device=device,
                hydra_overrides_extra=[f"++model.image_size={self.image_size}"],
            )

    def prompts(self, residual_speed: np.ndarray, reliable: np.ndarray, threshold: float) -> np.ndarray:
        """(x, y) processing px on the first sample, from measuring-size maps: high camera-compensated motion,
        spread over moving regions, away from their edges and from occlusions (where residual flow is an
        error, not motion)."""
        regions = moving_regions(residual_speed, threshold, self.min_area)
        interior = cv2.erode(regions.astype(np.uint8), MORPH_KERNEL, iterations=3).astype(bool)
        points = spread_points(residual_speed, interior & reliable, self.max_prompts)
        return processing_pixel(points[:, ::-1]).astype(np.float32)

    def object_masks(
        self, video: DecodedVideo, residual_speeds: np.ndarray, reliable: np.ndarray, thresholds: np.ndarray
    ) -> np.ndarray:
        propagate = self._served or (self.propagate if self._predictor is not None else None)
        if propagate is None:
            raise RuntimeError("Sam2Segmenter.setup() must run before object_masks()")
        points = self.prompts(residual_speeds[0], reliable[0], float(thresholds[0]))
        if len(points) == 0:
            return np.zeros(residual_speeds.shape, bool)
        sample_masks = mask_at_measuring_size(propagate(video.frames[video.samples], points))
        # each pair takes the mask of the sample nearest its first frame
        nearest = np.abs(video.pairs[:, :1] - video.samples[None, :]).argmin(axis=1)
        masks = sample_masks[nearest]
        assert masks.shape == residual_speeds.shape
        return masks

    def propagate(self, frames: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Union of the masks of one object per prompt point (first frame), for every frame."""
        import torch

        predictor = self._predictor
        masks = np.zeros(frames.shape[:3], bool)
        with (
            tempfile.TemporaryDirectory() as folder,
            torch.inference_mode(),
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),  # sam2 draws its own progress bars
        ):
            warnings.simplefilter("ignore")  # sam2 warns per frame when its optional CUDA extension is absent
            for index, frame in enumerate(frames):
                cv2.imwrite(str(Path(folder) / f"{index:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            state = predictor.init_state(video_path=folder)
            for obj_id, point in enumerate(points):
                predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, points=point[None], labels=[1])
            for frame_index, _, logits in predictor.propagate_in_video(state):
                masks[frame_index] = (logits[:, 0] > 0).any(dim=0).cpu().numpy()
        return masks


def require_sam2_checkpoint(checkpoint: str, allow_random_weights: bool) -> None:
    """Fail at start-up when SAM2 is asked for without a checkpoint (unless random weights are allowed)."""
    if checkpoint and not Path(checkpoint).expanduser().is_file():
        raise MissingWeightsError(f"SAM2 checkpoint {checkpoint} does not exist")
    if not checkpoint and not allow_random_weights:
        raise MissingWeightsError(
            "the sam2 segmenter needs weights and this machine cannot download them: download a SAM2 checkpoint "
            "(e.g. sam2.1_hiera_tiny.pt) elsewhere and pass --sam2-checkpoint PATH with --set "
            "decouple.sam2_config=configs/sam2.1/sam2.1_hiera_t.yaml; --allow-random-weights is for tests only"
        )
