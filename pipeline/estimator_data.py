"""Training data for the estimator: clips decoded once into model inputs, joined by key with the
pseudo-labels of an annotate run, split by key, and the pairs the ranking loss learns from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.inspect_run import read_metadata
from motionpipe.pipeline.shard_reader import iter_samples, resolve_shards
from motionpipe.stages.base import ClipRecord
from motionpipe.stages.decode import DecodeConfig, DecodeStage
from motionpipe.stages.estimator_io import estimator_input
from motionpipe.stages.estimator_model import EstimatorConfig

HEADS = ("object", "camera")
# pseudo-label columns per source: the flow-based decoupling (every run), or MotionStone's tracks (runs with a tracker)
LABEL_COLUMNS = {
    "flow": {"object": "object_motion", "camera": "camera_motion"},
    "track": {"object": "object_track_motion", "camera": "camera_track_motion"},
}
WINNER_CODES = {"a": 1, "b": -1, "tie": 0}


@dataclass
class ClipSet:
    """Model inputs and pseudo-labels (%diag/s) of clips, in one order."""

    keys: list[str]
    inputs: np.ndarray  # float32[N, T, INPUT_CHANNELS, H, W] from estimator_input
    labels: dict[str, np.ndarray]  # head -> float[N]
    label_source: str = "flow"  # a key of LABEL_COLUMNS
    unlabelled: int = 0  # ok clips of the run left out for want of these labels
    parallax_left_out: int = 0  # ok clips of the run left out because their camera showed parallax

    def subset(self, chosen: np.ndarray) -> ClipSet:
        labels = {h: v[chosen] for h, v in self.labels.items()}
        return ClipSet([self.keys[i] for i in chosen], self.inputs[chosen], labels, self.label_source)


def in_validation(key: str, fraction: float) -> bool:
    """A fixed split by key hash: the same key is always on the same side, whatever the run."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def annotate_decode_config(run_dir: str | Path) -> DecodeConfig:
    """The decode settings the pseudo-labels were computed with, so the estimator sees the same frames. A setting
    that this version no longer has (a run annotated by an older one, e.g. ``max_pair_gap_s``) is left out with a
    warning rather than refusing the run: the estimator sees only the samples, which such settings did not place."""
    recorded = json.loads((Path(run_dir) / "run.json").read_text())["config"]["decode"]
    known = {field.name for field in dataclasses.fields(DecodeConfig)}
    unknown = sorted(set(recorded) - known)
    if unknown:
        warnings.warn(f"{run_dir}: decode settings this version does not have are ignored: {unknown}", stacklevel=2)
    return build_config(overrides=[f"decode.{k}={v}" for k, v in recorded.items() if k in known]).decode


def labelled_rows(run_dir: str | Path, label_source: str) -> tuple[dict[str, dict], int]:
    """The run's ok rows that have ``label_source``'s pseudo-labels, by key, and how many ok rows do not (track
    labels are null without a tracker, camera_track_motion with too few background tracks)."""
    if label_source not in LABEL_COLUMNS:
        raise ValueError(f"labels must be one of {sorted(LABEL_COLUMNS)}, got {label_source!r}")
    columns = LABEL_COLUMNS[label_source].values()
    ok = [row for row in read_metadata(run_dir).to_pylist() if row["status"] == "ok"]
    rows = {row["key"]: row for row in ok if all(row[column] is not None for column in columns)}
    if ok and not rows:
        hint = " (annotate with --set tracking.tracker=flow_chain or cotracker)" if label_source == "track" else ""
        raise ValueError(f"no ok row of {run_dir} has the {label_source} pseudo-labels {sorted(columns)}{hint}")
    return rows, len(ok) - len(rows)


def without_parallax(rows: dict[str, dict], run_dir: str | Path) -> dict[str, dict]:
    """The rows whose camera showed no parallax. Under parallax an object moving along the epipolar lines looks like
    nearer still scenery, so its object label is unsure: on benchmarks/decouple.py's hard set, training without the
    parallax clips raised held-out object accuracy (benchmarks/RESULTS.md)."""
    unknown = sorted(key for key, row in rows.items() if row["camera_parallax"] is None)
    if unknown:
        raise ValueError(
            f"{len(unknown)} rows of {run_dir} (e.g. {unknown[0]!r}) have no camera_parallax: annotated by a "
            "motionpipe older than schema 3; annotate again to leave parallax clips out"
        )
    return {key: row for key, row in rows.items() if not row["camera_parallax"]}


def load_clip_set(
    shard_inputs: list[str],
    run_dir: str | Path,
    model_config: EstimatorConfig,
    on_clip: Callable[[], None] | None = None,
    label_source: str = "flow",
    leave_out_parallax: bool = False,
) -> ClipSet:
    """Decode every clip that the annotate run scored ok with ``label_source`` pseudo-labels, once, into model
    inputs; with ``leave_out_parallax``, only the clips whose camera showed no parallax."""
    rows, unlabelled = labelled_rows(run_dir, label_source)
    kept = without_parallax(rows, run_dir) if leave_out_parallax else rows
    parallax_left_out, rows = len(rows) - len(kept), kept
    decode = DecodeStage(annotate_decode_config(run_dir))
    decode.setup()
    keys, inputs = [], []
    for shard in resolve_shards(shard_inputs):
        for sample in iter_samples(shard):
            if sample.key not in rows or sample.key in keys:
                continue
            clip = ClipRecord(sample.key, shard, sample.payloads, sample.member_names)
            decode.process([clip])
            if clip.ok:
                keys.append(sample.key)
                inputs.append(estimator_input(clip.video.frames[clip.video.samples], model_config))
            if on_clip is not None:
                on_clip()
    if not keys:
        raise ValueError(f"no clip of {shard_inputs} has an ok row in {run_dir}: nothing to train on")
    columns = LABEL_COLUMNS[label_source]
    labels = {head: np.array([rows[k][columns[head]] for k in keys], np.float32) for head in HEADS}
    return ClipSet(keys, np.stack(inputs), labels, label_source, unlabelled, parallax_left_out)


@dataclass
class Pairs:
    """Index pairs into a ClipSet with, per head, +1 (a more motion), -1 (b more) or 0 (tie)."""

    first: np.ndarray
    second: np.ndarray
    winners: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.first)


def pseudo_label_pairs(labels: dict[str, np.ndarray], margin: float) -> Pairs:
    """All pairs; a head ranks a pair when its pseudo-labels differ by more than ``margin`` (relative)."""
    first, second = np.triu_indices(len(next(iter(labels.values()))), k=1)
    winners = {}
    for head, values in labels.items():
        a, b = values[first], values[second]
        decided = np.abs(a - b) > margin * np.maximum(np.maximum(a, b), 1e-6)
        winners[head] = np.where(decided, np.sign(a - b), 0).astype(np.int64)
    keep = np.any([w != 0 for w in winners.values()], axis=0)
    return Pairs(first[keep], second[keep], {h: w[keep] for h, w in winners.items()})


def judged_pairs(path: str | Path, keys: list[str]) -> Pairs:
    """Human judgements (key_a, key_b, object_winner, camera_winner in a|b|tie) among ``keys``."""
    table = pq.read_table(path).to_pylist()
    index = {key: i for i, key in enumerate(keys)}
    rows = [r for r in table if r["key_a"] in index and r["key_b"] in index]
    for row in rows:
        for head in HEADS:
            if row[f"{head}_winner"] not in WINNER_CODES:
                raise ValueError(f"{path}: {head}_winner must be a, b or tie, got {row[f'{head}_winner']!r}")
    return Pairs(
        np.array([index[r["key_a"]] for r in rows], dtype=np.int64),
        np.array([index[r["key_b"]] for r in rows], dtype=np.int64),
        {h: np.array([WINNER_CODES[r[f"{h}_winner"]] for r in rows], dtype=np.int64) for h in HEADS},
    )
