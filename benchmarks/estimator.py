"""Acceptance run of the MotionStone estimator on CPU (issue 5), in one command.

    python benchmarks/estimator.py [--train-clips 168] [--held-out-clips 56] [--minutes 15]

Generates a training set (seed 0) and a separately seeded held-out set (seed 1) with
`motionpipe sample-data`, annotates both (`--conditions none`) for pseudo-labels, trains within the
time budget, and evaluates on the held-out set against (a) pairs from its ground truth, written as a
judgements Parquet, and (b) pairs from its pseudo-labels; prints accuracies beside the SSIM and
flow_mean baselines, Spearman, score histograms and timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MOTIONPIPE = str(Path(sys.executable).parent / "motionpipe")
STEPS_PER_MINUTE_CPU = 65  # measured: ~1.1 steps/s with 8 pairs per step on 2 cores, plus decoding the clips


def run(*args: str) -> str:
    done = subprocess.run([MOTIONPIPE, *args], capture_output=True, text=True, check=True)
    return done.stdout


def truth_pairs(truth_file: Path, out: Path, margin: float = 0.2) -> Path:
    """Ground-truth judgements: a wins when its true speed exceeds b's by more than the margin."""
    clips = json.loads(truth_file.read_text())["clips"]
    keys = sorted(clips)
    rows = []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            row = {"key_a": a, "key_b": b}
            for head, field in (("object", "object_motion"), ("camera", "camera_motion")):
                x, y = clips[a][field], clips[b][field]
                row[f"{head}_winner"] = "tie" if abs(x - y) <= margin * max(x, y, 1e-6) else ("a" if x > y else "b")
            rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-clips", type=int, default=168)
    parser.add_argument("--held-out-clips", type=int, default=56)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--keep", type=Path, help="keep the data and checkpoint here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="motionpipe-estimator-"))
    started = time.perf_counter()
    for name, clips, seed in (("train", args.train_clips, 0), ("held", args.held_out_clips, 1)):
        run("sample-data", str(root / name), "--shards", "4", "--clips-per-shard", str(clips // 4), "--seed", str(seed))
        run("annotate", str(root / name / "shards"), str(root / name / "out"), "--local", "--conditions", "none")
    prepared = time.perf_counter()
    steps = int(args.minutes * STEPS_PER_MINUTE_CPU)
    print(
        run(
            "train-estimator",
            str(root / "train" / "shards"),
            "--run",
            str(root / "train" / "out"),
            "--out",
            str(root / "ckpt"),
            "--steps",
            str(steps),
        ).strip()
    )
    trained = time.perf_counter()
    pairs = truth_pairs(root / "held" / "ground_truth.json", root / "held_truth_pairs.parquet")
    common = [str(root / "held" / "shards"), "--run", str(root / "held" / "out"), "--estimator", str(root / "ckpt")]
    print("\nheld-out, ground-truth pairs:\n" + run("eval-estimator", *common, "--pairs", str(pairs)))
    print("held-out, pseudo-label pairs:\n" + run("eval-estimator", *common))
    print(
        f"data + annotate {prepared - started:.0f} s; training {trained - prepared:.0f} s ({steps} steps); "
        f"data in {root}"
    )


if __name__ == "__main__":
    main()
