"""Synthetic clips with known motion, for demos, tests and accuracy benchmarks.

A scene lives in world units of **%diag**: the frame at zoom 1 has a diagonal of 100 units,
so velocities in units/s are directly the %diag/s that motionpipe reports, and one scene
renders to the same motion at any resolution or frame rate. The background plane is at depth 1;
still layers nearer the camera (depth < 1) move 1/depth times as fast on screen when it translates
(parallax, which no homography explains); a zoom is the lens's, the same for every depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from motionpipe.stages.base import DecodedVideo
from motionpipe.stages.measuring_size import field_at_measuring_size, mask_at_measuring_size
from motionpipe.stages.residual_motion import along_and_across, unit

TEXTURE_PX_PER_UNIT = 8.0  # texture oversampling: 800 px per frame diagonal
FINEST_TEXTURE_UNITS = 1.0  # smallest texture detail, in %diag (4 px at 320x240)
ALPHA_WARP = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # how coverage (alpha) maps are warped into a frame
# A pan or tilt names the camera when it is this many times the other (decouple.dominance's default names measured
# motion alike): a pan 10 degrees off the horizontal is a pan, one at 45 degrees is complex.
CAMERA_TYPE_DOMINANCE = 2.0


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
class DepthLayer:
    """Still scenery in front of the background plane: textured blobs covering ``coverage`` of the frame at
    ``depth`` (0 < depth < 1, the background being 1), drawn over the background and the objects."""

    depth: float
    coverage: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.depth <= 1 or not 0 < self.coverage < 1:
            raise ValueError(f"a layer needs 0 < depth <= 1 and 0 < coverage < 1, got {self}")


@dataclass(frozen=True)
class Scene:
    """Camera and objects over a textured plane, with optional nearer still layers.

    pan: camera velocity (vx, vy) in %diag/s; the background moves the opposite way on screen.
    zoom_rate: d ln(magnification) / dt in 1/s; positive zooms in.
    layers: still scenery nearer than the background, farthest first.
    """

    seed: int
    pan: tuple[float, float] = (0.0, 0.0)
    zoom_rate: float = 0.0
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)
    layers: tuple[DepthLayer, ...] = field(default_factory=tuple)

    @property
    def camera_type(self) -> str:
        """Ground-truth camera label in motionpipe's vocabulary."""
        vx, vy = self.pan
        if abs(self.zoom_rate) > 1e-9 and vx == vy == 0:
            return "zoom_in" if self.zoom_rate > 0 else "zoom_out"
        if vx == vy == 0:
            return "static"
        if abs(vx) >= CAMERA_TYPE_DOMINANCE * abs(vy):
            return "pan_right" if vx > 0 else "pan_left"
        if abs(vy) >= CAMERA_TYPE_DOMINANCE * abs(vx):
            return "tilt_down" if vy > 0 else "tilt_up"
        return "complex"

    def objects_move_as_parallax(self, slope: float) -> bool:
        """Whether the camera translates past nearer layers and every object moves, against the background, within
        ``slope`` (across its heading over along it) of the way the scenery moves on screen, the way nearer still
        scenery's parallax runs: at constant velocities, in any two frames, such an object is still scenery nearer
        than the background, and the flow alone cannot tell it from that (benchmarks/decouple.py reports the
        scenes apart)."""
        scenery = -np.asarray(self.pan, np.float64)  # the background moves against the camera on screen
        if not self.layers or not self.objects or not scenery.any():
            return False
        along, across = along_and_across(np.array([obj.velocity for obj in self.objects]), unit(scenery))
        return bool(np.all(across < slope * along))


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
        self.canvas_origins = [self._canvas_origin(zoom_out, duration_s, 1.0)]
        self.canvas_origins += [self._canvas_origin(zoom_out, duration_s, layer.depth) for layer in scene.layers]
        self.background = self._canvas(rng, self.canvas_origins[0])
        self.sprites = [self._sprite(rng, obj) for obj in scene.objects]
        self.layer_images = [
            self._layer(rng, layer, origin) for layer, origin in zip(scene.layers, self.canvas_origins[1:], strict=True)
        ]

    def _canvas_origin(self, zoom_out: float, duration_s: float, depth: float) -> tuple[float, float]:
        """Canvas px of the world origin, for a canvas that the frame never leaves at this depth."""
        reach = [
            self.frame_units[i] * zoom_out / 2 + abs(self.scene.pan[i]) * duration_s / depth + 10.0 for i in range(2)
        ]
        return reach[0] * TEXTURE_PX_PER_UNIT, reach[1] * TEXTURE_PX_PER_UNIT

    @staticmethod
    def _canvas(rng: np.random.Generator, origin: tuple[float, float]) -> np.ndarray:
        return noise_texture(rng, int(2 * origin[0]), int(2 * origin[1]))

    def _layer(self, rng: np.random.Generator, layer: DepthLayer, origin: tuple[float, float]) -> np.ndarray:
        """RGBA canvas: a textured layer cut into smooth blobs (a tenth of the frame across) covering its share."""
        rgb = self._canvas(rng, origin).astype(np.float32)
        tint = rng.uniform(0.5, 1.5, 3).astype(np.float32)
        rgb = np.clip((rgb - 128) * 1.3 + 128 * tint, 0, 255)
        blob_px = 0.1 * min(self.frame_units) * TEXTURE_PX_PER_UNIT
        height, width = rgb.shape[:2]
        grid = rng.standard_normal((int(height / blob_px) + 2, int(width / blob_px) + 2)).astype(np.float32)
        smooth = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        cut = np.quantile(smooth[:: max(1, height // 200), :: max(1, width // 200)], 1 - layer.coverage)
        alpha = np.clip((smooth - cut) * 8 + 0.5, 0, 1)  # a soft edge a few canvas px wide
        return np.dstack([rgb, 255 * alpha]).astype(np.uint8)

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

    def _inverse_warp(
        self,
        t: float,
        width: int,
        height: int,
        world_origin: tuple[float, float],
        image_origin: tuple[float, float],
        depth: float = 1.0,
    ) -> np.ndarray:
        """Affine map frame pixel centre -> world (the camera's offset scaled by 1/depth) -> image pixel."""
        zoom = math.exp(self.scene.zoom_rate * t)
        units_per_px = self.frame_units[0] / width / zoom
        camera = (self.scene.pan[0] * t / depth, self.scene.pan[1] * t / depth)
        scale = units_per_px * TEXTURE_PX_PER_UNIT
        offset = [
            ((camera[i] - world_origin[i]) - ((width, height)[i] / 2 - 0.5) * units_per_px) * TEXTURE_PX_PER_UNIT
            + image_origin[i]
            - 0.5
            for i in range(2)
        ]
        return np.array([[scale, 0, offset[0]], [0, scale, offset[1]]], np.float32)

    def frame(self, t: float, width: int, height: int) -> np.ndarray:
        """RGB frame at time ``t`` seconds, rendered at ``width x height``."""

        def warp(
            image: np.ndarray, world_origin: tuple[float, float], image_origin: tuple[float, float], depth: float = 1.0
        ) -> np.ndarray:
            return cv2.warpAffine(
                image,
                self._inverse_warp(t, width, height, world_origin, image_origin, depth),
                (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
            )

        def over(below: np.ndarray, rgba: np.ndarray) -> np.ndarray:
            alpha = rgba[..., 3:].astype(np.float32) / 255.0
            return below * (1 - alpha) + rgba[..., :3] * alpha

        out = warp(self.background, (0.0, 0.0), self.canvas_origins[0]).astype(np.float32)
        for obj, sprite in zip(self.scene.objects, self.sprites, strict=True):
            half = sprite.shape[0] / 2
            out = over(out, warp(sprite, self.object_centre(obj, t), (half, half)))
        for layer, image, origin in zip(self.scene.layers, self.layer_images, self.canvas_origins[1:], strict=True):
            out = over(out, warp(image, (0.0, 0.0), origin, layer.depth))
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def visible_object_areas(self, t: float, width: int = 160, height: int = 120) -> list[float]:
        """Pixels of each object seen at time ``t`` in a ``width x height`` frame: what the frame's edge, the objects
        drawn after it and the nearer layers leave of it (a ground truth weighted by what a camera sees)."""
        return [float(seen.sum()) for seen in self.visible_object_coverage(t, width, height)]

    def visible_object_coverage(self, t: float, width: int, height: int) -> list[np.ndarray]:
        """Each object's coverage (0-1) of a ``width x height`` frame at time ``t`` as seen: less what the objects
        drawn after it and the nearer layers hide (true object masks, for telling detection from measurement)."""
        # alpha of everything in the frame, in drawing order: objects, then layers
        covers = self._object_alphas(t, width, height) + self._layer_alphas(t, width, height)
        visible = []
        for index in range(len(self.scene.objects)):
            seen = covers[index]
            for above in covers[index + 1 :]:
                seen = seen * (1 - above)
            visible.append(seen)
        return visible

    def mean_inverse_depth(self, t: float, width: int = 160, height: int = 120) -> float:
        """Mean of 1/depth over the frame at time ``t`` (1 without layers): the factor by which the camera's
        translation moves the frame on screen on average."""
        inverse = np.ones((height, width), np.float32)
        for layer, weight in zip(self.scene.layers, self._layer_alphas(t, width, height), strict=True):
            inverse = inverse * (1 - weight) + weight / layer.depth
        return float(inverse.mean())

    def _layer_alphas(self, t: float, width: int, height: int) -> list[np.ndarray]:
        """Each nearer layer's coverage (0-1) of a ``width x height`` frame at time ``t``, farthest first."""
        alphas = []
        for layer, image, origin in zip(self.scene.layers, self.layer_images, self.canvas_origins[1:], strict=True):
            matrix = self._inverse_warp(t, width, height, (0.0, 0.0), origin, layer.depth)
            alphas.append(cv2.warpAffine(image[..., 3], matrix, (width, height), flags=ALPHA_WARP) / np.float32(255))
        return alphas

    def surfaces(self, t: float, width: int, height: int) -> np.ndarray:
        """``int[h, w]``: which surface each pixel of a ``width x height`` frame at time ``t`` shows (over half its
        coverage): 0 the background, ``1 + k`` the k-th nearer layer, ``1 + len(layers) + k`` the k-th object."""
        shown = np.zeros((height, width), np.int32)
        first_object = 1 + len(self.scene.layers)
        alphas = [(first_object + k, alpha) for k, alpha in enumerate(self._object_alphas(t, width, height))]
        alphas += [(1 + k, alpha) for k, alpha in enumerate(self._layer_alphas(t, width, height))]  # drawn last
        for surface, alpha in alphas:
            shown[alpha > 0.5] = surface
        return shown

    def true_flow(self, start: float, end: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The motion from the frame at ``start`` seconds to the one at ``end`` of the surface each pixel shows at
        ``start`` -> ``(float32[h, w, 2] flow in px, bool[h, w] seen)``: ``seen`` where the same surface is on top
        where the pixel lands (not hidden by a nearer one, not out of the frame). Flow benchmarks read estimated flow
        against it (benchmarks/decouple.py ``--flow-error``)."""
        shown = self.surfaces(start, width, height)
        grid = np.dstack(np.meshgrid(np.arange(width), np.arange(height))).astype(np.float64)
        homogeneous = np.dstack([grid, np.ones((height, width))])
        flow = np.zeros((height, width, 2))
        for surface, (before, after) in enumerate(self._surface_warps(start, end, width, height)):
            on = shown == surface
            texture = homogeneous[on] @ before.T  # the texture point each pixel shows, fixed to its surface
            flow[on] = np.linalg.solve(after[:, :2], (texture - after[:, 2]).T).T - grid[on]
        landed = np.rint(grid + flow).astype(np.int64)
        inside = (landed[..., 0] >= 0) & (landed[..., 0] < width) & (landed[..., 1] >= 0) & (landed[..., 1] < height)
        later = self.surfaces(end, width, height)
        seen = inside & (later[np.clip(landed[..., 1], 0, height - 1), np.clip(landed[..., 0], 0, width - 1)] == shown)
        return flow.astype(np.float32), seen

    def _surface_warps(self, start: float, end: float, width: int, height: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per surface (as ``surfaces`` numbers them), its frame-to-texture maps at ``start`` and ``end``."""
        background = self.canvas_origins[0]
        warps = [tuple(self._inverse_warp(t, width, height, (0.0, 0.0), background) for t in (start, end))]
        warps += [
            tuple(self._inverse_warp(t, width, height, (0.0, 0.0), origin, layer.depth) for t in (start, end))
            for layer, origin in zip(self.scene.layers, self.canvas_origins[1:], strict=True)
        ]
        for obj, sprite in zip(self.scene.objects, self.sprites, strict=True):
            warps.append(tuple(self._object_warp(obj, sprite, t, width, height) for t in (start, end)))
        return [(before.astype(np.float64), after.astype(np.float64)) for before, after in warps]

    def _object_alphas(self, t: float, width: int, height: int) -> list[np.ndarray]:
        """Each object's coverage (0-1) of a ``width x height`` frame at time ``t``, before anything hides it."""
        return [
            cv2.warpAffine(
                sprite[..., 3], self._object_warp(obj, sprite, t, width, height), (width, height), flags=ALPHA_WARP
            )
            / np.float32(255)
            for obj, sprite in zip(self.scene.objects, self.sprites, strict=True)
        ]

    def _object_warp(self, obj: SceneObject, sprite: np.ndarray, t: float, width: int, height: int) -> np.ndarray:
        """The frame-to-sprite map of an object at time ``t`` (the sprite centred on the object)."""
        half = sprite.shape[0] / 2
        return self._inverse_warp(t, width, height, self.object_centre(obj, t), (half, half))

    def pair_flows(self, video: DecodedVideo) -> tuple[np.ndarray, np.ndarray]:
        """A decoded clip's measuring pairs' rendered flow (``true_flow``) at the measuring size, in half-size px as
        the flow stage gives it, and the pixels whose surface stays in view: ``float32[P, h, w, 2]``,
        ``bool[P, h, w]``: what the decoupling reads given a perfect flow."""
        width, height = video.size  # the processing size, which the measuring size halves
        flows, seen = zip(
            *(
                self.true_flow(video.times_s[first], video.times_s[second], width, height)
                for first, second in video.pairs
            ),
            strict=True,
        )
        return field_at_measuring_size(np.stack(flows)), mask_at_measuring_size(np.stack(seen))

    def render(self, width: int, height: int, fps: float, num_frames: int) -> np.ndarray:
        """``uint8[T, H, W, 3]`` frames at times ``i / fps``."""
        return np.stack([self.frame(i / fps, width, height) for i in range(num_frames)])


def render_scene(scene: Scene, width: int, height: int, fps: float, num_frames: int) -> np.ndarray:
    """Render a scene once at the given size and rate."""
    return SceneRenderer(scene, width / height, num_frames / fps).render(width, height, fps, num_frames)
