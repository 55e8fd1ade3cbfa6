"""Training and evaluating the estimator on annotated synthetic shards: determinism, resume, pairs, report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from motionpipe.pipeline.annotate import annotate
from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.estimator_data import in_validation, judged_pairs, load_clip_set, pseudo_label_pairs
from motionpipe.pipeline.estimator_eval import evaluate
from motionpipe.pipeline.sample_data import SampleSpec, write_sample_data
from motionpipe.pipeline.shard_reader import resolve_shards
from motionpipe.pipeline.shard_runner import SilentProgress
from motionpipe.pipeline.train_estimator import Replica, TrainConfig, train_estimator
from motionpipe.stages.estimator_io import load_checkpoint
from motionpipe.stages.estimator_model import CPU_CONFIG


@pytest.fixture(scope="module")
def clip_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimator")
    write_sample_data(root, shards=1, clips_per_shard=8, seed=5, spec=SampleSpec(160, 120, 24.0, 2.0))
    shards = resolve_shards([str(root / "shards")])
    annotate(shards, root / "out", build_config(overrides=["conditions.include=none"]), SilentProgress(), local=True)
    return load_clip_set(shards, root / "out", CPU_CONFIG), root


def test_clips_load_once_with_their_pseudo_labels(clip_set):
    data, _ = clip_set
    assert len(data.keys) == 8 and data.inputs.shape == (8, 16, 6, 64, 112)
    assert data.labels["camera"].max() > 3 and data.labels["object"].min() >= 0


def test_a_run_with_a_decode_setting_this_version_lacks_still_trains(clip_set, tmp_path):
    """Runs annotated before decode.max_pair_gap_s was split in two record it; the estimator's samples do not
    depend on it, so such a run still loads (with a warning), to the same inputs."""
    data, root = clip_set
    old_run = tmp_path / "out"
    shutil.copytree(root / "out", old_run)
    record = json.loads((old_run / "run.json").read_text())
    record["config"]["decode"]["max_pair_gap_s"] = 1 / 24
    (old_run / "run.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="max_pair_gap_s"):
        loaded = load_clip_set(resolve_shards([str(root / "shards")]), old_run, CPU_CONFIG)
    assert loaded.keys == data.keys and np.array_equal(loaded.inputs, data.inputs)


def run_with_rows_changed(source, out, change) -> None:
    """A copy of the annotate run ``source`` whose metadata rows are passed through ``change`` (a table -> table)."""
    shutil.copytree(source, out)
    for path in (out / "metadata").glob("*.parquet"):
        pq.write_table(change(pq.read_table(path)), path)


def test_clips_whose_camera_showed_parallax_can_be_left_out(clip_set, tmp_path):
    data, root = clip_set
    shards = resolve_shards([str(root / "shards")])
    assert data.parallax_left_out == 0
    flagged = data.keys[2]

    def flag_one(table: pa.Table) -> pa.Table:
        flags = [key == flagged for key in table.column("key").to_pylist()]
        index = table.schema.get_field_index("camera_parallax")
        return table.set_column(index, table.schema.field(index), pa.array(flags))

    run_with_rows_changed(root / "out", tmp_path / "flagged", flag_one)
    kept = load_clip_set(shards, tmp_path / "flagged", CPU_CONFIG, leave_out_parallax=True)
    assert kept.keys == [key for key in data.keys if key != flagged] and kept.parallax_left_out == 1
    assert np.array_equal(kept.labels["object"], np.delete(data.labels["object"], 2))
    assert load_clip_set(shards, tmp_path / "flagged", CPU_CONFIG).keys == data.keys  # kept unless asked

    # shards written before the column existed read null there: leaving parallax out cannot be done, and says so
    run_with_rows_changed(root / "out", tmp_path / "older", lambda table: table.drop_columns(["camera_parallax"]))
    assert load_clip_set(shards, tmp_path / "older", CPU_CONFIG).keys == data.keys
    with pytest.raises(ValueError, match="annotate again"):
        load_clip_set(shards, tmp_path / "older", CPU_CONFIG, leave_out_parallax=True)


def test_training_is_deterministic_and_resumes_exactly(clip_set, tmp_path):
    data, _ = clip_set
    config = TrainConfig(steps=4, batch_pairs=4, checkpoint_every=2, validation_fraction=0.25)
    straight = train_estimator(data, tmp_path / "straight", config)
    assert len(straight["losses"]) == 4

    def interrupt_after_the_step_2_checkpoint(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_estimator(data, tmp_path / "resumed", config, on_step=interrupt_after_the_step_2_checkpoint)
    resumed = train_estimator(data, tmp_path / "resumed", config, resume=True)
    assert len(resumed["losses"]) == 2 and resumed["losses"] == straight["losses"][2:]
    first = load_file(str(tmp_path / "straight" / "estimator.safetensors"))
    second = load_file(str(tmp_path / "resumed" / "estimator.safetensors"))
    assert all((first[name] == second[name]).all() for name in first)
    assert straight["version"] == resumed["version"]


def test_the_command_line_offers_every_label_source():
    from motionpipe.pipeline.cli import LABEL_SOURCES
    from motionpipe.pipeline.estimator_data import LABEL_COLUMNS

    assert sorted(LABEL_SOURCES) == sorted(LABEL_COLUMNS)


def test_track_pseudo_labels_are_training_targets_when_a_tracker_ran(clip_set, tmp_path):
    data, root = clip_set
    shards = resolve_shards([str(root / "shards")])
    with pytest.raises(ValueError, match="tracking.tracker=flow_chain"):  # this run had no tracker
        load_clip_set(shards, root / "out", CPU_CONFIG, label_source="track")
    config = build_config(overrides=["conditions.include=none", "tracking.tracker=flow_chain"])
    annotate(shards, tmp_path / "out", config, SilentProgress(), local=True)
    tracked = load_clip_set(shards, tmp_path / "out", CPU_CONFIG, label_source="track")
    rows = {row["key"]: row for row in pq.read_table(tmp_path / "out" / "metadata").to_pylist()}
    assert tracked.keys == data.keys and tracked.label_source == "track"
    for head, column in (("object", "object_track_motion"), ("camera", "camera_track_motion")):
        assert tracked.labels[head].tolist() == pytest.approx([rows[key][column] for key in tracked.keys])
    assert not np.allclose(tracked.labels["object"], data.labels["object"])  # not the flow labels again
    train_estimator(tracked, tmp_path / "ckpt", TrainConfig(steps=1, batch_pairs=2))
    assert load_checkpoint(tmp_path / "ckpt")[1]["labels"] == "track"


def test_evaluation_reports_accuracy_beside_the_baselines(clip_set, tmp_path):
    data, _ = clip_set
    train_estimator(data, tmp_path / "ckpt", TrainConfig(steps=2, batch_pairs=2))
    model, _ = load_checkpoint(tmp_path / "ckpt")
    pairs = pseudo_label_pairs(data.labels, 0.2)
    report = evaluate(model, data, pairs, flow_mean=data.labels["camera"])
    assert set(report) == {"estimator", "1 - mean SSIM", "flow_mean"}
    for predictor in report.values():
        assert 0 <= predictor["object_accuracy"] <= 1 and 0 <= predictor["camera_accuracy"] <= 1
    assert sum(report["estimator"]["score_histograms"]["object"]) == 8


def test_eval_estimator_writes_its_report_as_json(clip_set, tmp_path, capsys):
    """Scripts that compare runs (benchmarks/estimator.py over training seeds) read the numbers, not the text."""
    from motionpipe.pipeline.cli import main

    data, root = clip_set
    train_estimator(data, tmp_path / "ckpt", TrainConfig(steps=2, batch_pairs=2))
    args = [str(root / "shards"), "--run", str(root / "out"), "--estimator", str(tmp_path / "ckpt")]
    assert main(["eval-estimator", *args, "--json", str(tmp_path / "report.json")]) == 0
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["clips"] == 8 and written["version"] == load_checkpoint(tmp_path / "ckpt")[1]["version"]
    accuracy = written["report"]["estimator"]["object_accuracy"]
    assert 0 <= accuracy <= 1 and f"{accuracy:.1%}" in capsys.readouterr().out


def test_pairs_from_pseudo_labels_and_from_judgements(tmp_path):
    pairs = pseudo_label_pairs({"object": np.array([1.0, 1.1, 5.0]), "camera": np.array([0.0, 0.0, 0.0])}, 0.2)
    decided = {(a, b): w for a, b, w in zip(pairs.first, pairs.second, pairs.winners["object"], strict=True)}
    assert decided == {(0, 2): -1, (1, 2): -1}  # 1.0 vs 1.1 is within the margin: not a pair
    path = tmp_path / "pairs.parquet"
    rows = [
        {"key_a": "x", "key_b": "y", "object_winner": "a", "camera_winner": "tie"},
        {"key_a": "x", "key_b": "unknown", "object_winner": "b", "camera_winner": "b"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    judged = judged_pairs(path, ["x", "y"])
    assert len(judged) == 1 and judged.winners["object"].tolist() == [1] and judged.winners["camera"].tolist() == [0]
    pq.write_table(pa.Table.from_pylist([rows[0] | {"object_winner": "left"}]), path)
    with pytest.raises(ValueError, match="a, b or tie"):
        judged_pairs(path, ["x", "y"])


def test_validation_split_is_fixed_by_key():
    keys = [f"clip-{i:06d}" for i in range(1000)]
    held = [key for key in keys if in_validation(key, 0.2)]
    assert 150 < len(held) < 250 and held == [key for key in keys if in_validation(key, 0.2)]


def test_annotate_with_an_estimator_scores_every_ok_row(clip_set, tmp_path):
    data, root = clip_set
    version = train_estimator(data, tmp_path / "ckpt", TrainConfig(steps=1, batch_pairs=2))["version"]
    config = build_config(overrides=["conditions.include=none", f"scoring.checkpoint={tmp_path / 'ckpt'}"])
    annotate(resolve_shards([str(root / "shards")]), tmp_path / "out", config, SilentProgress(), local=True)
    rows = pq.read_table(tmp_path / "out" / "metadata" / "sample-000000.parquet").to_pylist()
    assert len(rows) == 8
    for row in rows:
        assert 1 <= row["object_score"] <= 10 and 1 <= row["camera_score"] <= 10
        assert row["estimator_version"] == version


def test_ray_train_runs_the_same_loop_on_two_workers(clip_set, tmp_path):
    from motionpipe.pipeline.train_estimator_ray import train_estimator_on_ray

    data, _ = clip_set
    config = TrainConfig(steps=3, batch_pairs=4, checkpoint_every=2, validation_fraction=0.25)
    summary = train_estimator_on_ray(data, tmp_path / "ckpt", config, workers=2)
    assert len(summary["losses"]) == 3 and summary["train"] + summary["validation"] == 8
    model, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["step"] == 3 and meta["version"] == summary["version"]
    scores = model(torch.from_numpy(data.inputs[:2]))
    assert all(((s >= 1) & (s <= 10)).all() for s in scores)
    with pytest.raises(ValueError, match="number of workers"):
        train_estimator(data, tmp_path / "x", TrainConfig(steps=1, batch_pairs=1), replica=Replica(world=2))
