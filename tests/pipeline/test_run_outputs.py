"""Run outputs on a local folder, a file:// URL and an object store (no rename): whole files or nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from motionpipe.pipeline.run_outputs import ConditionsTar, RunLayout, write_atomically
from motionpipe.pipeline.run_storage import RunStorage
from motionpipe.schemas.metadata import rows_to_table

ROW = {"key": "k", "shard": "s.tar", "status": "ok", "pipeline_version": "0", "config_hash": "h"}


def object_store(root: Path) -> RunStorage:
    """Object-store semantics on local disk: a filesystem pyarrow does not know to rename atomically."""
    root.mkdir(parents=True, exist_ok=True)
    return RunStorage(fs.SubTreeFileSystem(str(root), fs.LocalFileSystem()), "out")


STORAGES = {
    "local": lambda root: RunStorage.at(root / "out"),
    "file_url": lambda root: RunStorage.at((root / "out").as_uri()),
    "object_store": object_store,
}


@pytest.fixture(params=STORAGES)
def layout(request, tmp_path) -> RunLayout:
    return RunLayout(STORAGES[request.param](tmp_path))


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.parquet"

    def explode(temp):
        temp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, explode)
    assert list(tmp_path.iterdir()) == []


def test_shard_is_done_only_with_table_manifest_and_same_config(layout, tmp_path):
    assert layout.done_shards(["s"], "h") == set()
    layout.write_shard("s", rows_to_table([ROW]), {"config_hash": "h"})
    assert layout.done_shards(["s", "never-started"], "h") == {"s"}
    assert layout.done_shards(["s"], "other") == set()
    assert layout.done_shards(["t"], "h") == set()  # only the shards asked about
    assert layout.metadata().to_table().column("key").to_pylist() == ["k"]
    assert files_under(tmp_path) == {"out/metadata/s.parquet", "out/manifest/s.json"}
    layout.storage.delete(layout.metadata_file("s"))
    assert layout.done_shards(["s"], "h") == set()


def test_failed_shard_is_recorded_and_not_done(layout):
    layout.write_shard("s", rows_to_table([ROW]), {"config_hash": "h"})
    layout.record_failed_shard("s", {"config_hash": "h", "message": "cannot read"})
    assert layout.done_shards(["s"], "h") == set()
    assert not layout.storage.exists(layout.metadata_file("s"))
    assert layout.manifest()["s"]["message"] == "cannot read"


def test_done_shards_are_told_apart_among_many(layout):
    for index in range(100):
        shard = f"s{index:03d}"
        if index % 4 == 3:
            continue  # never started
        layout.write_shard(
            shard, rows_to_table([{**ROW, "shard": shard}]), {"config_hash": "h" if index % 4 else "old"}
        )
        if index % 4 == 2:
            layout.record_failed_shard(shard, {"config_hash": "h", "message": "cannot read"})
    expected = {f"s{index:03d}" for index in range(100) if index % 4 == 1}
    assert layout.done_shards([f"s{index:03d}" for index in range(100)], "h") == expected
    assert len(layout.manifest()) == 75 and len(layout.manifest(["s000", "s003", "zzz"])) == 1


def test_readers_never_see_a_file_being_written(layout, tmp_path):
    seen_while_writing = []

    def produce(path: str) -> None:
        Path(path).write_bytes(b"x" * 100)
        seen_while_writing.extend(files_under(tmp_path))

    layout.storage.write("metadata/s.parquet", produce)
    visible = [name for name in seen_while_writing if not Path(name).name.startswith(".")]
    assert visible == []  # a local disk shows only a hidden temporary; an object store nothing at all
    assert files_under(tmp_path) == {"out/metadata/s.parquet"}

    tar = ConditionsTar(layout.storage, layout.conditions_file("s"))
    tar.discard()
    assert files_under(tmp_path) == {"out/metadata/s.parquet"}


def test_stale_temporaries_are_removed(tmp_path):
    layout = RunLayout.at(tmp_path / "out")
    (tmp_path / "out" / "metadata").mkdir(parents=True)
    (tmp_path / "out" / "metadata" / ".s.parquet.1234abcd.tmp").write_bytes(b"half")
    layout.write_shard("s", rows_to_table([ROW]), {"config_hash": "h"})
    layout.remove_stale_temporaries()
    assert files_under(tmp_path) == {"out/metadata/s.parquet", "out/manifest/s.json"}
    assert pq.read_table(tmp_path / "out" / "metadata" / "s.parquet").num_rows == 1


KILLED_WRITER = """
import sys, time
import numpy as np
from pyarrow import fs
from motionpipe.pipeline.run_outputs import ConditionsTar
from motionpipe.pipeline.run_storage import RunStorage
storage = RunStorage(fs.SubTreeFileSystem(sys.argv[1], fs.LocalFileSystem()), "out")
conditions = ConditionsTar(storage, "conditions/s.tar")
conditions.add("k", {"mask": np.ones((64, 64), bool)})
print(conditions.staging, flush=True)
time.sleep(120)
"""


def test_the_scratch_files_of_killed_writers_go_with_the_next_write(tmp_path, monkeypatch):
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    left_behind = Path(writer.stdout.readline().strip())
    os.kill(writer.pid, signal.SIGKILL)  # mid-shard: never publishes nor discards
    writer.wait()
    writer.stdout.close()
    assert left_behind.is_file() and left_behind.is_relative_to(scratch_root)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    conditions = ConditionsTar(object_store(tmp_path), "conditions/t.tar")
    assert not left_behind.exists()
    assert Path(conditions.staging).is_file()  # this process's own stays while it writes
    conditions.publish()
    assert not Path(conditions.staging).exists() and (tmp_path / "out" / "conditions" / "t.tar").is_file()
