"""The per-clip conditions archive: ``OUT/conditions/SHARD.tar``, one ``KEY.npz`` per ok clip.

Readable with numpy alone (``np.load(io.BytesIO(member_bytes))``). ``T`` is the number of
samples at fps_target, ``H x W`` the processing size, ``h x w`` that size divided by
``conditions.field_stride`` (rounded up), ``T' x H' x W'`` the latent grid of the heatmap.
Displacements and positions are in px of the processing frame (``proc_size``); scale them by
your training resolution / ``proc_size``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConditionArray:
    """One array of a clip's npz: which condition writes it, its dtype and shape, what it means."""

    name: str
    condition: str
    dtype: str
    shape: str
    doc: str


CONDITION_ARRAYS: tuple[ConditionArray, ...] = (
    ConditionArray("proc_size", "(always)", "int32", "[2]", "processing (width, height) in px"),
    ConditionArray(
        "motion_mask",
        "motion_mask",
        "bool",
        "[H, W]",
        "MotionPro motion mask: mean speed over the measuring pairs > flow.mask_threshold (%diag/s)",
    ),
    ConditionArray(
        "heatmap",
        "heatmap",
        "uint8",
        "[T', H', W']",
        "MotiF heatmap, 255 * sigmoid(100 (x - 0.05)), x = speed / max(clip peak speed, heatmap_floor), "
        "area-pooled by heatmap_temporal and heatmap_spatial",
    ),
    ConditionArray("dense_flow", "dense_tracks", "float16", "[T, 2, h, w]", "f(0->i), (dx, dy) px, Motion-I2V"),
    ConditionArray(
        "dense_visibility", "dense_tracks", "bool", "[T, h, w]", "track still visible at sample i (cumulative)"
    ),
    ConditionArray(
        "region_flow",
        "region_trajectories",
        "float16",
        "[T, 2, h, w]",
        "MotionPro: f(0->i) * M_g, zero where a track is ever occluded",
    ),
    ConditionArray("global_visibility", "region_trajectories", "bool", "[h, w]", "M_g = prod_i M^i"),
    ConditionArray("region_grid", "region_trajectories", "int32", "[]", "k of the k x k region grid"),
    ConditionArray(
        "sparse_tracks",
        "sparse_tracks",
        "float16",
        "[N, T, 2]",
        "(x, y) px of N points over the samples; N <= conditions.sparse_points, points where motion is high, "
        "one per grid cell, ordered by travel",
    ),
    ConditionArray("sparse_visibility", "sparse_tracks", "bool", "[N, T]", "visibility of each sparse point"),
    ConditionArray("sparse_travel", "sparse_tracks", "float16", "[N]", "largest displacement from frame 0, px"),
)


def describe_condition_arrays() -> str:
    """Markdown table of the arrays, for README."""
    lines = ["| array | condition | dtype | shape | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{a.name}` | {a.condition} | {a.dtype} | {a.shape} | {a.doc} |" for a in CONDITION_ARRAYS]
    return "\n".join(lines)
