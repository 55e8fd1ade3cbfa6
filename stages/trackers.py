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

import numpy as np

from stages.base import ClipRecord
from stages.flow_backends import MissingWeightsError
from stages.flow_checks import sample_field


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


def grid_queries(width: int, height: int, grid_size: int) -> np.ndarray:
    """``grid_size x grid_size`` (x, y) points at the centres of a regular grid over the frame."""
    xs = (np.arange(grid_size) + 0.5) * width / grid_size
    ys = (np.arange(grid_size) + 0.5) * height / grid_size
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
