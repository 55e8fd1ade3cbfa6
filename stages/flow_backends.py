"""Optical-flow backends behind one interface: batches of frame pairs in, flow fields out.

``dis`` and ``farneback`` are classical and run on CPU without weights (DIS is the default).
``raft_small`` and ``raft_large`` are torchvision's RAFT, with weights from a local file or
torchvision's cache only: a missing file is an error at start-up, never silent random weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from motionpipe.stages.measuring_size import STRIDE, field_at_measuring_size

DIS_PRESETS: dict[str, tuple[int, dict[str, int]]] = {
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, {}),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, {}),
    # OpenCV's medium with patches every 6 px instead of 3, 16 descent and 3 refinement iterations
    # (not 25 and 5): 2.2x cheaper at 341x256; Sintel easy / medium EPE at that size 0.25 / 1.14 px
    # against medium's 0.23 / 1.07 and fast's 0.44 / 1.69 (fast computes at a quarter of the size);
    # the same decoupled-motion accuracy as medium (benchmarks/RESULTS.md).
    "balanced": (
        cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        {"PatchStride": 6, "GradientDescentIterations": 16, "VariationalRefinementIterations": 3},
    ),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, {}),
}
RAFT_VARIANTS = ("raft_small", "raft_large")
RAFT_MIN_SIDE = 128  # RAFT's correlation pyramid needs feature maps of 16+ cells at 1/8 scale
RANDOM_WEIGHTS_MARK = "+random-weights"


class MissingWeightsError(RuntimeError):
    """A neural backend was asked for but its weights are not on this machine."""


class FlowBackend(ABC):
    """Dense flow for batches of RGB frame pairs; ``name`` says which backend made a value."""

    name: str

    @abstractmethod
    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """``uint8[B, H, W, 3]`` pairs -> ``float32[B, H, W, 2]`` flow in px from ``first`` to ``second``."""

    def flow_at_measuring_size(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The flow read at the measuring pixels, in half-size px (stages/measuring_size.py): for pairs analysed
        only there, a quarter of the field to keep and, from a flow server, to ship back."""
        return field_at_measuring_size(self.flow(first, second))

    def flow_of_halved_frames(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow of the frames halved by a Gaussian pyramid step (each smooths before it halves), in half-size
        px: a quarter of the pixels, for uses that tolerate a coarser field (the forward-backward check)."""
        return self.flow(*(np.stack([cv2.pyrDown(frame) for frame in frames]) for frames in (first, second)))

    def flow_both_ways(self, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward and backward flow of each pair, in one batch (what visibility checks need)."""
        both = self.flow(np.concatenate([first, second]), np.concatenate([second, first]))
        return both[: len(first)], both[len(first) :]


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class DisFlow(FlowBackend):
    """OpenCV DIS (dense inverse search): the CPU default, a few ms per pair at 256 px; takes RGB or grey frames."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(DIS_PRESETS)}")
        self.name = f"dis:{preset}"
        base, settings = DIS_PRESETS[preset]
        self._dis = cv2.DISOpticalFlow_create(base)
        for setting, value in settings.items():
            getattr(self._dis, f"set{setting}")(value)

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.stack([self._dis.calc(_gray(a), _gray(b), None) for a, b in zip(first, second, strict=True)])


class FarnebackFlow(FlowBackend):
    """OpenCV Farneback polynomial-expansion flow: slower than DIS, kept as a classical reference."""

    name = "farneback"

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 4, 15, 3, 5, 1.2, 0)
                for a, b in zip(first, second, strict=True)
            ]
        )


def raft_weights_path(variant: str, weights: str) -> Path | None:
    """The RAFT state-dict file to load: ``weights`` if given, else torchvision's cached download."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"flow weights file {path} does not exist")
        return path
    import torch
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    enum = {"raft_small": Raft_Small_Weights, "raft_large": Raft_Large_Weights}[variant]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.DEFAULT.url).name
    return cached if cached.is_file() else None


def missing_raft_weights_message(variant: str) -> str:
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    url = {"raft_small": Raft_Small_Weights, "raft_large": Raft_Large_Weights}[variant].DEFAULT.url
    return (
        f"no weights for {variant}: this machine cannot download them. Download {url} elsewhere and pass "
        f"--flow-weights PATH (or --set flow.weights=PATH), or put the file in torch's hub cache "
        f"(~/.cache/torch/hub/checkpoints/). --allow-random-weights runs with random weights, for tests only."
    )


def require_raft_weights(variant: str, weights: str, allow_random_weights: bool) -> Path | None:
    """The weights file to load, or None when random weights are explicitly allowed; else a clear error."""
    path = raft_weights_path(variant, weights)
    if path is None and not allow_random_weights:
        raise MissingWeightsError(missing_raft_weights_message(variant))
    return path


def load_state_dict(path: Path) -> dict:
    """A state dict from ``.safetensors`` or a torch file loaded with ``weights_only`` (no arbitrary unpickling)."""
    import torch

    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise MissingWeightsError(f"{path} is safetensors but the safetensors package is missing") from error
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def pad_to_raft_size(height: int, width: int) -> tuple[int, int]:
    """Padded size: multiples of 8 and at least RAFT_MIN_SIDE on each side."""
    return max(RAFT_MIN_SIDE, -(-height // 8) * 8), max(RAFT_MIN_SIDE, -(-width // 8) * 8)


class RaftFlow(FlowBackend):
    """torchvision RAFT, batched; frames are edge-padded to RAFT's size constraints and cropped back."""

    def __init__(
        self,
        variant: str,
        weights: str = "",
        allow_random_weights: bool = False,
        device: str = "cpu",
        batch_size: int = 8,
        precision: str = "fp32",
        iterations: int = 12,
    ) -> None:
        import torch
        from torchvision.models import optical_flow

        if variant not in RAFT_VARIANTS:
            raise ValueError(f"unknown RAFT variant {variant!r}; choose one of {RAFT_VARIANTS}")
        path = require_raft_weights(variant, weights, allow_random_weights)
        model = getattr(optical_flow, variant)(weights=None)
        if path is not None:
            model.load_state_dict(load_state_dict(path))
        self.name = variant if path is not None else variant + RANDOM_WEIGHTS_MARK
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.batch_size = batch_size
        self.iterations = iterations
        self.autocast_dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._flows(first, second, stride=1)

    def flow_at_measuring_size(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Read at the measuring pixels on the device: a quarter of the field crosses to the host."""
        return self._flows(first, second, stride=STRIDE)

    def _flows(self, first: np.ndarray, second: np.ndarray, stride: int) -> np.ndarray:
        return np.concatenate(
            [
                self._batch(first[start : start + self.batch_size], second[start : start + self.batch_size], stride)
                for start in range(0, len(first), self.batch_size)
            ]
        )

    def _batch(self, first: np.ndarray, second: np.ndarray, stride: int) -> np.ndarray:
        """Flows of the pairs read at every ``stride``-th pixel, in px of that grid."""
        import torch

        height, width = first.shape[1:3]
        padded_height, padded_width = pad_to_raft_size(height, width)

        def prepare(frames: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            pad = (0, padded_width - width, 0, padded_height - height)
            return torch.nn.functional.pad(tensor, pad, mode="replicate")

        use_autocast = self.autocast_dtype is not None and self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(self.device.type, self.autocast_dtype, enabled=use_autocast):
            flows = self.model(prepare(first), prepare(second), num_flow_updates=self.iterations)[-1]
        field = flows[:, :, :height:stride, :width:stride].permute(0, 2, 3, 1).float()
        return (field * (1 / stride) if stride > 1 else field).cpu().numpy()
