"""``motionpipe sample-data``: WebDataset shards of synthetic clips with known motion.

The ground truth goes to ``OUT/ground_truth.json``, outside the shards, so annotating the
shards cannot peek at it. Scenes cycle through every camera motion crossed with object motion.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import webdataset as wds

from motionpipe.pipeline.run_outputs import write_atomically, write_json_atomically
from motionpipe.pipeline.synthetic_video import Scene, SceneObject, SceneRenderer
from motionpipe.pipeline.video_encoding import encode_video
from motionpipe.stages.decouple import mean_radius_pct_diag

CAMERA_MOTIONS = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")
OBJECT_MOTIONS = ("none", "slow", "fast", "two")
PAN_SPEED_RANGE = (5.0, 20.0)  # %diag/s
ZOOM_RATE_RANGE = (0.1, 0.3)  # 1/s
SLOW_OBJECT_RANGE = (3.0, 8.0)  # %diag/s
FAST_OBJECT_RANGE = (12.0, 20.0)  # %diag/s


@dataclass(frozen=True)
class SampleSpec:
    """Size, rate and length of every generated clip."""

    width: int = 320
    height: int = 240
    fps: float = 24.0
    seconds: float = 2.5

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 32:
            raise ValueError(f"width and height must be even and >= 32, got {self.width}x{self.height}")
        if self.fps <= 0 or self.seconds <= 0:
            raise ValueError("fps and seconds must be > 0")

    @property
    def num_frames(self) -> int:
        return max(2, round(self.fps * self.seconds))


def make_scene(index: int, rng: np.random.Generator, spec: SampleSpec) -> Scene:
    """Scene number ``index``: camera motion and object motion from the cycle, speeds drawn at random."""
    camera = CAMERA_MOTIONS[index % len(CAMERA_MOTIONS)]
    objects_kind = OBJECT_MOTIONS[(index // len(CAMERA_MOTIONS)) % len(OBJECT_MOTIONS)]
    speed = float(rng.uniform(*PAN_SPEED_RANGE))
    pan = {
        "pan_left": (-speed, 0.0),
        "pan_right": (speed, 0.0),
        "tilt_up": (0.0, -speed),
        "tilt_down": (0.0, speed),
    }.get(camera, (0.0, 0.0))
    zoom = {"zoom_in": 1.0, "zoom_out": -1.0}.get(camera, 0.0) * float(rng.uniform(*ZOOM_RATE_RANGE))
    ranges = {
        "none": [],
        "slow": [SLOW_OBJECT_RANGE],
        "fast": [FAST_OBJECT_RANGE],
        "two": [SLOW_OBJECT_RANGE, FAST_OBJECT_RANGE],
    }
    objects = tuple(_moving_object(rng, speed_range, pan, spec) for speed_range in ranges[objects_kind])
    return Scene(seed=int(rng.integers(2**31)), pan=pan, zoom_rate=zoom, objects=objects)


def _moving_object(
    rng: np.random.Generator, speed_range: tuple[float, float], pan: tuple[float, float], spec: SampleSpec
) -> SceneObject:
    """An object whose on-screen path stays inside the frame for the whole clip."""
    speed = float(rng.uniform(*speed_range))
    angle = float(rng.uniform(0, 2 * math.pi))
    velocity = (speed * math.cos(angle), speed * math.sin(angle))
    diag = math.hypot(spec.width, spec.height)
    frame_units = (100 * spec.width / diag, 100 * spec.height / diag)
    # centre the on-screen path (object minus camera velocity) in the frame, with some jitter
    middle = [0.5 - (velocity[i] - pan[i]) * spec.seconds / 2 / frame_units[i] for i in range(2)]
    start = tuple(float(np.clip(m + rng.uniform(-0.1, 0.1), 0.15, 0.85)) for m in middle)
    return SceneObject(start=start, radius=float(rng.uniform(0.12, 0.22)), velocity=velocity)


ANNOTATED_WINDOW_S = 15 / 8  # the default annotate window: 16 samples at 8 fps


def ground_truth(
    scene: Scene, spec: SampleSpec, window_s: float = ANNOTATED_WINDOW_S, seen_areas: npt.ArrayLike | None = None
) -> dict[str, Any]:
    """What the clip's motion is, in %diag/s over the annotated window, as annotate should find it.

    camera_motion: mean speed the camera gives the frame (|pan|, or |zoom rate| x mean radius).
    object_motion: camera-compensated speed of the objects weighted by their pixels (the mean speed of object
    points that annotate's object_motion estimates), each scaled by the zoom while it is seen. The
    objects' areas are their radii squared (all in view, none hidden, the window's mean zoom), or ``seen_areas``
    when given: ``[times, objects]`` px seen at times spread evenly over the window, whose zoom is averaged over
    each object's seen pixels (an object entering late in a zoom in moves faster on screen than the mean zoom says).
    """
    k = scene.zoom_rate
    if seen_areas is None:
        weights = np.array([obj.radius**2 for obj in scene.objects])
        magnifications = np.full(len(weights), (math.exp(k * window_s) - 1) / (k * window_s) if k else 1.0)
    else:
        seen_areas = np.asarray(seen_areas, np.float64)
        if seen_areas.ndim != 2 or seen_areas.shape[1] != len(scene.objects):
            count = len(scene.objects)
            raise ValueError(f"seen_areas needs [times, objects] with {count} objects, got {seen_areas.shape}")
        zooms = np.exp(k * np.linspace(0.0, window_s, len(seen_areas)))
        weights = seen_areas.sum(axis=0)
        magnifications = zooms @ seen_areas / np.maximum(weights, 1e-12)
    radius = mean_radius_pct_diag(spec.width, spec.height)
    speeds = np.array([obj.speed for obj in scene.objects]) * magnifications
    mean_speed = float(speeds @ weights / weights.sum()) if len(speeds) else 0.0
    return {
        **asdict(spec),
        "num_frames": spec.num_frames,
        "camera_type": scene.camera_type,
        "pan": list(scene.pan),
        "zoom_rate": scene.zoom_rate,
        "objects": [asdict(obj) | {"speed": obj.speed} for obj in scene.objects],
        "camera_motion": math.hypot(*scene.pan) + abs(k) * radius,
        "object_motion": mean_speed,
    }


def write_sample_data(
    out_dir: str | Path, shards: int = 2, clips_per_shard: int = 6, seed: int = 0, spec: SampleSpec = SampleSpec()
) -> dict[str, dict[str, Any]]:
    """Write ``OUT/shards/sample-NNNNNN.tar`` and ``OUT/ground_truth.json``; returns the ground truth by key.

    Scenes are drawn in order from one generator (the same seed gives the same scenes however many cores;
    x264 may encode them to slightly different bytes), then shards are rendered and encoded in parallel, one
    process a shard up to the cores: rendering and H.264 encoding take about a second a clip, which on a
    many-core benchmark machine is most of its set-up.
    """
    if shards < 1 or clips_per_shard < 1:
        raise ValueError("shards and clips_per_shard must be >= 1")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    scenes = [make_scene(index, rng, spec) for index in range(shards * clips_per_shard)]
    starts = range(0, shards * clips_per_shard, clips_per_shard)
    paths = [out / "shards" / f"sample-{shard:06d}.tar" for shard in range(shards)]
    batches = [scenes[start : start + clips_per_shard] for start in starts]
    processes = min(shards, os.cpu_count() or 1)
    if processes == 1:
        truths = list(map(_write_shard, paths, starts, batches, [spec] * shards))
    else:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            truths = list(pool.map(_write_shard, paths, starts, batches, [spec] * shards))
    truth = {key: info for shard_truth in truths for key, info in shard_truth.items()}
    write_json_atomically(out / "ground_truth.json", {"units": "%diag/s; zoom_rate in 1/s", "clips": truth})
    return truth


def _write_shard(
    shard_path: Path, first_index: int, scenes: list[Scene], spec: SampleSpec
) -> dict[str, dict[str, Any]]:
    """Render, encode and write one shard -> its clips' ground truth by key."""
    samples, truth = [], {}
    for index, scene in enumerate(scenes, start=first_index):
        frames = SceneRenderer(scene, spec.width / spec.height, spec.seconds).render(
            spec.width, spec.height, spec.fps, spec.num_frames
        )
        key = f"clip-{index:06d}"
        info = ground_truth(scene, spec) | {"shard": shard_path.name}
        caption = f"synthetic {info['camera_type']} camera, {len(scene.objects)} moving object(s)"
        samples.append({"__key__": key, "mp4": encode_video(frames, spec.fps), "json": {"caption": caption}})
        truth[key] = info
    write_atomically(shard_path, lambda temp: _write_tar(temp, samples))
    return truth


def _write_tar(path: Path, samples: list[dict[str, Any]]) -> None:
    with wds.TarWriter(str(path)) as writer:
        for sample in samples:
            writer.write(sample)
