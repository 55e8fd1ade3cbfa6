import pytest

from motionpipe.pipeline.shard_reader import ShardReadError, iter_samples, resolve_shards, shard_name, split_member_name


def test_member_names_split_webdataset_style():
    assert split_member_name("a/b/clip_01.mp4") == ("a/b/clip_01", "mp4")
    assert split_member_name("clip.seg.MP4") == ("clip", "seg.mp4")
    assert split_member_name("README") == ("README", "")


def test_consecutive_members_group_into_samples(tar_writer):
    path = tar_writer("s.tar", [("x/a.mp4", b"A"), ("x/a.json", b"{}"), ("x/b.mp4", b"B"), ("x/c.txt", b"C")])
    samples = list(iter_samples(str(path)))
    assert [s.key for s in samples] == ["x/a", "x/b", "x/c"]
    assert samples[0].payloads == {"mp4": b"A", "json": b"{}"}
    assert samples[0].member_names["json"] == "x/a.json"


def test_unreadable_or_truncated_tar_raises(tmp_path, tar_writer):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00\x01not a tar" * 100)
    with pytest.raises(ShardReadError, match="garbage.tar"):
        list(iter_samples(str(garbage)))
    good = tar_writer("good.tar", [("a.mp4", b"x" * 5000), ("b.mp4", b"y" * 5000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:6000])
    with pytest.raises(ShardReadError):
        list(iter_samples(str(cut)))
    with pytest.raises(ShardReadError, match="missing.tar"):
        list(iter_samples(str(tmp_path / "missing.tar")))


def test_inputs_resolve_from_directories_globs_and_files(tmp_path, tar_writer):
    a = tar_writer("d/a.tar", [("k.txt", b"")])
    b = tar_writer("d/b.tar", [("k.txt", b"")])
    assert resolve_shards([str(tmp_path / "d")]) == [str(a), str(b)]
    assert resolve_shards([str(tmp_path / "d" / "*.tar"), str(a)]) == [str(a), str(b)]
    assert shard_name(str(a)) == "a"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_shards([str(tmp_path / "nope.tar")])
    with pytest.raises(FileNotFoundError, match="no .tar shards"):
        resolve_shards([str(tmp_path)])
    other = tar_writer("e/a.tar", [("k.txt", b"")])
    with pytest.raises(ValueError, match="share names"):
        resolve_shards([str(a), str(other)])


def test_shards_are_listed_and_read_through_filesystem_urls(tmp_path, tar_writer):
    for name in ("a-000.tar", "b-000.tar"):
        tar_writer(name, [("k1.mp4", b"x" * 600), ("k1.txt", b"caption"), ("k2.mp4", b"y" * 10)])
    (tmp_path / "notes.md").write_text("not a shard")
    folder = f"file://{tmp_path}"
    assert resolve_shards([folder]) == [f"{folder}/a-000.tar", f"{folder}/b-000.tar"]
    assert resolve_shards([f"{folder}/b-*.tar"]) == [f"{folder}/b-000.tar"]
    url = f"{folder}/a-000.tar"
    local = list(iter_samples(str(tmp_path / "a-000.tar")))
    remote = list(iter_samples(url))
    assert [s.key for s in remote] == ["k1", "k2"] and remote == local
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_shards([f"{folder}/missing.tar"])
