"""Flow backends: speed (pairs/s) and accuracy (end-point error on Sintel ground truth), in one run.

    python benchmarks/flow.py [--shared ../shared] [--raft-weights-dir DIR] [--pairs 8]

Speed at short side 256 and 512 on generated texture pairs, on CPU; RAFT on CPU runs with random
weights (its speed does not depend on them). With CUDA, RAFT pairs/s at batch 1..32 in fp32,
fp16 and bf16. DIS 'medium' at 256 is the baseline of the ratio column. EPE needs real weights for
RAFT and is skipped without them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from motionpipe.pipeline.synthetic_video import noise_texture
from motionpipe.stages.flow_backends import (
    DIS_PRESETS,
    DisFlow,
    FarnebackFlow,
    FlowBackend,
    MissingWeightsError,
    RaftFlow,
)


def pair_at(short_side: int) -> tuple[np.ndarray, np.ndarray]:
    width = round(short_side * 16 / 9)
    texture = noise_texture(np.random.default_rng(0), width, short_side)
    shifted = cv2.warpAffine(texture, np.float32([[1, 0, 2.5], [0, 1, -1.5]]), (width, short_side))
    return texture, shifted


def pairs_per_second(backend: FlowBackend, first: np.ndarray, second: np.ndarray, repeats: int) -> float:
    backend.flow(first[:1], second[:1])  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        backend.flow(first, second)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return repeats * len(first) / (time.perf_counter() - started)


def dis_backends() -> dict[str, FlowBackend]:
    return {f"dis:{preset}": DisFlow(preset) for preset in DIS_PRESETS}


def cpu_backends() -> dict[str, FlowBackend]:
    backends = dis_backends()
    backends["farneback"] = FarnebackFlow()
    for variant in ("raft_small", "raft_large"):
        backends[variant + " (cpu)"] = RaftFlow(variant, allow_random_weights=True, iterations=12)
    return backends


def speed_table(pairs: int) -> None:
    print(f"CPU speed, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; pairs/s")
    rows = {}
    for short_side in (256, 512):
        first, second = pair_at(short_side)
        batch_first, batch_second = np.stack([first] * pairs), np.stack([second] * pairs)
        for name, backend in cpu_backends().items():
            repeats = 1 if name.startswith("raft") else 3
            count = 2 if name.startswith("raft") else pairs
            rows.setdefault(name, {})[short_side] = pairs_per_second(
                backend, batch_first[:count], batch_second[:count], repeats
            )
    baseline = rows["dis:medium"][256]
    print(f"{'backend':<20} {'S=256':>9} {'S=512':>9} {'vs dis:medium@256':>18}")
    for name, by_size in rows.items():
        print(f"{name:<20} {by_size[256]:>9.1f} {by_size[512]:>9.1f} {by_size[256] / baseline:>18.3f}")


def gpu_table() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: RAFT GPU sweep skipped")
        return
    print(f"GPU: {torch.cuda.get_device_name()} RAFT pairs/s at S=384 (682x384)")
    first, second = pair_at(384)
    for variant in ("raft_small", "raft_large"):
        for precision in ("fp32", "fp16", "bf16"):
            line = []
            for batch in (1, 2, 4, 8, 16, 32):
                raft = RaftFlow(
                    variant, allow_random_weights=True, device="cuda", batch_size=batch, precision=precision
                )
                stack = np.stack([first] * batch), np.stack([second] * batch)
                line.append(f"b{batch}={pairs_per_second(raft, *stack, repeats=3):.1f}")
            print(f"{variant:<11} {precision}: " + " ".join(line))


def read_flo(path: Path) -> np.ndarray:
    data = path.read_bytes()
    width, height = np.frombuffer(data[4:12], np.int32)
    return np.frombuffer(data[12:], np.float32).reshape(height, width, 2)


def epe_table(shared: Path, raft_weights_dir: Path | None) -> None:
    root = shared / "data" / "flow_gt" / "sintel"
    if not root.exists():
        print(f"no Sintel ground truth under {root}: EPE skipped")
        return
    backends = dis_backends()
    backends["farneback"] = FarnebackFlow()
    for variant in ("raft_small", "raft_large"):
        weights = next(iter(sorted((raft_weights_dir or Path("/nonexistent")).glob(f"{variant}*"))), None)
        try:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            backends[variant] = RaftFlow(variant, weights=str(weights or ""), device=device)
        except MissingWeightsError:
            print(f"{variant}: no weights, EPE skipped")
    print("Sintel clean frame 2->3, EPE px on non-occluded valid pixels (all pixels)")
    for level in ("easy", "medium", "hard"):
        first, second = (
            cv2.cvtColor(cv2.imread(str(root / "clean" / level / f"frame_000{i}.png")), cv2.COLOR_BGR2RGB)
            for i in (2, 3)
        )
        truth = read_flo(root / "gt" / level / "frame_0002.flo")
        occluded, invalid = (
            cv2.imread(str(root / "gt" / level / f"{m}_frame_0002.png"), 0) > 0 for m in ("occlusions", "invalid")
        )
        valid = ~occluded & ~invalid
        cells = []
        for name, backend in backends.items():
            error = np.linalg.norm(backend.flow(first[None], second[None])[0] - truth, axis=-1)
            cells.append(f"{name} {error[valid].mean():.2f} ({error.mean():.2f})")
        print(f"{level:<7} " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--raft-weights-dir", type=Path)
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    speed_table(args.pairs)
    gpu_table()
    epe_table(args.shared, args.raft_weights_dir)


if __name__ == "__main__":
    main()
