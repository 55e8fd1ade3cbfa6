"""A worker's memory stays flat however many clips and shards it annotates (issue 6: bounded work in flight).

Measured (peak RSS of one process, 320x240 clips): statistics only, 8 clips 235-242 MB, 64 in 4 shards 249-255
MB, 192 in 12 shards (short side 128) 204 MB; with every condition at short side 128, 290 / 330-341 / 344 MB: the
allocator settles within a few batches, then nothing grows. A clip's frames alone are ~4 MB, its flows more, so
anything kept per clip would show at 64 clips.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_clip, write_tar

from motionpipe.pipeline.synthetic_video import Scene

PEAK_OF_ANNOTATE = """
import resource, sys
from motionpipe.pipeline.cli import main
assert main(sys.argv[1:]) == 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
GROWTH_ALLOWED = 1.3  # peak of 8x the clips over the peak of a shard of two batches


@pytest.fixture(scope="module")
def shard_sets(tmp_path_factory) -> dict[str, Path]:
    """``one``: a shard of 8 clips (two batches); ``many``: 4 shards of 16 (64 clips); the same real clip."""
    root = tmp_path_factory.mktemp("memory")
    clip = make_clip(Scene(seed=3, pan=(6.0, 2.0)))
    write_tar(root / "one" / "shard-000.tar", [(f"c{index}.mp4", clip) for index in range(8)])
    for shard in range(4):
        write_tar(root / "many" / f"shard-{shard:03d}.tar", [(f"s{shard}c{i}.mp4", clip) for i in range(16)])
    return {"one": root / "one", "many": root / "many"}


def peak_rss_kb(shards: Path, out: Path, *options: str) -> int:
    """Peak resident memory of a fresh process annotating ``shards`` in process (no Ray: one worker's share)."""
    command = [sys.executable, "-c", PEAK_OF_ANNOTATE, "annotate", str(shards), str(out), "--local", *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.parametrize(
    "options",
    [("--conditions", "none"), ("--conditions", "all", "--short-side", "128")],
    ids=["statistics", "every condition"],
)
def test_peak_memory_does_not_grow_with_the_clips_and_shards_annotated(shard_sets, tmp_path, options):
    one = peak_rss_kb(shard_sets["one"], tmp_path / "one", *options)
    many = peak_rss_kb(shard_sets["many"], tmp_path / "many", *options)
    assert many < GROWTH_ALLOWED * one, (one, many)
