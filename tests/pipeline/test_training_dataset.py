"""The trainer dataset on a real annotated run: batches, conditions at the training size, exactly once per epoch."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from motionpipe.pipeline.annotate import annotate
from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.dataset_filter import NullColumnError, filter_run
from motionpipe.pipeline.shard_reader import resolve_shards
from motionpipe.pipeline.shard_runner import SilentProgress
from motionpipe.pipeline.training_dataset import MotionTrainingDataset, TrainingDataConfig

PSEUDO_LABELS = ("object_motion", "camera_motion")


def data_config(annotated_run, **changes) -> TrainingDataConfig:
    return TrainingDataConfig(run=str(annotated_run / "out"), score_columns=PSEUDO_LABELS, **changes)


@pytest.fixture(scope="module")
def metadata(annotated_run):
    table = pq.read_table(annotated_run / "out" / "metadata").to_pylist()
    return {row["key"]: row for row in table}


def test_an_item_holds_every_condition_at_the_training_size(annotated_run, metadata):
    dataset = MotionTrainingDataset(data_config(annotated_run, frames=6, width=48, height=32))
    item = next(iter(dataset))
    row = metadata[item["key"]]
    assert item["frames"].shape == (6, 3, 32, 48) and item["frames"].dtype == torch.float32
    assert -1.0 <= item["frames"].min() and item["frames"].max() <= 1.0 and item["frames"].std() > 0.05
    torch.testing.assert_close(item["first_frame"], item["frames"][0])
    assert item["caption"] == row["caption"] and item["caption"].startswith("synthetic")
    np.testing.assert_allclose(item["scores"], [row["object_motion"], row["camera_motion"]], rtol=1e-6)
    assert item["motion_mask"].shape == (1, 32, 48) and set(item["motion_mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["region_trajectories"].shape == (6, 2, 8, 12) and item["region_mask"].shape == (1, 8, 12)
    assert item["sparse_trajectories"].shape == (6, 2, 8, 12) and item["sparse_mask"].shape == (1, 8, 12)
    assert item["heatmap"].shape == (2, 4, 6) and 0 <= item["heatmap"].min() and item["heatmap"].max() <= 1
    outside = item["region_mask"] == 0
    assert torch.all(item["region_trajectories"][:, :, outside[0]] == 0)  # trajectories only in chosen regions
    assert torch.all(item["sparse_trajectories"][:, :, item["sparse_mask"][0] == 0] == 0)
    assert torch.all(item["region_trajectories"][0] == 0)  # f(0->0) is no displacement


def test_a_pan_moves_the_trajectories_the_way_the_camera_moves_the_content(annotated_run):
    dataset = MotionTrainingDataset(data_config(annotated_run, where="key == 'pan'", region_ratio_min=1.0))
    (item,) = list(dataset)
    moving = item["region_mask"][0] > 0
    assert moving.float().mean() > 0.5  # ratio 1: every region, minus what goes out of view
    # the scene pans right at 6 %diag/s: content moves left; after 7 samples at 8 fps, in px of 64 x 64
    dx = item["region_trajectories"][7, 0][moving]
    expected = -6.0 / 100 * np.hypot(192, 128) * 7 / 8 * 64 / 192
    assert float(dx.median()) == pytest.approx(expected, rel=0.2)


def test_each_selected_clip_once_per_epoch_across_two_ranks_and_two_workers(annotated_run):
    config = data_config(annotated_run, frames=2, width=32, height=32)
    expected = sorted(entry.key for entry in MotionTrainingDataset(config).entries)
    assert len(expected) == 11  # ten synthetic clips and the pan; the broken clip has no row to train on
    orders = []
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            dataset = MotionTrainingDataset(config, rank=rank, world_size=2)
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=2, num_workers=2)
            seen += [key for batch in loader for key in batch["key"]]
        assert sorted(seen) == expected and max(Counter(seen).values()) == 1
        orders.append(seen)
    assert orders[0] != orders[1]  # a new permutation each epoch


def test_reads_the_videos_a_filter_copied(annotated_run, tmp_path):
    filter_run(annotated_run / "out", "flow_mean > 0", tmp_path / "f", write_shards=True)
    original = MotionTrainingDataset(data_config(annotated_run, where="key == 'pan'"))
    copied = MotionTrainingDataset(
        data_config(annotated_run, where="key == 'pan'", shards=str(tmp_path / "f" / "shards"))
    )
    torch.testing.assert_close(next(iter(copied))["frames"], next(iter(original))["frames"])
    assert copied.clips.video_location(copied.entries[0].shard).startswith(str(tmp_path))


def test_clear_errors_for_runs_it_cannot_train_on(annotated_run, tmp_path):
    with pytest.raises(ValueError, match="annotate with --conditions all"):
        shard = resolve_shards([str(annotated_run / "shards" / "mixed-000000.tar")])
        annotate(shard, tmp_path / "stats", build_config(), SilentProgress(), local=True)
        MotionTrainingDataset(TrainingDataConfig(run=str(tmp_path / "stats"), score_columns=PSEUDO_LABELS))
    assert len(MotionTrainingDataset(data_config(annotated_run, where="flow_mean > 1000"))) == 0
    with pytest.raises(NullColumnError, match="object_score is null in every row.*--estimator"):  # no estimator ran
        MotionTrainingDataset(TrainingDataConfig(run=str(annotated_run / "out")))
    with pytest.raises(ValueError, match="latent_temporal=4"):
        MotionTrainingDataset(data_config(annotated_run, latent_temporal=2))


def keys_seen_by_rank(rank: int, world: int, store: str, run: str, found: dict) -> None:
    """One DDP process: the dataset takes its rank from torch.distributed, 2 dataloader workers read its share."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dataset = MotionTrainingDataset(TrainingDataConfig(run=run, frames=2, width=32, height=32,
                                                           score_columns=PSEUDO_LABELS))  # fmt: skip
        found[rank] = [key for batch in DataLoader(dataset, batch_size=3, num_workers=2) for key in batch["key"]]
    finally:
        torch.distributed.destroy_process_group()


def test_ranks_come_from_torch_distributed(annotated_run, tmp_path):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        found = manager.dict()
        mp.spawn(keys_seen_by_rank, args=(2, str(tmp_path / "store"), str(annotated_run / "out"), found), nprocs=2)
        shares = dict(found)
    seen = shares[0] + shares[1]
    assert len(shares[0]) in (5, 6) and len(shares[1]) in (5, 6)  # 11 clips over 2 ranks
    assert sorted(seen) == sorted(entry.key for entry in MotionTrainingDataset(data_config(annotated_run)).entries)
