"""Encoding is what every test clip and benchmark cache is made with: the same frames must give the same video."""

from motionpipe.pipeline.synthetic_video import DepthLayer, Scene, SceneObject, render_scene
from motionpipe.pipeline.video_encoding import encode_video


def test_the_same_frames_encode_to_the_same_bytes():
    # PyAV 18.1's libx264 with its macroblock tree gave other bytes (frames up to 60 levels apart) run to run
    scene = Scene(
        seed=62, pan=(7.0, 7.0), objects=(SceneObject((0.5, 0.5), 0.15, (8.0, 8.0)),), layers=(DepthLayer(0.7, 0.25),)
    )
    frames = render_scene(scene, 320, 240, 24.0, 48)
    assert len({encode_video(frames, 24.0, crf=crf) for crf in (18, 18, 18, 42, 42)}) == 2
