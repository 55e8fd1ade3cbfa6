"""Display matrices read from real encoded files: quarter turns and mirrors, and what decoders make of them."""

import io

import av
import pytest
from conftest import make_clip, matrix_of, with_movie_matrix

from motionpipe.pipeline.synthetic_video import Scene
from motionpipe.stages.display_matrix import decoder_turns, mp4_display_matrix, orientation_of
from motionpipe.stages.video_decoders import display_matrix_of

SIGNED_PERMUTATIONS = [
    (1, 0, 0, 1), (-1, 0, 0, 1), (1, 0, 0, -1), (-1, 0, 0, -1),
    (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, -1, 0), (0, -1, -1, 0),
]  # fmt: skip


@pytest.fixture(scope="module")
def clips() -> dict[tuple[int, ...], bytes]:
    return {
        m: make_clip(Scene(seed=3), 64, 48, seconds=0.25, display_matrix=matrix_of(*m)) for m in SIGNED_PERMUTATIONS
    }


@pytest.mark.parametrize("permutation", SIGNED_PERMUTATIONS)
def test_the_matrix_is_read_from_the_file_and_turns_as_ffmpeg_reads_its_rotation(clips, permutation):
    payload = clips[permutation]
    matrix = mp4_display_matrix(payload)
    assert matrix == matrix_of(*permutation)
    with av.open(io.BytesIO(payload)) as container:
        rotation = next(container.decode(video=0)).rotation
    assert decoder_turns(matrix) == round(rotation / 90) % 4
    a, b, c, d = permutation
    assert orientation_of(matrix).mirrored == (a * d - b * c < 0)


@pytest.mark.parametrize("track", [(1, 0, 0, 1), (-1, 0, 0, 1), (0, 1, -1, 0)], ids=["as coded", "mirror", "turn"])
def test_the_movie_matrix_applies_after_the_tracks_as_ffmpeg_composes_them(clips, track):
    """FFmpeg turns and mirrors by the track's matrix, then the movie header's: a file whose movie header turns
    would otherwise be read as coded, and decord would turn it while we mirrored it."""
    for movie in SIGNED_PERMUTATIONS:
        payload = with_movie_matrix(clips[track], matrix_of(*movie))
        with av.open(io.BytesIO(payload)) as container:
            by_ffmpeg = display_matrix_of(next(container.decode(video=0)))
        # FFmpeg attaches no matrix when the two cancel out
        assert mp4_display_matrix(payload) == (by_ffmpeg or matrix_of(1, 0, 0, 1)), (track, movie)


def test_files_without_a_readable_matrix_give_none_and_never_raise(clips):
    mirrored = clips[(-1, 0, 0, 1)]
    assert mp4_display_matrix(make_clip(Scene(seed=3), 64, 48, seconds=0.25, container="mkv")) is None
    assert mp4_display_matrix(b"") is None and mp4_display_matrix(b"\x00" * 3) is None
    for length in range(0, len(mirrored), 7):  # every cut of the file, mid-box included
        assert mp4_display_matrix(mirrored[:length]) in (None, matrix_of(-1, 0, 0, 1))


def test_a_matrix_that_is_not_by_quarter_turns_has_no_orientation():
    assert orientation_of((46341, -46341, 0, 46341, 46341, 0, 0, 0, 1 << 30)) is None  # 45 degrees
