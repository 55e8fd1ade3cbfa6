"""Point trackers behind one interface: query points on the first sample -> their positions and
visibility at every sample.

``flow_chain`` (built in) reads the points off the dense tracks chained from the flow stage.
``cotracker`` runs Meta's CoTracker, which is not on PyPI: it is used when the ``cotracker`` package
is importable or a local torch.hub repo dir is configured, with a local checkpoint.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from motionpipe.stages.base import ClipRecord
from motionpipe.stages.flow_backends import MissingWeightsError
from motionpipe.stages.flow_checks import sample_field
from motionpipe.stages.measuring_size import processing_pixel

QUERY_EDGE_PX = 2  # measuring px kept between a query point and its object mask's edge
QUERY_EDGE_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * QUERY_EDGE_PX + 1, 2 * QUERY_EDGE_PX + 1))


@dataclass
class PointTracks:
    """Tracks of N query points over the T samples: (x, y) px at processing size, and visibility."""

    positions: np.ndarray  # float32[N, T, 2]
    visibility: np.ndarray  # bool[N, T]


class Tracker(ABC):
    name: str

    def setup(self, device: str) -> None:
        """Load weights, once per worker."""

    @abstractmethod
    def track(self, clip: ClipRecord, queries: np.ndarray) -> PointTracks:
        """Track ``float32[N, 2]`` (x, y) points given on the first sample through every sample."""


class FlowChainTracker(Tracker):
    """Bilinear lookup of the dense tracks f(0->i) at the query points; visibility from the chain's checks."""

    name = "flow_chain"

    def track(self, clip: ClipRecord, queries: np.ndarray) -> PointTracks:
        dense = clip.tracks
        if dense is None:
            raise RuntimeError("the flow_chain tracker needs dense tracks: enable the tracks stage")
        points = queries.astype(np.float32)[None]  # [1, N, 2]: a one-row image of positions
        displacement = np.stack([sample_field(field, points)[0] for field in dense.displacement])  # [T, N, 2]
        rows = np.clip(np.round(queries[:, 1]).astype(int), 0, dense.visibility.shape[1] - 1)
        cols = np.clip(np.round(queries[:, 0]).astype(int), 0, dense.visibility.shape[2] - 1)
        positions = queries[:, None, :].astype(np.float32) + displacement.transpose(1, 0, 2)
        return PointTracks(positions=positions, visibility=dense.visibility[:, rows, cols].T.copy())


class CoTracker(Tracker):
    """CoTracker's offline predictor: ``model(video[B, T, 3, H, W], queries[B, N, 3])`` -> tracks, visibility."""

    def __init__(self, checkpoint: str, repo: str = "", device: str = "cpu") -> None:
        if not checkpoint or not Path(checkpoint).expanduser().is_file():
            raise MissingWeightsError(
                "the cotracker tracker needs a local checkpoint (--set tracking.cotracker_checkpoint=PATH, e.g. "
                "scaled_offline.pth downloaded elsewhere); this machine cannot download it"
            )
        if not repo and importlib.util.find_spec("cotracker") is None:
            raise MissingWeightsError(
                "CoTracker is not on PyPI: install it from its repository (pip install -e co-tracker) or set "
                "tracking.cotracker_repo to a local clone usable by torch.hub"
            )
        self.checkpoint, self.repo, self.device = checkpoint, repo, device
        self.name = "cotracker"
        self._model = None

    def setup(self, device: str) -> None:
        import torch

        if self.repo:
            model = torch.hub.load(self.repo, "cotracker3_offline", source="local", pretrained=False)
            model.model.load_state_dict(torch.load(self.checkpoint, map_location="cpu", weights_only=True))
        else:
            from cotracker.predictor import CoTrackerPredictor

            model = CoTrackerPredictor(checkpoint=self.checkpoint)
        self._model = model.to(self.device).eval()

    def track(self, clip: ClipRecord, queries: np.ndarray) -> PointTracks:
        import torch

        frames = clip.video.frames[clip.video.samples]
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float().to(self.device)
        query = torch.zeros((1, len(queries), 3), device=self.device)
        query[0, :, 1:] = torch.from_numpy(queries.astype(np.float32))
        with torch.inference_mode():
            tracks, visibility = self._model(video, queries=query)
        return PointTracks(
            positions=tracks[0].permute(1, 0, 2).cpu().numpy().astype(np.float32),
            visibility=(visibility[0].reshape(len(frames), -1).T > 0.5).cpu().numpy(),
        )


def object_and_background_queries(
    mask: np.ndarray, grid_size: int, object_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """MotionStone's query points on the first sample, from its object ``mask`` (measuring size): up to
    ``object_points`` spread over the mask and ``grid_size`` squared over the background (a grid alone puts few
    points on a small object, or none on the background when a mask covers most of the frame). -> (``float32[N,
    2]`` (x, y) processing px, ``bool[N]`` inside the mask). Points keep ``QUERY_EDGE_PX`` measuring px off the
    mask's edge, where masks and flow are least sure, unless a side is too thin to leave any."""
    inside = spread_over(cv2.erode(mask.astype(np.uint8), QUERY_EDGE_KERNEL).astype(bool), mask, object_points)
    near_object = cv2.dilate(mask.astype(np.uint8), QUERY_EDGE_KERNEL).astype(bool)
    outside = spread_over(~near_object, ~mask, grid_size**2)
    return np.concatenate([inside, outside]), np.arange(len(inside) + len(outside)) < len(inside)


def spread_over(region: np.ndarray, fallback: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` (x, y) processing px evenly spaced, in raster order, over the measuring pixels of ``region``
    (of ``fallback`` where ``region`` is empty)."""
    ys, xs = np.nonzero(region if region.any() else fallback)
    chosen = np.unique(np.linspace(0, len(ys) - 1, min(count, len(ys))).round().astype(int))
    return processing_pixel(np.stack([xs[chosen], ys[chosen]], axis=-1)).astype(np.float32).reshape(-1, 2)
