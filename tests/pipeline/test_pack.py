"""``motionpipe pack`` and annotate over a plain folder of videos: real mp4 files in, real shards out."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_clip, motionpipe, rows_by_key

from motionpipe.pipeline.pack import pack_videos
from motionpipe.pipeline.shard_reader import iter_samples
from motionpipe.pipeline.synthetic_video import Scene


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Five short clips at two depths, a caption beside one, and files that are not videos."""
    root = tmp_path_factory.mktemp("videos")
    (root / "trip" / "day.2").mkdir(parents=True)
    clip = make_clip(Scene(seed=81, pan=(5.0, 0.0)), 96, 64, seconds=1.0)
    for relative in ("a.mp4", "b.MP4", "trip/c.mp4", "trip/day.2/d.mp4", "trip/day.2/e.mkv"):
        (root / relative).write_bytes(clip)
    (root / "a.txt").write_text("a pan over a still scene")
    (root / "notes.md").write_text("not a video")
    (root / ".hidden.mp4").write_bytes(clip)
    return root


def test_packs_every_video_with_its_sidecars_into_shards_of_maxcount(videos, tmp_path):
    shards = pack_videos(videos, tmp_path / "shards", maxcount=2)
    assert [shard.name for shard in shards] == ["videos-000000.tar", "videos-000001.tar", "videos-000002.tar"]
    samples = {sample.key: sample for shard in shards for sample in iter_samples(str(shard))}
    assert sorted(samples) == ["a", "b", "trip/c", "trip/day_2/d", "trip/day_2/e"]
    assert samples["a"].payloads == {"mp4": (videos / "a.mp4").read_bytes(), "txt": b"a pan over a still scene"}
    assert set(samples["b"].payloads) == {"mp4"} and set(samples["trip/day_2/e"].payloads) == {"mkv"}
    again = pack_videos(videos, tmp_path / "again", maxcount=2)
    assert [shard.read_bytes() for shard in again] == [shard.read_bytes() for shard in shards]  # deterministic
    with pytest.raises(FileExistsError, match="already holds shards"):
        pack_videos(videos, tmp_path / "shards")
    assert not [path for path in (tmp_path / "shards").iterdir() if path.name.startswith(".")]


def test_clear_errors_for_folders_it_cannot_pack(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no video files"):
        pack_videos(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "twins").mkdir()
    (tmp_path / "twins" / "x.mp4").write_bytes(b"1")
    (tmp_path / "twins" / "x.webm").write_bytes(b"2")
    with pytest.raises(ValueError, match=r"share sample keys \['x'\]"):
        pack_videos(tmp_path / "twins", tmp_path / "out")
    done = motionpipe("pack", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert done.returncode == 2 and "no video files" in done.stderr


def test_annotate_takes_a_folder_of_videos_and_resumes_without_repacking(videos, tmp_path):
    out = tmp_path / "out"
    done = motionpipe("annotate", str(videos), str(out), "--conditions", "none")
    assert done.returncode == 0, done.stderr
    rows = rows_by_key(out)
    assert sorted(rows) == ["a", "b", "trip/c", "trip/day_2/d", "trip/day_2/e"]
    packed = sorted((out / "packed").rglob("*.tar"))  # OUT/packed/NAME-HASH/NAME-HASH-000000.tar
    assert len(packed) == 1 and packed[0].stem == f"{packed[0].parent.name}-000000"
    assert all(row["status"] == "ok" and row["shard"] == str(packed[0]) for row in rows.values())
    stamps = [path.stat().st_mtime_ns for path in packed]
    again = motionpipe("annotate", str(videos), str(out), "--conditions", "none")
    assert again.returncode == 0 and "1 already done" in again.stdout, again.stdout
    assert [path.stat().st_mtime_ns for path in packed] == stamps
