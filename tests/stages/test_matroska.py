"""Telling from Matroska/WebM track headers whether a file can have a display matrix, against FFmpeg's reading."""

import io

import numpy as np
import pytest
from conftest import make_clip, matrix_of

from motionpipe.pipeline.synthetic_video import Scene, render_scene
from motionpipe.pipeline.video_encoding import encode_video
from motionpipe.stages.matroska import first_video_track_projects
from motionpipe.stages.video_decoders import display_matrix_of

CODED = render_scene(Scene(seed=6, pan=(10.0, 0.0)), 96, 64, 24.0, 6)


def ffmpeg_matrix(payload: bytes) -> tuple[int, ...] | None:
    """The display matrix FFmpeg attaches to the first decoded frame."""
    import av

    with av.open(io.BytesIO(payload)) as container:
        return display_matrix_of(next(container.decode(video=0)))


@pytest.mark.parametrize("container, codec", [("mkv", "libx264"), ("webm", "libvpx-vp9")])
@pytest.mark.parametrize(
    "matrix",
    [None, matrix_of(1, 0, 0, 1), matrix_of(0, 1, -1, 0), matrix_of(-1, 0, 0, 1), matrix_of(0, 1, 1, 0)],
    ids=["none", "identity", "quarter turn", "mirror", "transpose"],
)
def test_a_track_projects_exactly_when_ffmpeg_reads_a_matrix_from_it(container, codec, matrix):
    payload = encode_video(CODED, 24.0, container=container, codec=codec, display_matrix=matrix)
    assert first_video_track_projects(payload) is (ffmpeg_matrix(payload) is not None)
    assert first_video_track_projects(payload) is (matrix not in (None, matrix_of(1, 0, 0, 1)))


def test_other_containers_are_left_to_the_first_frame():
    assert first_video_track_projects(make_clip(Scene(seed=3), 64, 48, seconds=0.25)) is None  # mp4
    assert first_video_track_projects(encode_video(CODED, 24.0, container="avi", codec="mpeg4")) is None
    assert first_video_track_projects(b"") is None and first_video_track_projects(b"\x1a\x45\xdf\xa3") is None


def test_damaged_headers_never_raise_and_a_cut_file_is_left_to_the_first_frame():
    payload = encode_video(CODED, 24.0, container="mkv", display_matrix=matrix_of(0, 1, -1, 0))
    assert {first_video_track_projects(payload[:length]) for length in range(0, 600)} == {None}
    rng = np.random.default_rng(0)
    for _ in range(300):
        damaged = bytearray(payload)
        damaged[rng.integers(4, 600)] = rng.integers(0, 256)
        assert first_video_track_projects(bytes(damaged)) in (None, True, False)
