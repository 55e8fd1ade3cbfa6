"""Accuracy of camera vs object motion on synthetic clips with known motion, against two baselines.

    python benchmarks/decouple.py [--seeds 1] [--shared ../shared] [--set section.key=value ...]

Every combination of camera motion (static, slow/fast pan both ways, tilt up/down, zoom in/out) and
object motion (none, slow, fast, two objects) is rendered, encoded as H.264 and annotated in-process
with the default CPU config. Reported: pairwise ranking accuracy of object_motion and camera_motion
against ground truth (a pair counts when the truths differ by more than 20%), the same for the
track-based pseudo-labels (object_track_motion, camera_track_motion), camera_type accuracy,
and the same pairwise accuracies for two single-number baselines computed on the same decoded frames:
1 - mean SSIM of consecutive frames, and mean Farneback flow magnitude between frames 0.5 s apart.
Then the real clips of ../shared/data/videos, per clip, for eyeballing.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.config import build_config
from pipeline.sample_data import SampleSpec, ground_truth
from pipeline.shard_runner import build_annotation_stages
from pipeline.synthetic_video import Scene, SceneObject, SceneRenderer
from pipeline.video_encoding import encode_video
from stages.base import ClipRecord

CAMERAS = {
    "static": ((0.0, 0.0), 0.0),
    "pan_left_slow": ((-4.0, 0.0), 0.0),
    "pan_right_slow": ((4.0, 0.0), 0.0),
    "pan_left_fast": ((-15.0, 0.0), 0.0),
    "pan_right_fast": ((15.0, 0.0), 0.0),
    "tilt_up": ((0.0, -8.0), 0.0),
    "tilt_down": ((0.0, 8.0), 0.0),
    "zoom_in": ((0.0, 0.0), 0.25),
    "zoom_out": ((0.0, 0.0), -0.25),
}
OBJECT_SPEEDS = {"none": (), "slow": (3.5,), "fast": (14.0,), "two": (3.5, 14.0)}
SPEC = SampleSpec(width=320, height=240, fps=24.0, seconds=2.5)


def scene_for(camera: str, objects: str, seed: int) -> Scene:
    rng = np.random.default_rng(seed)
    pan, zoom = CAMERAS[camera]
    placed = []
    for index, speed in enumerate(OBJECT_SPEEDS[objects]):
        angle = rng.uniform(0, 2 * math.pi)
        velocity = (speed * math.cos(angle), speed * math.sin(angle))
        start = (0.3 + 0.4 * index + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.15, 0.15))
        placed.append(SceneObject(start=start, radius=0.16 + 0.04 * index, velocity=velocity))
    return Scene(seed=int(rng.integers(2**31)), pan=pan, zoom_rate=zoom, objects=tuple(placed))


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean structural similarity of two grayscale images (Gaussian window, sigma 1.5)."""
    a, b = first.astype(np.float64), second.astype(np.float64)
    blur = lambda image: cv2.GaussianBlur(image, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))))


def baselines(clip: ClipRecord) -> tuple[float, float]:
    """(1 - mean SSIM of adjacent frames, mean Farneback magnitude at 2 fps) on the decoded frames."""
    video = clip.video
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video.frames]
    dissimilarity = 1 - np.mean([ssim(gray[a], gray[b]) for a, b in video.pairs.tolist()])
    two_fps = video.samples[::4].tolist()
    magnitudes = [
        np.linalg.norm(cv2.calcOpticalFlowFarneback(gray[a], gray[b], None, 0.5, 3, 15, 3, 5, 1.2, 0), axis=-1).mean()
        for a, b in itertools.pairwise(two_fps)
    ]
    return float(dissimilarity), float(np.mean(magnitudes))


def pairwise_accuracy(truth: list[float], predicted: list[float], margin: float = 0.2) -> tuple[float, int]:
    """Fraction of pairs whose truths differ by > margin (relative) that the prediction orders alike."""
    correct = total = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        if abs(truth[i] - truth[j]) <= margin * max(truth[i], truth[j]):
            continue
        total += 1
        correct += (truth[i] - truth[j]) * (predicted[i] - predicted[j]) > 0
    return correct / max(total, 1), total


def annotate_payload(stages, key: str, payload: bytes) -> ClipRecord:
    clip = ClipRecord(key, "benchmark", {"mp4": payload}, {"mp4": f"{key}.mp4"})
    for stage in stages:
        stage.process([clip])
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1, help="clips per camera x object combination")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. flow.dis_preset=fast")
    args = parser.parse_args()
    overrides = ["conditions.include=none", "tracking.tracker=flow_chain", *args.set]
    stages = build_annotation_stages(build_config(overrides=overrides))
    for stage in stages:
        stage.setup()
    rows = []
    started = time.perf_counter()
    for seed, camera, objects in itertools.product(range(args.seeds), CAMERAS, OBJECT_SPEEDS):
        scene = scene_for(camera, objects, seed * 1000 + len(rows))
        frames = SceneRenderer(scene, SPEC.width / SPEC.height, SPEC.seconds).render(
            SPEC.width, SPEC.height, SPEC.fps, SPEC.num_frames
        )
        clip = annotate_payload(stages, f"{camera}-{objects}-{seed}", encode_video(frames, SPEC.fps))
        assert clip.ok, clip.error_detail
        rows.append((clip, ground_truth(scene, SPEC), *baselines(clip)))
    elapsed = time.perf_counter() - started
    print(f"{len(rows)} synthetic clips {SPEC.width}x{SPEC.height} {SPEC.fps:g} fps in {elapsed:.0f} s")
    print(f"{'clip':<26}{'cam gt':>8}{'cam':>8}{'obj gt':>8}{'obj':>8}  {'type gt':<11}{'type':<11}")
    for clip, truth, _, _ in rows:
        f = clip.fields
        print(
            f"{clip.key:<26}{truth['camera_motion']:8.2f}{f['camera_motion']:8.2f}{truth['object_motion']:8.2f}"
            f"{f['object_motion']:8.2f}  {truth['camera_type']:<11}{f['camera_type']:<11}"
        )
    print()
    print(f"{'pairwise accuracy':<34}{'object_motion':>15}{'camera_motion':>15}")
    predictors = {
        "motionpipe (decoupled)": (lambda r: r[0].fields["object_motion"], lambda r: r[0].fields["camera_motion"]),
        "motionpipe (tracks, MotionStone)": (
            lambda r: r[0].fields["object_track_motion"],
            lambda r: r[0].fields["camera_track_motion"],
        ),
        "baseline 1 - mean SSIM": (lambda r: r[2], lambda r: r[2]),
        "baseline Farneback @ 2 fps": (lambda r: r[3], lambda r: r[3]),
    }
    for name, (object_score, camera_score) in predictors.items():
        obj_acc, obj_pairs = pairwise_accuracy([r[1]["object_motion"] for r in rows], [object_score(r) for r in rows])
        cam_acc, cam_pairs = pairwise_accuracy([r[1]["camera_motion"] for r in rows], [camera_score(r) for r in rows])
        print(f"{name:<34}{obj_acc:>14.1%} {cam_acc:>14.1%}   ({obj_pairs} / {cam_pairs} pairs)")
    type_accuracy = np.mean([r[0].fields["camera_type"] == r[1]["camera_type"] for r in rows])
    print(f"camera_type accuracy: {type_accuracy:.1%}")
    real_clips(stages, args.shared / "data" / "videos")


def real_clips(stages, folder: Path) -> None:
    if not folder.is_dir():
        print(f"no real clips at {folder}")
        return
    print(f"\nreal clips ({folder})")
    print(f"{'clip':<32}{'camera':>8}{'object':>8}{'area':>7}  {'type':<10}{'tx':>7}{'ty':>7}{'zoom':>7}")
    for path in sorted(folder.iterdir()):
        clip = ClipRecord(path.stem, "real", {path.suffix[1:]: path.read_bytes()}, {path.suffix[1:]: path.name})
        for stage in stages:
            stage.process([clip])
        f = clip.fields
        print(
            f"{path.name:<32}{f['camera_motion']:8.2f}{f['object_motion']:8.2f}{f['object_area']:7.3f}  "
            f"{f['camera_type']:<10}{f['cam_tx']:7.2f}{f['cam_ty']:7.2f}{f['cam_zoom']:7.3f}"
        )


if __name__ == "__main__":
    main()
