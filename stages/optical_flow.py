"""Classical optical flow on CPU: OpenCV's DIS (dense inverse search), the CPU default backend."""

from __future__ import annotations

import cv2
import numpy as np

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DisFlow:
    """DIS flow between two RGB frames. One instance per worker: DIS keeps scratch buffers."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(DIS_PRESETS)}")
        self.name = f"dis:{preset}"
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow ``float32[H, W, 2]`` in px, mapping pixels of ``first`` to ``second``."""
        gray_first = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)
        gray_second = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY)
        return self._dis.calc(gray_first, gray_second, None)
