"""Shared fixtures: real encoded clips, real tar shards, and the read-only data in ../shared."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.shard_runner import build_annotation_stages
from motionpipe.pipeline.synthetic_video import Scene, SceneObject, SceneRenderer, render_scene
from motionpipe.pipeline.video_encoding import encode_video
from motionpipe.stages.base import ClipRecord, Stage
from motionpipe.stages.display_matrix import MVHD_TIMES, child_boxes, matrix_span

REPO = Path(__file__).resolve().parents[1]
MOTIONPIPE = str(Path(sys.executable).parent / "motionpipe")


def motionpipe(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The console script, as a user runs it."""
    return subprocess.run(
        [MOTIONPIPE, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def rows_by_key(out: Path) -> dict[str, dict]:
    """The run's rows by key, checking that no key has two rows."""
    from motionpipe.pipeline.inspect_run import read_metadata

    rows = read_metadata(out).to_pylist()
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys)), "duplicate rows"
    return {row["key"]: row for row in rows}


def shared_root() -> Path:
    """../shared beside the checkout, or $MOTIONPIPE_SHARED."""
    return Path(os.environ.get("MOTIONPIPE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    data = shared_root() / "data"
    if not (data / "MANIFEST.md").exists():
        pytest.skip(f"real test data not found at {data} (set MOTIONPIPE_SHARED to the shared/ folder)")
    return data


def make_clip(
    scene: Scene,
    width: int = 320,
    height: int = 240,
    fps: float = 24.0,
    seconds: float = 2.5,
    container: str = "mp4",
    codec: str = "libx264",
    display_rotation: int = 0,
    display_matrix: Sequence[int] | None = None,
    crf: int = 18,
) -> bytes:
    """A real encoded clip of a synthetic scene."""
    frames = render_scene(scene, width, height, fps, max(1, round(fps * seconds)))
    return encode_video(
        frames, fps, container, codec, crf=crf, display_rotation=display_rotation, display_matrix=display_matrix
    )


def matrix_of(a: int, b: int, c: int, d: int) -> tuple[int, ...]:
    """FFmpeg's display matrix showing coded (x, y) at (a x + c y, b x + d y): 16.16 and 2.30 fixed point."""
    return (a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30)


def with_movie_matrix(payload: bytes, matrix: Sequence[int]) -> bytes:
    """An MP4 with ``matrix`` (FFmpeg's layout) written into its movie header (``mvhd``), which encoders leave as
    identity but FFmpeg applies after the track's."""
    movie = next(child_boxes(payload, 0, len(payload), b"moov"))
    header = next(child_boxes(payload, *movie, b"mvhd"))
    patched = bytearray(payload)
    patched[matrix_span(payload, header, MVHD_TIMES)] = struct.pack(">9i", *matrix)
    return bytes(patched)


def disc_mask(scene: Scene, obj: SceneObject, t: float, width: int, height: int, duration_s: float = 2.5) -> np.ndarray:
    """Where a scene's disc is at time t (still camera), at the given size, from the scene's own geometry."""
    renderer = SceneRenderer(scene, width / height, duration_s)
    centre = renderer.object_centre(obj, t)
    units_per_px = renderer.frame_units[0] / width
    cx, cy = centre[0] / units_per_px + width / 2, centre[1] / units_per_px + height / 2
    radius = obj.radius * min(renderer.frame_units) / units_per_px
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    return np.hypot(xs - cx, ys - cy) < radius


# benchmarks/decouple.py seed 2 static-two's objects, 5.8 and 17.4 %diag/s, with the fast one larger (as there), of
# equal size, and with the slow one larger: object motion is their mean speed weighted by area whichever is larger
_SLOW = SceneObject(
    (0.25999249746736053, 0.4265187607389431), 0.154610463264383, (3.413973549451903, 4.702799312707641)
)
_FAST = SceneObject((0.85, 0.37354398254988375), 0.1706547519419293, (-15.351703616200387, 8.093185116807438))
SLOW_AND_FAST = {
    "fast_larger": (_SLOW, _FAST),
    "equal": tuple(SceneObject(obj.start, 0.165, obj.velocity) for obj in (_SLOW, _FAST)),
    "slow_larger": (
        SceneObject(_SLOW.start, _FAST.radius, _SLOW.velocity),
        SceneObject(_FAST.start, _SLOW.radius, _FAST.velocity),
    ),
}


def ready_stages(*overrides: str) -> list[Stage]:
    """The annotate stages for a config with these overrides, set up as a worker would."""
    stages = build_annotation_stages(build_config(overrides=list(overrides)))
    for stage in stages:
        stage.setup()
    return stages


def run_stages(stages: list[Stage], payload: bytes, extension: str = "mp4") -> ClipRecord:
    """One clip through the stages, which must leave it ok."""
    clip = clip_record(payload, extension)
    for stage in stages:
        stage.process([clip])
    assert clip.ok, clip.error_detail
    return clip


def clip_record(payload: bytes, extension: str = "mp4", key: str = "clip", **extra: bytes) -> ClipRecord:
    """A clip record as the shard reader makes it, with optional extra members (txt=..., json=...)."""
    members = {extension: payload, **extra}
    return ClipRecord(key, "test.tar", members, {ext: f"{key}.{ext}" for ext in members})


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar with exactly these members, in this order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def tar_writer(tmp_path: Path) -> Callable[[str, list[tuple[str, bytes]]], Path]:
    return lambda name, members: write_tar(tmp_path / name, members)


@pytest.fixture(scope="session")
def annotated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small run with every condition, for what consumes a run (filter, trainer, report): ROOT/shards holds
    two synthetic shards (captions, known motion) and one with a broken clip; ROOT/out is their annotation."""
    from motionpipe.pipeline.annotate import annotate
    from motionpipe.pipeline.sample_data import SampleSpec, write_sample_data
    from motionpipe.pipeline.shard_reader import resolve_shards
    from motionpipe.pipeline.shard_runner import SilentProgress

    root = tmp_path_factory.mktemp("annotated_run")
    write_sample_data(root, shards=2, clips_per_shard=5, seed=3, spec=SampleSpec(width=192, height=128, seconds=2.0))
    good = make_clip(Scene(seed=41, pan=(6.0, 0.0)), 192, 128, seconds=2.0)
    members = [("pan.mp4", good), ("pan.txt", b"a pan"), ("broken.mp4", b"x" * 900)]
    write_tar(root / "shards" / "mixed-000000.tar", members)
    # 96 px keeps the run short (the confirmation ratio is 1.375 there: residual_motion.confirm_ratio_at)
    config = build_config(overrides=["conditions.include=all", "decode.short_side=96"])
    result = annotate(resolve_shards([str(root / "shards")]), root / "out", config, SilentProgress(), local=True)
    assert not result.failed
    return root


def tiny_svd_folder(folder: Path) -> Path:
    """A diffusers Stable Video Diffusion folder with the real classes at a size a CPU test can train: unet/, vae/,
    image_encoder/ (random weights)."""
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, cross_attention_dim=32,
        num_attention_heads=(2, 4), num_frames=8,
    ).save_pretrained(folder / "unet")  # fmt: skip
    AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), latent_channels=4
    ).save_pretrained(folder / "vae")
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=32,
        projection_dim=32,
    )  # fmt: skip
    CLIPVisionModelWithProjection(vision).save_pretrained(folder / "image_encoder")
    return folder


@pytest.fixture(scope="session")
def tiny_svd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_svd_folder`` once per session; skipped when the diffusion extra is not installed."""
    for package in ("diffusers", "transformers", "peft"):
        pytest.importorskip(package, reason="the diffusion extra is not installed (pip install -e '.[diffusion]')")
    return tiny_svd_folder(tmp_path_factory.mktemp("svd"))
