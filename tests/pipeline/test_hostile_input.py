"""Bad and hostile input, built at test time: every sample gets a correct row or a specific error, the run
completes, and nothing is written outside OUT."""

from __future__ import annotations

import io
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import make_clip, write_tar

from motionpipe.pipeline.annotate import annotate
from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.inspect_run import read_metadata
from motionpipe.pipeline.shard_runner import SilentProgress
from motionpipe.pipeline.synthetic_video import Scene, render_scene
from motionpipe.pipeline.video_encoding import encode_video

SIZE = (96, 64)
FPS = 24


def encoded(container: str, codec: str, pix_fmt: str, frames: int = 24, times_ms: list[int] | None = None) -> bytes:
    """Real clips of a panning texture in formats the shared encoder does not make (grey, 10-bit, MJPEG, VFR)."""
    texture = (np.random.default_rng(0).random((SIZE[1], SIZE[0] * 3, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], pix_fmt
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, index * 2 : index * 2 + SIZE[0]]))
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


def audio_only() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("aac", rate=16000)
        for index in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


def decompression_bomb(width: int = 8000, height: int = 6000) -> bytes:
    """Two flat MJPEG frames of 48 Mpx in 1.5 MB: decoding them would take 144 MB of RGB per frame."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="avi") as output:
        stream = output.add_stream("mjpeg", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        flat = np.full((height, width, 3), 90, np.uint8)
        frame = av.VideoFrame.from_ndarray(flat, format="rgb24").reformat(format="yuvj420p")
        for index in range(2):
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


def tar_with_raw_names(path: Path, members: list[tuple[bytes, bytes]]) -> None:
    """A tar whose member names are raw bytes (not necessarily UTF-8)."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as archive:
        for name, payload in members:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


EXPECTED_ERRORS = {
    "truncated": "decode:truncated",
    "zero_bytes": "decode:empty",
    "html_page": "decode:unreadable",
    "one_frame": "decode:too_few_frames",
    "audio_only": "decode:no_video_stream",
    "bomb": "decode:too_large",
    "payload": "input:no_video",
    "../escape": "input:unsafe_name",
    "/absolute/clip": "input:unsafe_name",
}
EXPECTED_OK = (
    "clip", "grey", "ten_bit", "mjpeg_as_webm", "variable_rate", "rotated", "rotated_mkv", "mirrored", "thumbnail",
    "wide", "anamorphic", "caf\\xe9",
)  # fmt: skip
MIRROR = (-1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)  # display matrix: x -> -x (a selfie camera)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    root = tmp_path_factory.mktemp("hostile")
    clip = make_clip(Scene(seed=8, pan=(6.0, 0.0)), *SIZE, seconds=1.5)
    rotated = make_clip(Scene(seed=8, pan=(6.0, 0.0)), *SIZE, seconds=1.5, display_rotation=90)  # a phone clip
    rotated_mkv = make_clip(Scene(seed=8, pan=(6.0, 0.0)), *SIZE, seconds=1.5, display_rotation=90, container="mkv")
    mirrored = make_clip(Scene(seed=8, pan=(6.0, 3.0)), *SIZE, seconds=1.5, display_matrix=MIRROR)
    wide = render_scene(Scene(seed=8, pan=(9.0, 0.0)), 2 * SIZE[0], SIZE[1], FPS, 36)
    squeezed = np.stack([cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA) for frame in wide])  # 2:1 pixels
    steps_ms = [0, *np.cumsum(np.resize([30, 50, 40, 60, 35, 45], 59)).tolist()]  # 2.6 s, about 23 fps
    write_tar(
        root / "in" / "hostile-000.tar",
        [
            ("clip.mp4", clip),
            ("truncated.mp4", clip[: len(clip) // 2]),
            ("zero_bytes.mp4", b""),
            ("html_page.mp4", b"<html>404 not found</html>" * 40),
            ("one_frame.mp4", make_clip(Scene(seed=9), *SIZE, seconds=1 / FPS)),
            ("audio_only.mp4", audio_only()),
            ("bomb.avi", decompression_bomb()),
            ("payload.bin", clip),  # a video under a non-video extension is not guessed at
            ("grey.mp4", encoded("mp4", "libx264", "gray", frames=36)),
            ("ten_bit.mp4", encoded("mp4", "libx264", "yuv420p10le", frames=36)),
            ("mjpeg_as_webm.webm", encoded("avi", "mjpeg", "yuvj420p", frames=36)),  # wrong extension
            ("variable_rate.mp4", encoded("mp4", "libx264", "yuv420p", frames=60, times_ms=steps_ms)),
            ("rotated.mp4", rotated),
            ("rotated_mkv.mkv", rotated_mkv),  # the same remuxed: Matroska keeps the turn as a projection
            ("mirrored.mp4", mirrored),
            ("thumbnail.mp4", make_clip(Scene(seed=8, pan=(6.0, 0.0)), 72, 48, seconds=1.5)),  # decord misreads it
            ("wide.mp4", encode_video(wide, FPS)),
            ("anamorphic.mp4", encode_video(squeezed, FPS, sample_aspect_ratio=Fraction(2))),  # shown as wide
            ("../escape.mp4", clip),
            ("/absolute/clip.mp4", clip),
            ("clip.mp4", clip),  # the key 'clip' again, not adjacent: a second sample with the same key
        ],
    )
    tar_with_raw_names(root / "in" / "names-000.tar", [(b"caf\xe9.mp4", clip)])
    out = root / "work" / "out"
    config = build_config(overrides=["conditions.include=all"])
    result = annotate(sorted(str(p) for p in (root / "in").glob("*.tar")), out, config, SilentProgress(), local=True)
    assert not result.failed
    rows: dict[str, list[dict]] = {}
    for row in read_metadata(out).to_pylist():
        rows.setdefault(row["key"], []).append(row)
    return root, rows


def test_every_bad_sample_gets_its_specific_error(hostile_run):
    _, rows = hostile_run
    for key, reason in EXPECTED_ERRORS.items():
        assert [(row["status"], row["error"]) for row in rows[key]] == [("error", reason)], key
    assert "8000x6000" in rows["bomb"][0]["error_detail"]


def test_unusual_but_valid_videos_are_annotated(hostile_run):
    _, rows = hostile_run
    for key in EXPECTED_OK:
        ok = [row for row in rows[key] if row["status"] == "ok"]
        assert len(ok) == 1, (key, rows[key])
        assert ok[0]["flow_mean"] > 0.5 and ok[0]["frames_used"] >= 8
    assert rows["mjpeg_as_webm"][0]["codec"] == "mjpeg"
    variable = rows["variable_rate"][0]
    assert variable["window_s"] == pytest.approx(15 / 8, abs=0.06)  # sampled by timestamps, not by index


@pytest.mark.parametrize("key", ["rotated", "rotated_mkv"])
def test_a_rotated_clip_is_measured_as_displayed(hostile_run, key):
    """Turned 90 degrees counter-clockwise for display, the coded clip's pan (x) becomes a tilt (-y)."""
    _, rows = hostile_run
    coded, shown = rows["clip"][0], rows[key][0]
    assert (shown["width"], shown["height"]) == (coded["height"], coded["width"]) == (SIZE[1], SIZE[0])
    assert coded["camera_type"].startswith("pan") and shown["camera_type"].startswith("tilt")
    assert shown["cam_ty"] == pytest.approx(-coded["cam_tx"], rel=0.1)
    assert shown["cam_tx"] == pytest.approx(coded["cam_ty"], abs=0.5)


def test_a_mirrored_clip_is_measured_as_displayed(hostile_run):
    """Mirrored left to right for display, a pan right and down is shown going left and down (decoders that
    read only the rotation turn it by half instead: left and up)."""
    _, rows = hostile_run
    coded, shown = rows["clip"][0], rows["mirrored"][0]  # the same scene, panning (6, 0) and (6, 3) px a frame
    assert (shown["width"], shown["height"]) == (coded["width"], coded["height"])
    assert shown["cam_tx"] == pytest.approx(-coded["cam_tx"], rel=0.1)
    assert shown["cam_ty"] == pytest.approx(coded["cam_tx"] / 2, rel=0.15)


def test_a_thumbnail_that_decord_misreads_is_decoded_by_pyav_and_measured(hostile_run):
    """decord returns frames 72 px wide as 4 channels of shuffled bytes; PyAV decodes them right."""
    _, rows = hostile_run
    coded, thumbnail = rows["clip"][0], rows["thumbnail"][0]
    assert thumbnail["decode_backend"] == "pyav" and (thumbnail["width"], thumbnail["height"]) == (72, 48)
    assert thumbnail["camera_type"] == coded["camera_type"] and coded["camera_type"].startswith("pan")


def test_an_anamorphic_clip_is_measured_as_shown(hostile_run):
    """Coded at half the width with pixels twice as wide, it is the wide clip as players show it: the same size
    and the same pan, not half of it against a frame of half the width."""
    _, rows = hostile_run
    wide, anamorphic = rows["wide"][0], rows["anamorphic"][0]
    assert (anamorphic["width"], anamorphic["height"]) == (wide["width"], wide["height"]) == (2 * SIZE[0], SIZE[1])
    assert anamorphic["camera_type"] == wide["camera_type"] and wide["camera_type"].startswith("pan")
    assert anamorphic["cam_tx"] == pytest.approx(wide["cam_tx"], rel=0.1)


def test_a_duplicated_key_gets_a_second_row_marked_as_such(hostile_run):
    _, rows = hostile_run
    assert [(row["status"], row["error"]) for row in rows["clip"]] == [("ok", None), ("error", "input:duplicate_key")]


def test_nothing_is_written_outside_out_and_unsafe_keys_are_not_stored(hostile_run):
    root, rows = hostile_run
    outside = {p.relative_to(root) for p in root.rglob("*") if "out" not in p.relative_to(root).parts}
    assert outside == {Path("in"), Path("in/hostile-000.tar"), Path("in/names-000.tar"), Path("work")}
    with tarfile.open(root / "work" / "out" / "conditions" / "hostile-000.tar") as archive:
        stored = [member.name for member in archive.getmembers()]
    assert sorted(stored) == sorted(f"{key}.npz" for key in EXPECTED_OK if key != "caf\\xe9")
    assert sum(len(found) for found in rows.values()) == 22  # one row per sample
