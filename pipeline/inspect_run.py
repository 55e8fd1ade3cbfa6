"""Summary of a finished (or partial) run, for ``motionpipe inspect``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from motionpipe.pipeline.run_outputs import SHARD_DONE, RunLayout
from motionpipe.schemas.metadata import COLUMNS

STAT_COLUMNS = (
    "flow_mean",
    "flow_p50",
    "flow_p95",
    "flow_max",
    "motion_fraction",
    "camera_motion",
    "object_motion",
    "object_area",
    "camera_track_motion",
    "object_track_motion",
    "object_score",
    "camera_score",
)
COUNTED_COLUMNS = ("camera_type", "camera_parallax", "scene_cut_suspected", "low_texture", "static_clip")


def read_metadata(out_dir: str | Path) -> pa.Table:
    """All metadata rows of a run, in shard order."""
    return RunLayout.at(out_dir).metadata().to_table()


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def summarize_run(out_dir: str | Path) -> str:
    """Shards, clip counts, error reasons and the distribution of each motion statistic."""
    layout = RunLayout.at(out_dir)
    run = layout.run_record()
    manifest = layout.manifest()
    failed = {name: entry for name, entry in manifest.items() if entry.get("status") != SHARD_DONE}
    done = len(manifest) - len(failed)
    lines = [
        f"run {out_dir}: motionpipe {run['motionpipe_version']}, config {run['config_hash']}, "
        f"started {run['started_at']}",
        f"shards: {len(run['inputs'])} inputs, {done} done, {len(failed)} failed, "
        f"{len(run['inputs']) - len(manifest)} not started",
    ]
    lines += [f"  failed {name}: {entry.get('message')}" for name, entry in sorted(failed.items())]
    if done == 0:
        return "\n".join(lines)
    table = read_metadata(out_dir)
    status = table.column("status").to_pylist()
    lines.append(f"clips: {len(status)} ({status.count('ok')} ok, {len(status) - status.count('ok')} error)")
    reasons = Counter(reason for reason in table.column("error").to_pylist() if reason)
    if reasons:
        lines.append("errors:")
        lines += [f"  {reason}: {count}" for reason, count in reasons.most_common()]
    units = {column.name: column.unit or "" for column in COLUMNS}
    ok_rows = table.filter(pc.equal(table.column("status"), "ok"))
    stats_rows = []
    for name in STAT_COLUMNS:
        values = np.asarray(ok_rows.column(name).drop_null().to_numpy(zero_copy_only=False), dtype=float)
        if values.size:
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            stats_rows.append([name, units[name], *(f"{v:.3g}" for v in (values.mean(), p5, p50, p95, values.max()))])
    if stats_rows:
        lines.append(format_table(["column", "unit", "mean", "p5", "p50", "p95", "max"], stats_rows))
    for name in COUNTED_COLUMNS:
        counts = Counter(value for value in ok_rows.column(name).to_pylist() if value is not None)
        if counts:
            lines.append(f"{name}: " + ", ".join(f"{value} {count}" for value, count in counts.most_common()))
    return "\n".join(lines)
