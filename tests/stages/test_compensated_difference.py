"""Camera-compensated differences: under a pan, the background cancels and the moving object remains."""

from __future__ import annotations

import numpy as np

from motionpipe.pipeline.synthetic_video import Scene, SceneObject, SceneRenderer
from motionpipe.stages.compensated_difference import camera_affine, compensated_differences


def render(scene: Scene, width: int = 112, height: int = 64, frames: int = 8) -> np.ndarray:
    return SceneRenderer(scene, width / height, 1.0).render(width, height, 8.0, frames).astype(np.float32) / 255


def test_a_pan_is_fitted_and_cancels():
    frames = render(Scene(seed=4, pan=(12.0, 0.0)))
    grey = frames.mean(axis=3)
    shift_px = 12.0 / 100 * np.hypot(112, 64) / 8  # %diag/s -> px between 8-fps samples
    assert abs(abs(camera_affine(grey[2], grey[3])[0, 2]) - shift_px) < 0.15
    plain = np.abs(np.diff(frames, axis=0)).mean()
    compensated = np.abs(compensated_differences(frames)[1:]).mean()
    assert compensated < 0.25 * plain


def test_the_moving_object_remains_when_the_camera_is_cancelled():
    def interior_residual(object_velocity: tuple[float, float]) -> float:
        scene = Scene(seed=5, pan=(12.0, 0.0), objects=(SceneObject((0.5, 0.5), 0.2, object_velocity),))
        residual = np.abs(compensated_differences(render(scene))[1:])
        return float(residual[:, 8:-8, 8:-8].mean())  # new content enters at the borders

    assert interior_residual((0.0, 15.0)) > 3 * interior_residual((0.0, 0.0))


def test_a_flat_clip_has_no_difference():
    frames = np.full((4, 32, 48, 3), 0.5, np.float32)
    assert not compensated_differences(frames).any()
