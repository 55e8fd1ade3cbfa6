import pyarrow.parquet as pq
import pytest

from pipeline.run_outputs import RunLayout, write_atomically
from schemas.metadata import rows_to_table

ROW = {"key": "k", "shard": "s.tar", "status": "ok", "pipeline_version": "0", "config_hash": "h"}


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.parquet"

    def explode(temp):
        temp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, explode)
    assert list(tmp_path.iterdir()) == []


def test_shard_is_done_only_with_table_manifest_and_same_config(tmp_path):
    layout = RunLayout(tmp_path)
    assert not layout.is_done("s", "h")
    layout.write_shard("s", rows_to_table([ROW]), {"config_hash": "h"})
    assert layout.is_done("s", "h")
    assert not layout.is_done("s", "other")
    assert pq.read_table(layout.metadata_path("s")).column("key").to_pylist() == ["k"]
    layout.metadata_path("s").unlink()
    assert not layout.is_done("s", "h")


def test_failed_shard_is_recorded_and_not_done(tmp_path):
    layout = RunLayout(tmp_path)
    layout.write_shard("s", rows_to_table([ROW]), {"config_hash": "h"})
    layout.record_failed_shard("s", {"config_hash": "h", "message": "cannot read"})
    assert not layout.is_done("s", "h")
    assert not layout.metadata_path("s").exists()
    assert layout.manifest()["s"]["message"] == "cannot read"
