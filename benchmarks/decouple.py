"""Accuracy of camera vs object motion on synthetic clips with known motion, under what real video does to them.

    python benchmarks/decouple.py --cache /tmp/decouple-bench [--seed 0 | 0-12] [--save run.json] [--against old.json]
        [--oracle] [--flow-error] [--true-flow]

A set of scenes (seed 0: the tuning set; seed 1 and up: held out, never tuned on) crosses camera motion
(static, slow and fast pans (>= 30 %diag/s), tilts, zoom in and out) with object motion (none, slow, fast,
two objects, one entering or leaving the frame), a layered-depth set seen by a translating camera
(parallax) with and without moving objects, and a wider one (pans up to fast ones at any heading, nearer layers
covering up to half the frame). Each set is rendered under several conditions: clean 24 fps,
temporal sensor noise, Gaussian blur, H.264 at crf 42, 12 / 30 / 60 fps, half and double resolution; the
parallax sets clean and degraded (the wide one at 30 fps). Clips are rendered and encoded once into ``--cache``
(with their ground truth), then annotated in-process with the default CPU config and any ``--set`` overrides.

Reported per condition: pairwise accuracy of object_motion and camera_motion against ground truth (a pair
counts when the truths differ by more than 20%), camera_type accuracy, the largest object_motion of a still scene,
and the share of clips whose object_motion is near its truth (within 30%; a still scene under 0.5 %diag/s): with
12-16 clips a condition one clip moves a pair accuracy by up to 0.2 as it happens to order, and this counts the
clips right instead; object pair accuracy without the layered scenes whose objects all move as nearer still
scenery would (within the parallax rule's slope of the scenery's way; in two frames at constant velocities no rule
on the flow tells them from it: what a method can reach there); then how far each scene's object_motion moves across
frame rates and resolutions. ``--save``
writes the rows; ``--against`` prints a saved run's figures beside these, so today's method and an older one
(run with that code on PYTHONPATH and the same cache) are compared on the same clips. ``--oracle`` adds the
object pair accuracy that the same flow and homography reach over the true (rendered) object masks: the gap
between the two is what finding the objects costs, the rest is measuring them. ``--flow-error`` adds the measuring
pairs' flow error against the rendered truth on the background, the nearer layers and the objects: what the flow
backend costs, before any decoupling; ``--true-flow`` decouples the rendered flow instead of the backend's (the pixels
that stay in view as the consistent ones): what the decoupling reaches with perfect flow.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the heavy modules load inside the functions that use them
    from motionpipe.pipeline.synthetic_video import SceneRenderer
    from motionpipe.stages.base import ClipRecord

CAMERAS = ("static", "pan_slow", "pan_fast", "tilt", "zoom_in", "zoom_out")
PARALLAX_CAMERAS = ("pan_slow", "pan_medium", "tilt", "diagonal")
OBJECTS = ("none", "slow", "fast", "two", "crossing")
PARALLAX_OBJECTS = ("none", "slow", "fast", "two")
WIDE_PARALLAX_CAMERAS = ("pan_slow", "pan_medium", "pan_fast")  # at any heading
SPEEDS = {  # %diag/s, or 1/s for zooms
    "pan_slow": (4.0, 10.0),
    "pan_medium": (10.0, 20.0),
    "pan_fast": (30.0, 45.0),
    "tilt": (5.0, 15.0),
    "zoom": (0.15, 0.35),
    "slow": (3.0, 8.0),
    "fast": (12.0, 20.0),
}
BASE_SIZE, BASE_FPS, SECONDS = (320, 240), 24.0, 2.5
WINDOW_S = 15 / 8  # the default annotate window: 16 samples at 8 fps
# The cached truth, one row per clip; named anew whenever the truth changes (then cached clips get new truth rows
# without being rendered again; benchmarks/estimator.py reads it too). truth.json weighted objects by radius, ignoring
# what hides them; truth-seen.json scaled every object by the window's mean zoom, even one seen only at its end;
# truth-seen-zoom.json called every pan off the axes complex, even 10 degrees off (the wide parallax set's);
# truth-camera-type.json took the speed of the object covering most pixels, not the objects' mean speed.
TRUTH_FILE = "truth-mean.json"


@dataclass(frozen=True)
class Condition:
    """How a scene set is rendered: size, frame rate, and what happens to the frames before encoding."""

    name: str
    scenes: str = "base"  # base | parallax
    size: tuple[int, int] = BASE_SIZE
    fps: float = BASE_FPS
    noise_sigma: float = 0.0  # temporal Gaussian noise, 8-bit levels, new every frame
    blur_sigma: float = 0.0  # Gaussian blur of every frame, px at the rendered size
    crf: int = 18


CONDITIONS = (
    Condition("clean"),
    Condition("noise", noise_sigma=6.0),
    Condition("blur", blur_sigma=1.5),
    Condition("crf42", crf=42),
    Condition("fps12", fps=12.0),
    Condition("fps30", fps=30.0),
    Condition("fps60", fps=60.0),
    Condition("half_res", size=(160, 120)),
    Condition("double_res", size=(640, 480)),
    Condition("parallax", scenes="parallax"),
    Condition("parallax_real", scenes="parallax", fps=30.0, noise_sigma=4.0, crf=35),
    Condition("wide_parallax", scenes="wide_parallax", fps=30.0),
    Condition("wide_parallax_real", scenes="wide_parallax", fps=30.0, noise_sigma=4.0, crf=35),
)
INVARIANCE = {"frame rate": ("clean", "fps12", "fps30", "fps60"), "resolution": ("clean", "half_res", "double_res")}


def base_scene(camera: str, objects: str, rng: np.random.Generator):
    """One scene of the base set; objects keep on screen except a crossing one, which enters or leaves."""
    from motionpipe.pipeline.synthetic_video import Scene

    sign = float(rng.choice((-1.0, 1.0)))
    pan, zoom = (0.0, 0.0), 0.0
    if camera.startswith("pan"):
        pan = (sign * rng.uniform(*SPEEDS[camera]), 0.0)
    elif camera == "tilt":
        pan = (0.0, sign * rng.uniform(*SPEEDS["tilt"]))
    elif camera.startswith("zoom"):
        zoom = (1.0 if camera == "zoom_in" else -1.0) * rng.uniform(*SPEEDS["zoom"])
    return Scene(int(rng.integers(2**31)), pan, zoom, scene_objects(objects, pan, rng))


def parallax_scene(camera: str, objects: str, rng: np.random.Generator):
    """A translating camera over a background plane and two nearer still layers (depths 0.6-0.8, 0.35-0.5)."""
    speed = rng.uniform(*SPEEDS["pan_medium" if camera == "pan_medium" else "pan_slow"])
    direction = {"pan_slow": (1.0, 0.0), "pan_medium": (1.0, 0.0), "tilt": (0.0, 1.0), "diagonal": (0.6, 0.8)}[camera]
    sign = float(rng.choice((-1.0, 1.0)))
    pan = (sign * speed * direction[0], sign * speed * direction[1])
    return layered_scene(pan, objects, rng, ((0.6, 0.8), (0.15, 0.3)), ((0.35, 0.5), (0.1, 0.2)))


def wide_parallax_scene(camera: str, objects: str, rng: np.random.Generator):
    """Pans up to fast ones at any heading over nearer layers covering up to half the frame (15-50% at depths
    0.55-0.85, 10-30% at 0.3-0.5): the parallax set's cameras stop at 20 %diag/s and its layers at 30%."""
    speed, heading = rng.uniform(*SPEEDS[camera]), rng.uniform(0, 2 * math.pi)
    pan = (speed * math.cos(heading), speed * math.sin(heading))
    return layered_scene(pan, objects, rng, ((0.55, 0.85), (0.15, 0.5)), ((0.3, 0.5), (0.1, 0.3)))


Ranges = tuple[tuple[float, float], tuple[float, float]]  # (depths, coverages) a layer is drawn from


def layered_scene(pan: tuple[float, float], objects: str, rng: np.random.Generator, farther: Ranges, nearer: Ranges):
    """A scene seen by a camera translating by ``pan`` over the background and two still layers drawn from the
    ``farther`` and ``nearer`` ranges, with ``objects`` (scene_objects' kinds)."""
    from motionpipe.pipeline.synthetic_video import DepthLayer, Scene

    layers = tuple(DepthLayer(rng.uniform(*depths), rng.uniform(*coverages)) for depths, coverages in (farther, nearer))
    return Scene(int(rng.integers(2**31)), pan, 0.0, scene_objects(objects, pan, rng), layers)


def scene_objects(kind: str, pan: tuple[float, float], rng: np.random.Generator) -> tuple:
    """Objects at random headings whose on-screen paths are centred in the frame (two side by side);
    ``crossing``: one fast object whose centre crosses the frame's edge mid-window, entering or leaving."""
    from motionpipe.pipeline.synthetic_video import SceneObject

    ranges = {"none": [], "slow": ["slow"], "fast": ["fast"], "two": ["slow", "fast"], "crossing": ["fast"]}[kind]
    placed = []
    for index, name in enumerate(ranges):
        speed, heading = rng.uniform(*SPEEDS[name]), rng.uniform(0, 2 * math.pi)
        velocity = (speed * math.cos(heading), speed * math.sin(heading))
        # on-screen velocity in frames/s of a 4:3 frame (80 x 60 %diag)
        screen = np.array([(velocity[0] - pan[0]) / 80.0, (velocity[1] - pan[1]) / 60.0])
        if kind == "crossing":
            to_edge = 0.5 / np.abs(screen).max()  # seconds from the centre to the edge at this velocity
            middle = 0.5 + screen * to_edge * rng.choice((-1.0, 1.0))  # entering (-1) or leaving (+1)
            start = middle - screen * WINDOW_S / 2
        else:
            centre = np.array([0.5 + (0.2 if index else -0.2) * (len(ranges) > 1), 0.5])
            start = np.clip(centre - screen * WINDOW_S / 2, 0.15, 0.85)
        placed.append(SceneObject(tuple(map(float, start)), float(rng.uniform(0.12, 0.2)), velocity))
    return tuple(placed)


def scene_sets(seed: int) -> dict[str, list[tuple[str, object]]]:
    """Named scenes of each set, drawn from one generator per set (the same seed, the same scenes)."""
    sets = {}  # a new set goes last: the others keep their generators' draws
    for name, cameras, objects, make in (
        ("base", CAMERAS, OBJECTS, base_scene),
        ("parallax", PARALLAX_CAMERAS, PARALLAX_OBJECTS, parallax_scene),
        ("wide_parallax", WIDE_PARALLAX_CAMERAS, PARALLAX_OBJECTS, wide_parallax_scene),
    ):
        rng = np.random.default_rng([seed, len(sets)])
        sets[name] = [(f"{c}-{o}", make(c, o, rng)) for c, o in itertools.product(cameras, objects)]
    return sets


def ground_truth(scene, renderer, width: int, height: int) -> dict:
    """Camera speed (translation x the frame's mean inverse depth, plus zoom) and the objects' speeds weighted by the
    pixels of each seen over the window (nearer layers, other objects and the frame's edge hide parts)."""
    from motionpipe.pipeline.sample_data import SampleSpec
    from motionpipe.pipeline.sample_data import ground_truth as flat_ground_truth

    seen = np.array([renderer.visible_object_areas(t) for t in np.linspace(0, WINDOW_S, 8)])
    spec = SampleSpec(width, height, BASE_FPS, SECONDS)
    truth = flat_ground_truth(scene, spec, WINDOW_S, seen if scene.objects else None)
    translation = math.hypot(*scene.pan) * renderer.mean_inverse_depth(WINDOW_S / 2)
    zoom = truth["camera_motion"] - math.hypot(*scene.pan)
    return {k: truth[k] for k in ("camera_type", "object_motion")} | {"camera_motion": translation + zoom}


def render_clip(job: tuple[Path, str, Condition, object, int]) -> dict:
    """Render, degrade and encode one clip into the cache (unless it is there) -> its truth row."""
    import cv2

    from motionpipe.pipeline.run_outputs import write_atomically
    from motionpipe.pipeline.synthetic_video import SceneRenderer
    from motionpipe.pipeline.video_encoding import encode_video

    path, name, condition, scene, seed = job
    width, height = condition.size
    renderer = SceneRenderer(scene, width / height, SECONDS)
    if not path.exists():
        frames = renderer.render(width, height, condition.fps, round(condition.fps * SECONDS))
        rng = np.random.default_rng([seed, zlib.crc32(path.name.encode())])
        if condition.blur_sigma:
            frames = np.stack([cv2.GaussianBlur(frame, (0, 0), condition.blur_sigma) for frame in frames])
        if condition.noise_sigma:
            noisy = frames.astype(np.float32) + rng.normal(0, condition.noise_sigma, frames.shape).astype(np.float32)
            frames = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
        encoded = encode_video(frames, condition.fps, crf=condition.crf)
        write_atomically(path, lambda temp: temp.write_bytes(encoded))
    truth = ground_truth(scene, renderer, width, height)
    return {"clip": path.stem, "condition": condition.name, "scene": name, **truth}


def prepare_cache(cache: Path, seed: int) -> list[dict]:
    """The set's clips and truth: those not in the cache yet are rendered on every core, the rest read back."""
    folder = cache / f"seed{seed}"
    truth_file = folder / TRUTH_FILE
    cached = {row["clip"]: row for row in json.loads(truth_file.read_text())} if truth_file.exists() else {}
    folder.mkdir(parents=True, exist_ok=True)
    sets = scene_sets(seed)
    jobs = [
        (folder / f"{condition.name}--{name}.mp4", name, condition, scene, seed)
        for condition in CONDITIONS
        for name, scene in sets[condition.scenes]
    ]
    missing = [job for job in jobs if job[0].stem not in cached]
    if missing:
        started = time.perf_counter()
        with ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn")) as pool:
            cached |= {row["clip"]: row for row in pool.map(render_clip, missing, chunksize=4)}
        truth_file.write_text(json.dumps(list(cached.values()), indent=1))
        print(f"rendered {len(missing)} clips into {folder} in {time.perf_counter() - started:.0f} s")
    return [cached[job[0].stem] for job in jobs]


@dataclass(frozen=True)
class Readings:
    """What ``annotate`` reads besides the stages' fields, to tell where errors come from."""

    oracle: bool = False  # object_motion over the true object masks (detection vs measurement)
    flow_error: bool = False  # the measuring pairs' flow error per kind of surface (the flow backend's share)
    true_flow: bool = False  # decouple the rendered flow instead of the backend's (the decoupling's share)


def annotate(cache: Path, seed: int, truth: list[dict], overrides: list[str], readings: Readings) -> list[dict]:
    """Each cached clip through the annotate stages in this process -> truth rows with the measured fields and what
    ``readings`` asks for."""
    from motionpipe.pipeline.config import build_config
    from motionpipe.pipeline.shard_runner import build_annotation_stages
    from motionpipe.pipeline.synthetic_video import SceneRenderer
    from motionpipe.stages.base import ClipRecord
    from motionpipe.stages.residual_motion import PARALLAX_SLOPE

    stages = build_annotation_stages(build_config(overrides=["conditions.include=none", *overrides]))
    for stage in stages:
        stage.setup()
    scenes = {name: dict(scene_set) for name, scene_set in scene_sets(seed).items()}
    conditions = {condition.name: condition for condition in CONDITIONS}
    rows = []
    for row in truth:
        condition = conditions[row["condition"]]
        scene = scenes[condition.scenes][row["scene"]]
        renderer = None
        if readings != Readings():  # each reading needs the scene's truth
            width, height = condition.size
            renderer = SceneRenderer(scene, width / height, SECONDS)
        payload = (cache / f"seed{seed}" / f"{row['clip']}.mp4").read_bytes()
        clip = ClipRecord(row["clip"], "benchmark", {"mp4": payload}, {"mp4": f"{row['clip']}.mp4"})
        for stage in stages:
            if readings.true_flow and stage.name == "decouple":
                forward, seen = renderer.pair_flows(clip.video)
                clip.motion = replace(clip.motion, pair_forward=forward, pair_consistent=seen)
            stage.process([clip])
        if not clip.ok:
            raise RuntimeError(f"{row['clip']}: {clip.error_detail}")
        measured = {k: clip.fields[k] for k in ("camera_motion", "object_motion", "camera_type")}
        if readings.oracle:
            measured["oracle_object_motion"] = oracle_object_motion(clip, renderer)
        if readings.flow_error:
            measured["flow_error"] = flow_error_by_surface(clip, renderer)
        along = scene.objects_move_as_parallax(PARALLAX_SLOPE)
        rows.append(row | {"seed": seed, "along_lines": along, "measured": measured})
    return rows


def oracle_object_motion(clip: ClipRecord, renderer: SceneRenderer) -> float:
    """object_motion as the decouple stage reads it (the flow less each pair's homography; each region's median speed,
    weighted by its pixels) over the true visible pixels of each object, one in from their edges: what the method
    reads when it finds exactly the objects. Against the measured value it tells errors of detection from errors of
    measurement."""
    import cv2

    from motionpipe.stages.camera_model import camera_flow, fit_camera
    from motionpipe.stages.decouple import mean_region_speed
    from motionpipe.stages.flow_checks import squared_length
    from motionpipe.stages.motion_units import pct_diag_per_s
    from motionpipe.stages.residual_motion import lands_inside

    motion, video = clip.motion, clip.video
    height, width = motion.pair_forward.shape[1:3]
    reliable = motion.pair_consistent & lands_inside(motion.pair_forward)
    seen, trusted, speeds = [], [], []
    for forward, pair_reliable, (first, second) in zip(
        motion.pair_forward, reliable, video.pairs.tolist(), strict=True
    ):
        residual = forward - camera_flow(fit_camera(forward, pair_reliable).homography, width, height)
        per_px = pct_diag_per_s(width, height, video.interval_s(first, second))
        for coverage in renderer.visible_object_coverage(video.times_s[first], width, height):
            seen.append(cv2.erode((coverage > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
            trusted.append(pair_reliable)
            speeds.append(np.sqrt(squared_length(residual)) * per_px)
    return mean_region_speed(np.array(seen), np.array(trusted), np.array(speeds)) if seen else 0.0


SURFACE_KINDS = ("background", "layers", "objects")


def flow_error_by_surface(clip: ClipRecord, renderer: SceneRenderer) -> dict[str, float | None]:
    """The measuring pairs' flow against the rendered truth: per kind of surface (the background, the nearer layers,
    the objects), the median endpoint error in measuring px over the pixels whose surface stays in view, all pairs
    pooled; None where a clip has no such pixel. Tells what the flow gets wrong from what the decoupling does with it:
    the wide parallax set's fast pans drag the background's flow towards the nearer layers'."""
    from motionpipe.stages.flow_checks import squared_length
    from motionpipe.stages.measuring_size import mask_at_measuring_size

    height, width = clip.video.frames.shape[1:3]
    truth, seen = renderer.pair_flows(clip.video)
    errors = np.sqrt(squared_length(clip.motion.pair_forward - truth))
    surfaces = mask_at_measuring_size(
        np.stack(
            [renderer.surfaces(clip.video.times_s[first], width, height) for first, _ in clip.video.pairs.tolist()]
        )
    )
    first_object = 1 + len(renderer.scene.layers)
    kinds = (surfaces == 0, (surfaces > 0) & (surfaces < first_object), surfaces >= first_object)
    return {
        kind: float(np.median(errors[on & seen])) if (on & seen).any() else None
        for kind, on in zip(SURFACE_KINDS, kinds, strict=True)
    }


def pairwise_accuracy(truth: list[float], predicted: list[float], margin: float = 0.2) -> tuple[float, int]:
    """Fraction of pairs whose truths differ by > margin (relative) that the prediction orders alike."""
    correct = total = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        if abs(truth[i] - truth[j]) <= margin * max(truth[i], truth[j]):
            continue
        total += 1
        correct += (truth[i] - truth[j]) * (predicted[i] - predicted[j]) > 0
    return correct / max(total, 1), total


NEAR_SHARE = 0.3  # an object_motion within this share of its truth counts as near it
STILL_OBJECT_MOTION = 0.5  # issue 22: a still scene reads below this (%diag/s) under any camera motion


def near_truth(row: dict) -> bool:
    """Whether a clip's object_motion is near its truth: within ``NEAR_SHARE``, or a still scene's under
    ``STILL_OBJECT_MOTION``."""
    truth, measured = row["object_motion"], row["measured"]["object_motion"]
    return measured < STILL_OBJECT_MOTION if truth == 0 else abs(measured - truth) <= NEAR_SHARE * truth


Clip = tuple[int, str, str]  # seed, condition, scene


def clip_of(row: dict) -> Clip:
    """A row's clip across seeds: a scene name is one seed's."""
    return row["seed"], row["condition"], row["scene"]


def condition_figures(rows: list[dict], along_lines: set[Clip]) -> dict[str, float]:
    """Over one seed's clips of a condition: object / camera pair accuracy, camera_type accuracy, the largest
    object_motion of a still scene, the share of clips whose object_motion is near the truth, object pair accuracy
    without the ``along_lines`` clips (those whose objects move as nearer still scenery would:
    Scene.objects_move_as_parallax), and how many clips there are and how many of them are near."""
    figures = {"clips": float(len(rows)), "near_clips": float(sum(map(near_truth, rows)))}
    for field in ("object_motion", "camera_motion"):
        figures[field], _ = pairwise_accuracy([r[field] for r in rows], [r["measured"][field] for r in rows])
    apart = [r for r in rows if clip_of(r) not in along_lines]
    figures["object_off_lines"], _ = pairwise_accuracy(
        [r["object_motion"] for r in apart], [r["measured"]["object_motion"] for r in apart]
    )
    figures["camera_type"] = float(np.mean([r["camera_type"] == r["measured"]["camera_type"] for r in rows]))
    still = [r["measured"]["object_motion"] for r in rows if r["object_motion"] == 0]
    figures["still_max"] = max(still, default=0.0)
    return figures


def invariance_figures(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Per family: (share of scenes with objects whose object_motion stays within 10% of the clean clip's in every
    variant, the largest such relative deviation)."""
    by_clip = {(r["condition"], r["scene"]): r for r in rows}
    figures = {}
    for family, (reference, *variants) in INVARIANCE.items():
        deviations = []
        for (condition, scene), row in by_clip.items():
            if condition != reference or row["object_motion"] == 0:
                continue
            base = row["measured"]["object_motion"]
            measured = [by_clip[variant, scene]["measured"]["object_motion"] for variant in variants]
            worst = max(abs(value - base) / max(base, 1e-6) for value in measured)
            deviations.append(worst)
        figures[family] = (float(np.mean(np.array(deviations) <= 0.1)), float(np.max(deviations)))
    return figures


FIGURE_LABELS = ("obj", "cam", "type", "still", "near", "off")  # the report's columns


def of_condition(rows: list[dict], condition: Condition) -> list[dict]:
    return [r for r in rows if r["condition"] == condition.name]


def by_seed(rows: list[dict]) -> list[list[dict]]:
    """The rows of each seed, in seed order: pair accuracy compares the clips of one seed's scenes."""
    seeds = sorted({row["seed"] for row in rows})
    return [[row for row in rows if row["seed"] == seed] for seed in seeds]


def summary_cells(per_seed: list[dict[str, float]]) -> list[str]:
    """One condition's figures as table cells (FIGURE_LABELS' order): one seed's as they are; over several, object
    pair accuracy as its range and mean, camera pair accuracy at its lowest, camera_type accuracy as a mean, the
    largest still reading, clips near of clips, and ``off`` as its range and mean."""
    if len(per_seed) == 1:
        (figures,) = per_seed
        near = figures["near_clips"] / max(figures["clips"], 1.0)
        shown = ("object_motion", "camera_motion", "camera_type", "still_max")
        return [f"{figures[key]:.2f}" for key in shown] + [f"{near:.2f}", f"{figures['object_off_lines']:.2f}"]

    def spread(key: str) -> str:
        values = [figures[key] for figures in per_seed]
        return f"{min(values):.2f}-{max(values):.2f} {np.mean(values):.3f}"

    near = sum(f["near_clips"] for f in per_seed)
    return [
        spread("object_motion"),
        f"{min(f['camera_motion'] for f in per_seed):.2f}",
        f"{np.mean([f['camera_type'] for f in per_seed]):.2f}",
        f"{max(f['still_max'] for f in per_seed):.2f}",
        f"{near:.0f}/{sum(f['clips'] for f in per_seed):.0f}",
        spread("object_off_lines"),
    ]


def report(rows: list[dict], against: list[dict] | None) -> None:
    runs = {"now": rows} | ({"before": against} if against else {})
    width = 13 if len(by_seed(rows)) == 1 else 20
    print(f"{'condition':<19}" + "".join(f"{label + ' ' + run:>{width}}" for label in FIGURE_LABELS for run in runs))
    along_lines = {clip_of(r) for r in rows if r["along_lines"]}  # the scenes' truth, as now
    for condition in CONDITIONS:
        cells = [
            summary_cells([condition_figures(chosen, along_lines) for chosen in by_seed(of_condition(run, condition))])
            for run in runs.values()
        ]
        print(
            f"{condition.name:<19}"
            + "".join(f"{cell:>{width}}" for column in zip(*cells, strict=True) for cell in column)
        )
    print(
        f"off: object pair accuracy without the {len(along_lines)} clips whose objects all move as nearer still "
        "scenery would under the camera's translation (no rule on the flow tells them from it)"
    )
    if "oracle_object_motion" in rows[0]["measured"]:
        print(f"\n{'condition':<19}{'obj now':>13}{'true masks':>13}   object pair accuracy; over the true masks")
        for condition in CONDITIONS:
            accuracies = []
            for chosen in by_seed(of_condition(rows, condition)):
                truth = [r["object_motion"] for r in chosen]
                now, _ = pairwise_accuracy(truth, [r["measured"]["object_motion"] for r in chosen])
                masks, _ = pairwise_accuracy(truth, [r["measured"]["oracle_object_motion"] for r in chosen])
                accuracies.append((now, masks))
            now, masks = np.mean(accuracies, axis=0)
            print(f"{condition.name:<19}{now:>13.2f}{masks:>13.2f}")
    if "flow_error" in rows[0]["measured"]:
        print(f"\n{'condition':<19}" + "".join(f"{kind:>13}" for kind in SURFACE_KINDS) + "   median flow error, px")
        for condition in CONDITIONS:
            chosen = [r["measured"]["flow_error"] for r in of_condition(rows, condition)]
            cells = [[c[kind] for c in chosen if c[kind] is not None] for kind in SURFACE_KINDS]
            print(f"{condition.name:<19}" + "".join(f"{np.mean(c):>13.2f}" if c else f"{'-':>13}" for c in cells))
    for name, run in runs.items():
        per_seed = [invariance_figures(chosen) for chosen in by_seed(run)]
        for family in INVARIANCE:
            shares = [figures[family][0] for figures in per_seed]
            worst = max(figures[family][1] for figures in per_seed)
            share = f"{shares[0]:.0%}" if len(shares) == 1 else f"{min(shares):.0%}-{max(shares):.0%} (a seed's)"
            print(f"{name}: object_motion across {family}: {share} of scenes within 10%, worst {worst:.0%}")


def worst_clips(rows: Iterable[dict], count: int = 12) -> None:
    """The clips whose object_motion is furthest from the truth (log ratio), for reading failures."""

    def error(row: dict) -> float:
        return abs(math.log((row["measured"]["object_motion"] + 0.5) / (row["object_motion"] + 0.5)))

    print(f"\n{'worst object_motion (seed, clip)':<44}{'obj gt':>8}{'obj':>8}{'cam gt':>8}{'cam':>8}  type")
    for row in sorted(rows, key=error, reverse=True)[:count]:
        m = row["measured"]
        print(
            f"{row['seed']:>3} {row['clip']:<40}{row['object_motion']:8.2f}{m['object_motion']:8.2f}"
            f"{row['camera_motion']:8.2f}{m['camera_motion']:8.2f}  {row['camera_type']} -> {m['camera_type']}"
        )


def seed_list(spec: str) -> list[int]:
    """``--seed``'s value: one seed (``3``), a range (``0-12``) or a list (``1,4,7``)."""
    seeds = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        try:
            seeds += range(int(first), int(last or first) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds are a number, a range A-B or a list A,B; not {spec!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"{spec!r} names no seed")
    return sorted(set(seeds))


def saved_rows(path: Path, seeds: list[int]) -> list[dict]:
    """A saved run's rows of this run's ``seeds`` (each must be there); a run saved before rows named their seed is
    the one seed of this run."""
    rows = json.loads(path.read_text())
    if not all("seed" in row for row in rows):
        if len(seeds) > 1:
            raise SystemExit(f"{path} was saved without seeds: compare it against a run of one seed")
        return [row | {"seed": seeds[0]} for row in rows]
    missing = set(seeds) - {row["seed"] for row in rows}
    if missing:
        raise SystemExit(f"{path} has no rows of seeds {sorted(missing)}")
    return [row for row in rows if row["seed"] in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="rendered clips and truth, reused across runs")
    parser.add_argument(
        "--seed",
        type=seed_list,
        default=[0],
        help="0: the tuning set; 1 and up: held out. A range (0-12) or list (1,3) runs several and reports each "
        "condition over them: pair accuracy's range and mean, clips near the truth, the largest still reading",
    )
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. flow.dis_preset=fast")
    parser.add_argument("--save", type=Path, help="write the rows (truth and measured) as JSON")
    parser.add_argument("--against", type=Path, help="a saved run (the same seeds) to print beside this one")
    parser.add_argument("--oracle", action="store_true", help="also read object_motion over the true object masks")
    parser.add_argument(
        "--flow-error", action="store_true", help="also read the flow's error on the background, layers and objects"
    )
    parser.add_argument("--true-flow", action="store_true", help="decouple the rendered flow instead of the backend's")
    args = parser.parse_args()
    readings = Readings(args.oracle, args.flow_error, args.true_flow)
    rows = []
    for seed in args.seed:
        truth = prepare_cache(args.cache, seed)
        started = time.perf_counter()
        rows += annotate(args.cache, seed, truth, args.set, readings)
        print(f"seed {seed}: {len(truth)} clips annotated in {time.perf_counter() - started:.0f} s")
    if args.save:
        args.save.write_text(json.dumps(rows))
    report(rows, saved_rows(args.against, args.seed) if args.against else None)
    worst_clips(rows)


if __name__ == "__main__":
    main()
