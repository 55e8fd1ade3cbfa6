"""``motionpipe filter`` on a real annotated run: the same rows as pandas selects, real shards out."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import motionpipe

from motionpipe.pipeline.dataset_filter import FilterTargetError, NullColumnError, filter_run, select_rows
from motionpipe.pipeline.filter_expression import ExpressionError
from motionpipe.pipeline.shard_reader import iter_samples

# expression for motionpipe -> the same selection written for pandas' DataFrame.query
SAME_SELECTIONS = {
    "object_motion >= 2 and camera_type == 'static'": "object_motion >= 2 and camera_type == 'static'",
    "camera_type in ['pan_left', 'pan_right'] or flow_mean > 8": (
        "camera_type in ['pan_left', 'pan_right'] or flow_mean > 8"
    ),
    "not static_clip and object_motion > 2 * camera_motion": (
        "static_clip == False and object_motion > 2 * camera_motion"
    ),
    "status == 'error'": "status == 'error'",
    "1 < flow_mean <= 6": "1 < flow_mean <= 6",
    "object_score is None and -camera_motion < -1": "object_score.isnull() and -camera_motion < -1",
}


@pytest.fixture(scope="module")
def metadata(annotated_run):
    return pd.read_parquet(annotated_run / "out" / "metadata")


@pytest.mark.parametrize("where", SAME_SELECTIONS)
def test_selects_the_rows_pandas_selects(annotated_run, metadata, where):
    expected = metadata.query(SAME_SELECTIONS[where], engine="python")
    selected = select_rows(annotated_run / "out", where)
    assert sorted(selected.column("key").to_pylist()) == sorted(expected["key"])


def test_the_selections_are_not_trivial(annotated_run, metadata):
    sizes = [len(metadata.query(query, engine="python")) for query in SAME_SELECTIONS.values()]
    assert all(0 < size < len(metadata) for size in sizes), sizes


def test_writes_rows_and_streamed_shards_of_the_selected_ok_clips(annotated_run, metadata, tmp_path):
    where = "flow_mean > 2 or status == 'error'"
    done = motionpipe("filter", str(annotated_run / "out"), "--where", where, "--to", str(tmp_path / "f"), "--shards")
    assert done.returncode == 0, done.stderr
    expected = metadata.query("flow_mean > 2 or status == 'error'", engine="python")
    table = pq.read_table(tmp_path / "f" / "metadata.parquet")
    assert sorted(table.column("key").to_pylist()) == sorted(expected["key"])
    assert table.schema.metadata[b"motionpipe.selection"].decode() == where
    selection = json.loads((tmp_path / "f" / "selection.json").read_text())
    assert selection["where"] == where and selection["rows_in"] == len(metadata)

    copied = {}
    for shard in sorted((tmp_path / "f" / "shards").glob("*.tar")):
        for sample in iter_samples(str(shard)):
            copied[(shard.stem, sample.key)] = sample
    ok = expected[expected["status"] == "ok"]
    assert sorted(copied) == sorted((row.shard.rsplit("/", 1)[-1][:-4], row.key) for row in ok.itertuples())
    originals = {s.key: s for shard in ok["shard"].unique() for s in iter_samples(shard)}
    rows = {row["key"]: row for row in table.to_pylist()}
    for (_, key), sample in copied.items():
        motion = json.loads(sample.payloads.pop("motion.json"))  # the clip's row, beside its members
        assert motion["key"] == key and motion["object_motion"] == pytest.approx(rows[key]["object_motion"])
        assert sample.payloads == originals[key].payloads  # every member of the sample, byte for byte
    assert copied["mixed-000000", "pan"].payloads["txt"] == b"a pan"
    assert "broken" in set(expected["key"]) and ("mixed-000000", "broken") not in copied


def test_bad_expressions_are_clear_errors(annotated_run):
    out = annotated_run / "out"
    with pytest.raises(ExpressionError, match="unknown column 'object_moton'; columns: key, shard"):
        select_rows(out, "object_moton > 3")
    with pytest.raises(ExpressionError, match="camera_type: string"):
        select_rows(out, "camera_type > 3")
    with pytest.raises(ExpressionError, match="cannot parse"):
        select_rows(out, "object_motion >")
    with pytest.raises(ExpressionError, match="expected a comparison"):
        select_rows(out, "__import__('os').system('true')")
    with pytest.raises(ExpressionError, match="list of literals"):
        select_rows(out, "camera_type in camera_type")


def test_an_earlier_selection_is_replaced_only_with_overwrite(annotated_run, tmp_path):
    out, target = annotated_run / "out", tmp_path / "f"
    filter_run(out, "flow_mean > 0", target, write_shards=True)
    with pytest.raises(FilterTargetError, match="--overwrite"):
        filter_run(out, "flow_mean > 100", target)
    result = filter_run(out, "flow_mean > 100", target, overwrite=True)
    assert result.rows_selected == 0 and pq.read_table(target / "metadata.parquet").num_rows == 0
    assert not (target / "shards").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FilterTargetError, match="not empty"):
        filter_run(out, "flow_mean > 0", tmp_path / "other", overwrite=True)


def test_a_url_destination_gets_the_same_files_as_a_folder(annotated_run, tmp_path):
    out, where = annotated_run / "out", "flow_mean > 2"
    filter_run(out, where, tmp_path / "folder", write_shards=True)
    result = filter_run(out, where, (tmp_path / "url").as_uri(), write_shards=True)  # file://, as s3:// and gs://
    assert result.clips_written > 0
    for relative in ["metadata.parquet", *(f"shards/{name}.tar" for name in result.shards_written)]:
        assert (tmp_path / "url" / relative).read_bytes() == (tmp_path / "folder" / relative).read_bytes(), relative
    names = {folder: sorted(p.name for p in (tmp_path / folder).rglob("*")) for folder in ("url", "folder")}
    assert names["url"] == names["folder"]
    with pytest.raises(FilterTargetError, match="--overwrite"):
        filter_run(out, where, (tmp_path / "url").as_uri())


def test_a_file_as_destination_is_refused(annotated_run, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    done = motionpipe("filter", str(annotated_run / "out"), "--where", "flow_mean > 2", "--to", str(tmp_path / "file"))
    assert done.returncode == 2 and "is a file, not a folder" in done.stderr, done.stderr
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_selection_emptied_by_a_column_no_stage_filled_is_an_error(annotated_run, tmp_path):
    # the run had no estimator: object_score is null everywhere, so ">= 6" would silently select nothing
    with pytest.raises(NullColumnError, match="object_score is null in every row.*--estimator"):
        select_rows(annotated_run / "out", "object_score >= 6 and flow_mean > 0")
    assert select_rows(annotated_run / "out", "flow_mean > 1000").num_rows == 0  # empty, but not for that reason
    done = motionpipe("filter", str(annotated_run / "out"), "--where", "object_score >= 6", "--to", str(tmp_path / "f"))
    assert done.returncode == 2 and "null in every row" in done.stderr and not (tmp_path / "f").exists()


def test_reshards_through_webdataset_shardwriter(annotated_run, tmp_path):
    result = filter_run(annotated_run / "out", "flow_mean > 0", tmp_path / "f", write_shards=True, maxcount=3)
    shards = sorted((tmp_path / "f" / "shards").glob("*.tar"))
    assert [shard.name for shard in shards] == [f"selected-{i:06d}.tar" for i in range(len(shards))]
    assert result.shards_written == [shard.stem for shard in shards]
    samples = [sample for shard in shards for sample in iter_samples(str(shard))]
    assert [len(list(iter_samples(str(shard)))) for shard in shards][:-1] == [3] * (len(shards) - 1)
    assert len(samples) == result.clips_written == result.ok_selected > 3
    assert all({"mp4", "motion.json"} <= set(sample.payloads) for sample in samples)
    assert not [name for name in (tmp_path / "f").iterdir() if name.name.startswith(".")]  # no staging left


def test_shards_moved_since_annotation_are_read_from_their_new_folder(tmp_path):
    from motionpipe.pipeline.annotate import annotate
    from motionpipe.pipeline.config import build_config
    from motionpipe.pipeline.sample_data import SampleSpec, write_sample_data
    from motionpipe.pipeline.shard_reader import resolve_shards
    from motionpipe.pipeline.shard_runner import SilentProgress

    write_sample_data(tmp_path / "data", shards=1, clips_per_shard=3, seed=9, spec=SampleSpec(96, 64, 24.0, 1.0))
    config = build_config(overrides=["conditions.include=none"])
    shards = resolve_shards([str(tmp_path / "data" / "shards")])
    annotate(shards, tmp_path / "out", config, SilentProgress(), local=True)
    (tmp_path / "data" / "shards").rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match="missing.*--shards DIR"):
        filter_run(tmp_path / "out", "flow_mean >= 0", tmp_path / "f", write_shards=True)
    assert not (tmp_path / "f").exists()  # nothing left to block the rerun
    with pytest.raises(FileNotFoundError, match="is that the folder"):
        filter_run(tmp_path / "out", "flow_mean >= 0", tmp_path / "f", write_shards=True, shards_from=str(tmp_path))
    done = motionpipe(
        "filter", str(tmp_path / "out"), "--where", "flow_mean >= 0", "--to", str(tmp_path / "f"),
        "--shards", str(tmp_path / "moved"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list(iter_samples(str(tmp_path / "f" / "shards" / "sample-000000.tar")))) == 3


def test_the_shards_of_a_selection_that_stopped_are_replaced_with_overwrite(annotated_run, tmp_path):
    (tmp_path / "f" / "shards").mkdir(parents=True)  # what a filter killed while copying leaves
    (tmp_path / "f" / "shards" / "sample-000000.tar").write_bytes(b"partial")
    with pytest.raises(FilterTargetError, match="unfinished selection; pass --overwrite"):
        filter_run(annotated_run / "out", "flow_mean > 2", tmp_path / "f")
    result = filter_run(annotated_run / "out", "flow_mean > 2", tmp_path / "f", overwrite=True)
    assert result.rows_selected > 0 and not (tmp_path / "f" / "shards").exists()
