"""``motionpipe report`` on a real annotated run: every linked image exists and loads in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import motionpipe
from PIL import Image

from motionpipe.pipeline.report import build_report
from motionpipe.pipeline.report_images import GIF_FRAME_MS

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class PageParts(HTMLParser):
    """Image sources and visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def parse(index: Path) -> PageParts:
    parts = PageParts()
    parts.feed(index.read_text())
    return parts


@pytest.fixture(scope="module")
def report(annotated_run, tmp_path_factory):
    return build_report(annotated_run / "out", tmp_path_factory.mktemp("report") / "report", gallery=4)


def test_every_linked_image_exists_and_gallery_clips_are_animated(report):
    page = parse(report)
    charts = [src for src in page.images if src.endswith(".png")]
    gifs = [src for src in page.images if src.endswith(".gif")]
    assert {"object_motion.png", "camera_motion.png", "flow_mean.png", "camera_type.png", "error.png"} <= set(charts)
    assert len(gifs) == 4
    for src in page.images:
        with Image.open(report.parent / src) as image:
            image.verify()
    frame_counts = []
    for src in gifs:
        with Image.open(report.parent / src) as gif:
            durations = []
            for index in range(gif.n_frames):
                gif.seek(index)
                durations.append(gif.info["duration"])
            assert gif.size == (144, 96) and sum(durations) == 16 * GIF_FRAME_MS  # 16 samples (still ones merged)
            frame_counts.append(gif.n_frames)
    assert max(frame_counts) == 16
    text = " ".join(page.text)
    assert "decode:unreadable" in text and "dis:balanced" in text
    assert sorted(p.name for p in report.parent.parent.iterdir()) == ["report"]  # no staging folder left behind


def test_renders_in_headless_chromium_with_no_broken_image(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; .ci/run installs it)")
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    images = len(parse(report).images)
    assert f'data-images-loaded="{images}"' in done.stdout, done.stderr[-2000:]
    assert 'data-images-broken="0"' in done.stdout


def test_a_clip_that_cannot_be_read_back_is_named_and_the_report_still_builds(annotated_run, tmp_path):
    (tmp_path / "empty").mkdir()
    index = build_report(annotated_run / "out", tmp_path / "r", gallery=2, shards=str(tmp_path / "empty"))
    text = " ".join(parse(index).text)
    assert text.count("not readable") == 2 and not list((tmp_path / "r" / "gallery").iterdir())
    again = motionpipe("report", str(annotated_run / "out"), "--to", str(tmp_path / "r"), "--gallery", "1")
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "r" / "gallery").iterdir())) == 1  # the earlier report was replaced as a whole
    assert motionpipe("report", str(tmp_path / "nothing")).returncode == 2


def test_chart_axes_have_round_ticks_and_a_log_scale_where_counts_span_orders_of_magnitude():
    from motionpipe.pipeline.report_images import log_ticks, nice_ticks, wants_log_scale

    assert nice_ticks(37) == [0, 10, 20, 30, 40] and nice_ticks(0.8) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert nice_ticks(0) == [0, 1] and nice_ticks(2, whole=True) == [0, 1, 2]  # no half clips
    assert log_ticks(1500) == [0, 1, 10, 100, 1000, 10000]
    assert wants_log_scale([900, 12, 3]) and not wants_log_scale([40, 25, 3]) and not wants_log_scale([5, 0])


def test_object_against_camera_motion_is_plotted_per_clip(report, annotated_run):
    assert "object vs camera motion (%diag/s)" in "".join(parse(report).text)
    with Image.open(report.parent / "object_vs_camera.png") as chart:
        pixels = np.asarray(chart.convert("RGB"))
    from motionpipe.pipeline.report_images import MARGIN, POINT_COLOUR

    left, top, right, bottom = MARGIN
    inside = pixels[top : pixels.shape[0] - bottom, left : pixels.shape[1] - right]
    marks = np.all(inside == POINT_COLOUR, axis=-1)
    assert marks.sum() >= 9 * 5  # a dot of at least 9 px per ok clip, some overlapping: most of the 11 show
