"""The decode stage on real encoded clips: containers, sampling, resizing, captions, bad input."""

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import clip_record, make_clip, matrix_of, with_movie_matrix

from motionpipe.pipeline.synthetic_video import Scene, render_scene
from motionpipe.pipeline.video_encoding import encode_video
from motionpipe.stages.decode import DecodeConfig, DecodeStage, processing_size, resize_to_short_side
from motionpipe.stages.frame_sampling import frames_to_decode
from motionpipe.stages.video_decoders import decode_video, decode_with_pyav


@pytest.fixture(scope="module")
def decode() -> DecodeStage:
    stage = DecodeStage(DecodeConfig())
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def pan_clip() -> bytes:
    return make_clip(Scene(seed=1, pan=(10.0, 0.0)))


def decoded(stage: DecodeStage, payload: bytes, extension: str = "mp4", **extra: bytes):
    clip = clip_record(payload, extension, **extra)
    stage.process([clip])
    return clip


@pytest.mark.parametrize(
    "container, codec", [("mp4", "libx264"), ("mkv", "libx264"), ("avi", "mpeg4"), ("mov", "libx264")]
)
def test_decord_decodes_common_containers(decode, container, codec):
    clip = decoded(decode, make_clip(Scene(seed=2), container=container, codec=codec, seconds=2.0), container)
    assert clip.ok, clip.error_detail
    assert clip.fields["decode_backend"] == "decord"
    assert clip.fields["codec"] == {"libx264": "h264", "mpeg4": "mpeg4"}[codec]
    assert clip.video.frames[clip.video.samples].shape == (16, 256, 341, 3)
    assert clip.video.frames.dtype == np.uint8


def test_webm_av1_that_decord_cannot_read_falls_back_to_pyav(decode):
    clip = decoded(decode, make_clip(Scene(seed=3), width=128, height=96, container="mkv", codec="libsvtav1"), "webm")
    assert clip.ok, clip.error_detail
    assert clip.fields["decode_backend"] == "pyav"
    assert clip.fields["codec"] == "av1"
    assert clip.video.size == (341, 256)


def test_pyav_keeps_the_frames_of_the_real_count_when_the_stream_is_shorter_than_expected(decode):
    """Matroska declares no frame count: PyAV first keeps frames planned for the whole frame limit (47 at
    24 fps); the 1-second stream ends at 24, so the frames its plan needs are decoded in a second pass."""
    payload = make_clip(Scene(seed=3, pan=(6.0, 0.0)), width=128, height=96, seconds=1.0, container="mkv")
    limit = frames_to_decode(24.0, 8.0, 16, 1 / 12)
    assert set(decode.kept_frames(24.0, 24)) - set(decode.kept_frames(24.0, limit))  # the plans differ
    video = decode_with_pyav(payload, lambda fps: limit, decode.kept_frames, lambda frame: frame, threads=1)
    assert video.count == 24 and len(video.times_s) == 24
    assert sorted(video.frames) == list(decode.kept_frames(24.0, 24))
    by_decord = decoded(decode, payload, "mkv").video
    assert by_decord.indices.tolist() == sorted(video.frames)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_is_decoded_as_displayed_by_both_backends(decode, rotation):
    scene = Scene(seed=6, pan=(10.0, 0.0))
    coded = render_scene(scene, 320, 240, 24.0, 24)
    payload = make_clip(scene, seconds=1.0, display_rotation=rotation)
    clip = decoded(decode, payload)
    assert clip.ok and clip.fields["decode_backend"] == "decord"
    upright = np.rot90(coded[0], rotation // 90)
    assert (clip.fields["width"], clip.fields["height"]) == (upright.shape[1], upright.shape[0])
    first = clip.video.frames[0]
    expected = cv2.resize(upright, first.shape[1::-1], interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(first.astype(int) - expected).mean() < 12  # H.264 at crf 18, then resized
    by_pyav = decode_with_pyav(
        payload, lambda fps: 24, decode.kept_frames, lambda frame: resize_to_short_side(frame, 256), threads=1
    )
    assert (by_pyav.width, by_pyav.height) == (clip.fields["width"], clip.fields["height"])
    assert np.abs(by_pyav.frames[0].astype(int) - first.astype(int)).mean() < 2


def shown_by_the_matrix(coded: np.ndarray, a: int, b: int, c: int, d: int) -> np.ndarray:
    """FFmpeg's display matrix, applied by its definition: coded (x, y) is shown at (a x + c y, b x + d y),
    placed in the frame."""
    ys, xs = np.mgrid[0 : coded.shape[0], 0 : coded.shape[1]]
    shown_x, shown_y = a * xs + c * ys, b * xs + d * ys
    shown_x, shown_y = shown_x - shown_x.min(), shown_y - shown_y.min()
    shown = np.zeros((shown_y.max() + 1, shown_x.max() + 1, 3), np.uint8)
    shown[shown_y, shown_x] = coded
    return shown


@pytest.mark.parametrize(
    "a, b, c, d",
    [(-1, 0, 0, 1), (1, 0, 0, -1), (0, 1, 1, 0), (0, -1, -1, 0), (-1, 0, 0, -1), (0, 1, -1, 0), (1, 0, 0, 1)],
    ids=["mirrored", "upside-down mirror", "transposed", "anti-transposed", "half turn", "quarter turn", "as coded"],
)
def test_mirrored_or_turned_video_is_decoded_as_players_show_it_by_both_backends(a, b, c, d):
    """decord (and FFmpeg's rotation reading) turns a mirrored clip instead of mirroring it: a pan right
    would be read as a pan left."""
    coded = render_scene(Scene(seed=6, pan=(10.0, 0.0)), 96, 64, 24.0, 12)
    payload = encode_video(coded, 24.0, display_matrix=matrix_of(a, b, c, d))
    shown = shown_by_the_matrix(coded[0], a, b, c, d)
    clip = decoded(DecodeStage(DecodeConfig(short_side=64)), payload)  # 64 px: no resize
    assert clip.ok and clip.fields["decode_backend"] == "decord"
    assert (clip.fields["width"], clip.fields["height"]) == (shown.shape[1], shown.shape[0])
    assert np.abs(clip.video.frames[0].astype(int) - shown).mean() < 6  # H.264 at crf 18
    by_pyav = decode_with_pyav(payload, lambda fps: 12, lambda fps, count: [0], lambda frame: frame, threads=1)
    assert (by_pyav.width, by_pyav.height) == (clip.fields["width"], clip.fields["height"])
    assert np.abs(by_pyav.frames[0].astype(int) - shown).mean() < 6


@pytest.mark.parametrize("container, codec", [("mkv", "libx264"), ("webm", "libvpx-vp9")])
@pytest.mark.parametrize("a, b, c, d", [(0, 1, -1, 0), (-1, 0, 0, 1)], ids=["quarter turn", "mirrored"])
def test_a_matroska_display_matrix_is_applied(container, codec, a, b, c, d):
    """Matroska and WebM keep the display matrix as a projection, which decord 0.6 ignores (it turns MP4s only):
    a phone clip remuxed to MKV came out lying on its side, its pans read as tilts, a mirror's as the wrong way."""
    coded = render_scene(Scene(seed=6, pan=(10.0, 0.0)), 96, 64, 24.0, 12)
    payload = encode_video(coded, 24.0, container=container, codec=codec, display_matrix=matrix_of(a, b, c, d))
    shown = shown_by_the_matrix(coded[0], a, b, c, d)
    clip = decoded(DecodeStage(DecodeConfig(short_side=64)), payload, container)
    assert clip.ok and clip.fields["decode_backend"] == "pyav"
    assert (clip.fields["width"], clip.fields["height"]) == (shown.shape[1], shown.shape[0])
    assert np.abs(clip.video.frames[0].astype(int) - shown).mean() < 8  # ~40 as coded


@pytest.mark.parametrize("track, movie", [((1, 0, 0, 1), (-1, 0, 0, 1)), ((-1, 0, 0, 1), (0, 1, -1, 0))])
def test_a_movie_header_matrix_is_applied_after_the_tracks_by_both_backends(track, movie):
    """FFmpeg applies the movie header's matrix after the track's; decord turns by their product, so the mirror
    of either must be read from both (here: a mirror in the movie header alone, then a mirror and a turn)."""
    coded = render_scene(Scene(seed=6, pan=(10.0, 0.0)), 96, 64, 24.0, 12)
    payload = with_movie_matrix(encode_video(coded, 24.0, display_matrix=matrix_of(*track)), matrix_of(*movie))
    (a, b), (c, d) = np.array(track).reshape(2, 2) @ np.array(movie).reshape(2, 2)
    shown = shown_by_the_matrix(coded[0], a, b, c, d)
    clip = decoded(DecodeStage(DecodeConfig(short_side=64)), payload)
    assert clip.ok and clip.fields["decode_backend"] == "decord"
    assert np.abs(clip.video.frames[0].astype(int) - shown).mean() < 6
    by_pyav = decode_with_pyav(payload, lambda fps: 12, lambda fps, count: [0], lambda frame: frame, threads=1)
    assert np.abs(by_pyav.frames[0].astype(int) - shown).mean() < 6


@pytest.mark.parametrize("container", ["mp4", "mkv"])
@pytest.mark.parametrize("rotation", [0, 90])
def test_an_anamorphic_video_is_decoded_as_shown(rotation, container):
    """96x64 coded pixels twice as wide as high are shown 192x64 (turned: 64x192); decoders return the coded
    pixels, in which a pan across would read at half its speed against the frame's size."""
    shown = render_scene(Scene(seed=6, pan=(10.0, 0.0)), 192, 64, 24.0, 12)
    coded = np.stack([cv2.resize(frame, (96, 64), interpolation=cv2.INTER_AREA) for frame in shown])
    payload = encode_video(coded, 24.0, container, display_rotation=rotation, sample_aspect_ratio=Fraction(2))
    clip = decoded(DecodeStage(DecodeConfig(short_side=64)), payload, container)
    upright = np.rot90(shown[0], rotation // 90)
    assert clip.ok and (clip.fields["width"], clip.fields["height"]) == (upright.shape[1], upright.shape[0])
    first = clip.video.frames[0]
    assert first.shape == upright.shape
    assert np.abs(first.astype(int) - upright).mean() < 8  # half the columns coded, then stretched back


@pytest.mark.parametrize("width, height, rotation", [(72, 48, 0), (96, 24, 90), (96, 48, -90), (96, 72, 90)])
def test_frames_that_decord_misreads_are_decoded_by_pyav(width, height, rotation):
    """decord 0.6 reads frames 16, 24, 48 or 72 px wide as shown (turned or not) as 4 or 6 channels of shuffled
    bytes."""
    coded = render_scene(Scene(seed=6, pan=(10.0, 0.0)), width, height, 24.0, 12)
    clip = decoded(DecodeStage(DecodeConfig(short_side=16)), encode_video(coded, 24.0, display_rotation=rotation))
    assert clip.ok and clip.fields["decode_backend"] == "pyav"
    upright = np.rot90(coded[0], rotation // 90)
    assert (clip.fields["width"], clip.fields["height"]) == (upright.shape[1], upright.shape[0])
    first = clip.video.frames[0]
    assert first.shape[-1] == 3
    expected = cv2.resize(upright, first.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(first.astype(int) - expected).mean() < 12


def test_the_decoder_converts_only_the_planned_frames(decode, pan_clip):
    limit = frames_to_decode(24.0, 8.0, 16, 1 / 12)
    video = decode_video(pan_clip, lambda fps: limit, decode.kept_frames, lambda frame, pixel_aspect: frame)
    assert video.backend == "decord" and video.count == limit == 48 and len(video.times_s) == 48
    kept = decode.kept_frames(24.0, 48)
    assert sorted(video.frames) == list(kept) and len(kept) == 20  # 16 samples and the second frames of 4 pairs
    assert set(range(0, 46, 3)) <= set(kept)
    assert decoded(decode, pan_clip).video.indices.tolist() == list(kept)


def test_samples_at_fps_target_and_pairs_one_12th_of_a_second_apart(decode, pan_clip):
    clip = decoded(decode, pan_clip)
    video = clip.video
    np.testing.assert_allclose(np.diff(video.times_s[video.samples]), 1 / 8, atol=1e-3)
    np.testing.assert_allclose([video.interval_s(a, b) for a, b in video.pairs], 1 / 12, atol=1e-3)
    assert video.pairs.shape == (4, 2) and len(video.chain) == 0
    assert clip.fields["frames_used"] == 16
    assert clip.fields["window_s"] == pytest.approx(15 / 8, abs=1e-3)
    assert (clip.fields["width"], clip.fields["height"], clip.fields["fps"]) == (320, 240, 24.0)
    assert clip.fields["num_frames"] == 60


def test_high_frame_rate_pairs_are_five_frames_apart(decode):
    clip = decoded(decode, make_clip(Scene(seed=4, pan=(10.0, 0.0)), fps=60, seconds=2.0))
    video = clip.video
    np.testing.assert_allclose([video.interval_s(a, b) for a, b in video.pairs], 5 / 60, atol=1e-3)


def test_portrait_and_tiny_clips_resize_short_side_keeping_aspect(decode):
    portrait = decoded(decode, make_clip(Scene(seed=5), width=240, height=320, seconds=1.0))
    assert (portrait.fields["proc_width"], portrait.fields["proc_height"]) == (256, 341)
    tiny = decoded(decode, make_clip(Scene(seed=5), width=176, height=144, seconds=1.0))
    assert (tiny.fields["proc_width"], tiny.fields["proc_height"]) == processing_size(176, 144, 256) == (313, 256)


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1921, 1081)])
def test_shrinking_keeps_smooth_content_and_does_not_alias_fine_stripes(size):
    width, height = size
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    smooth = (128 + 60 * np.sin(xs / 40) * np.cos(ys / 30)).astype(np.uint8)
    frame = np.dstack([smooth, smooth, 255 - smooth])
    shrunk = resize_to_short_side(frame, 256)
    expected_width, expected_height = processing_size(width, height, 256)
    assert shrunk.shape == (expected_height, expected_width, 3) and shrunk.dtype == np.uint8
    # smooth content: what area averaging gives, within a few grey levels
    reference = cv2.resize(frame, (expected_width, expected_height), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - reference).mean() < 2.0
    # 1-px stripes are finer than the output can hold: what survives of them (aliased, false coarser stripes) is
    # no more than area averaging leaves, far less than bilinear sampling alone
    stripes = np.dstack([np.broadcast_to(((xs % 2) * 255).astype(np.uint8), (height, width))] * 3)
    out = (expected_width, expected_height)
    residue = {
        name: shrunk[8:-8, 8:-8].std()
        for name, shrunk in (
            ("ours", resize_to_short_side(stripes, 256)),
            ("area", cv2.resize(stripes, out, interpolation=cv2.INTER_AREA)),
            ("bilinear", cv2.resize(stripes, out, interpolation=cv2.INTER_LINEAR)),
        )
    }
    assert residue["ours"] <= 1.1 * residue["area"] + 1 and residue["ours"] < 0.6 * residue["bilinear"], residue


def test_caption_from_txt_or_json(decode, pan_clip):
    assert decoded(decode, pan_clip, txt=b"a dog runs\n").fields["caption"] == "a dog runs"
    assert decoded(decode, pan_clip, json=json.dumps({"caption": "a cat"}).encode()).fields["caption"] == "a cat"
    assert decoded(decode, pan_clip, json=b"{not json").fields["caption"] is None
    assert decoded(decode, pan_clip).fields["caption"] is None


def test_bad_inputs_become_error_rows_with_specific_reasons(decode, pan_clip):
    one_frame = make_clip(Scene(seed=6), seconds=1 / 24)
    cases = {
        "decode:empty": clip_record(b""),
        "decode:unreadable": clip_record(b"this is not a video at all" * 50),
        "decode:truncated": clip_record(pan_clip[: len(pan_clip) // 2]),
        "decode:too_few_frames": clip_record(one_frame),
        "input:no_video": clip_record(b"just a caption", "txt"),
    }
    decode.process(list(cases.values()))
    for reason, clip in cases.items():
        assert (clip.status, clip.error) == ("error", reason), clip.error_detail
        assert clip.error_detail
    assert cases["decode:too_few_frames"].fields["decode_backend"] == "decord"


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="max_frames"):
        DecodeConfig(max_frames=1)
    with pytest.raises(ValueError, match="short_side"):
        DecodeConfig(short_side=4)
    with pytest.raises(ValueError, match="fps_target"):
        DecodeConfig(fps_target=0)
