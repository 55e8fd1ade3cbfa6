"""Synthetic clips with known motion, for demos, tests and accuracy benchmarks.

A scene lives in world units of **%diag**: the frame at zoom 1 has a diagonal of 100 units,
so velocities in units/s are directly the %diag/s that motionpipe reports, and one scene
renders to the same motion at any resolution or frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

TEXTURE_PX_PER_UNIT = 8.0  # texture oversampling: 800 px per frame diagonal
FINEST_TEXTURE_UNITS = 1.0  # smallest texture detail, in %diag (4 px at 320x240)


@dataclass(frozen=True)
class SceneObject:
    """A textured disc moving at constant velocity relative to the background.

    start: centre at t=0 as fractions of the frame (x, y); radius: fraction of the frame's short side;
    velocity: (vx, vy) in %diag/s, in world (camera-compensated) terms.
    """

    start: tuple[float, float]
    radius: float
    velocity: tuple[float, float]

    @property
    def speed(self) -> float:
        return math.hypot(*self.velocity)


@dataclass(frozen=True)
class Scene:
    """Camera and objects over a textured plane.

    pan: camera velocity (vx, vy) in %diag/s; the background moves the opposite way on screen.
    zoom_rate: d ln(magnification) / dt in 1/s; positive zooms in.
    """

    seed: int
    pan: tuple[float, float] = (0.0, 0.0)
    zoom_rate: float = 0.0
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    @property
    def camera_type(self) -> str:
        """Ground-truth camera label in motionpipe's vocabulary."""
        vx, vy = self.pan
        if abs(self.zoom_rate) > 1e-9 and vx == vy == 0:
            return "zoom_in" if self.zoom_rate > 0 else "zoom_out"
        if vx == vy == 0:
            return "static"
        if vy == 0:
            return "pan_right" if vx > 0 else "pan_left"
        if vx == 0:
            return "tilt_down" if vy > 0 else "tilt_up"
        return "complex"


def noise_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Band-limited multi-octave colour noise: rich texture for flow, no detail finer than the render can show."""
    finest_px = FINEST_TEXTURE_UNITS * TEXTURE_PX_PER_UNIT
    texture = np.zeros((height, width, 3), np.float32)
    cell = finest_px
    weight = 1.0
    while cell < max(width, height) / 2:
        grid = rng.standard_normal((int(height / cell) + 2, int(width / cell) + 2, 3)).astype(np.float32)
        texture += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        cell *= 2
        weight *= 1.3
    texture -= texture.mean()
    texture /= 3 * texture.std() + 1e-6
    return np.clip(128 + 110 * texture, 0, 255).astype(np.uint8)


class SceneRenderer:
    """Renders a scene at any size and frame rate; textures are built once per scene."""

    def __init__(self, scene: Scene, aspect: float, duration_s: float) -> None:
        self.scene = scene
        self.aspect = aspect
        rng = np.random.default_rng(scene.seed)
        diag = math.hypot(aspect, 1.0)
        self.frame_units = (100.0 * aspect / diag, 100.0 / diag)  # frame width, height at zoom 1
        zoom_out = math.exp(max(0.0, -scene.zoom_rate) * duration_s)
        reach = [
            self.frame_units[i] * zoom_out / 2 + abs(scene.pan[i]) * duration_s + 10.0 for i in range(2)
        ]
        self.canvas_origin = (reach[0] * TEXTURE_PX_PER_UNIT, reach[1] * TEXTURE_PX_PER_UNIT)
        self.background = noise_texture(rng, int(2 * self.canvas_origin[0]), int(2 * self.canvas_origin[1]))
        self.sprites = [self._sprite(rng, obj) for obj in scene.objects]

    def _sprite(self, rng: np.random.Generator, obj: SceneObject) -> np.ndarray:
        """RGBA disc with its own tinted texture and an anti-aliased edge."""
        radius_px = obj.radius * min(self.frame_units) * TEXTURE_PX_PER_UNIT
        size = int(2 * radius_px + 4)
        rgb = noise_texture(rng, size, size).astype(np.float32)
        tint = rng.uniform(0.4, 1.6, 3).astype(np.float32)
        rgb = np.clip((rgb - 128) * 1.2 + 128 * tint, 0, 255)
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        distance = np.hypot(xx - size / 2, yy - size / 2)
        alpha = np.clip(radius_px - distance + 0.5, 0, 1)
        return np.dstack([rgb, 255 * alpha]).astype(np.uint8)

    def object_centre(self, obj: SceneObject, t: float) -> tuple[float, float]:
        """World position (units) of an object at time t; the camera starts centred on the origin."""
        return tuple((obj.start[i] - 0.5) * self.frame_units[i] + obj.velocity[i] * t for i in range(2))

    def frame(self, t: float, width: int, height: int) -> np.ndarray:
        """RGB frame at time ``t`` seconds, rendered at ``width x height``."""
        scene = self.scene
        zoom = math.exp(scene.zoom_rate * t)
        units_per_px = self.frame_units[0] / width / zoom
        camera = (scene.pan[0] * t, scene.pan[1] * t)
        scale = units_per_px * TEXTURE_PX_PER_UNIT

        def warp(image: np.ndarray, world_origin: tuple[float, float], image_origin: tuple[float, float]) -> np.ndarray:
            # Inverse map: frame pixel centre -> world -> image pixel.
            offset = [
                ((camera[i] - world_origin[i]) - ((width, height)[i] / 2 - 0.5) * units_per_px) * TEXTURE_PX_PER_UNIT
                + image_origin[i]
                - 0.5
                for i in range(2)
            ]
            matrix = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]], np.float32)
            return cv2.warpAffine(
                image, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
            )

        out = warp(self.background, (0.0, 0.0), self.canvas_origin).astype(np.float32)
        for obj, sprite in zip(scene.objects, self.sprites, strict=True):
            half = sprite.shape[0] / 2
            layer = warp(sprite, self.object_centre(obj, t), (half, half)).astype(np.float32)
            alpha = layer[..., 3:] / 255.0
            out = out * (1 - alpha) + layer[..., :3] * alpha
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def render(self, width: int, height: int, fps: float, num_frames: int) -> np.ndarray:
        """``uint8[T, H, W, 3]`` frames at times ``i / fps``."""
        return np.stack([self.frame(i / fps, width, height) for i in range(num_frames)])


def render_scene(scene: Scene, width: int, height: int, fps: float, num_frames: int) -> np.ndarray:
    """Render a scene once at the given size and rate."""
    return SceneRenderer(scene, width / height, num_frames / fps).render(width, height, fps, num_frames)
