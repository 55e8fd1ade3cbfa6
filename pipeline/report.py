"""``motionpipe report``: one static HTML page (plus its PNGs and GIFs) to look at before trusting a run.

Counts (clips, errors by reason, shards, backends), histograms of the scores and flow statistics, camera
types, and a gallery of clips spread over the range of object motion, each animated with its heatmap,
motion mask and sparse tracks overlaid when the run stored conditions. The folder is built beside the
destination and renamed into place, so a reader never sees half a report. A small script in the page
counts the images that loaded (``data-images-loaded`` / ``data-images-broken`` on ``<body>``).
"""

from __future__ import annotations

import html
import shutil
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from motionpipe.pipeline.inspect_run import read_metadata
from motionpipe.pipeline.report_images import animated_gif, bar_chart, histogram, overlay_frames, scatter
from motionpipe.pipeline.run_clips import RunClips
from motionpipe.pipeline.run_outputs import SHARD_DONE, RunLayout
from motionpipe.schemas.metadata import COLUMNS

HISTOGRAM_COLUMNS = (
    "object_score",
    "camera_score",
    "object_motion",
    "camera_motion",
    "flow_mean",
    "flow_p95",
    "motion_fraction",
    "object_area",
)
UNITS = {column.name: column.unit for column in COLUMNS}
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.imagesLoaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesBroken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).length;
});
</script>"""
STYLE = """<style>
body { font-family: sans-serif; margin: 24px; color: #222; }
.charts, .gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 12px; max-width: 320px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
</style>"""


def gallery_picks(table: pa.Table, count: int) -> list[dict]:
    """Up to ``count`` ok rows spread evenly over the range of object motion (least to most moving)."""
    rows = [row for row in table.to_pylist() if row["status"] == "ok"]
    rows.sort(key=lambda row: (row["object_motion"] if row["object_motion"] is not None else -1.0, row["key"]))
    if len(rows) <= count:
        return rows
    return [rows[int(i)] for i in np.unique(np.linspace(0, len(rows) - 1, count).round())]


def build_report(out_dir: str | Path, to_dir: str | Path | None = None, gallery: int = 8, shards: str = "") -> Path:
    """Write the report of the run in ``out_dir`` (a folder or a URL) to the local folder ``to_dir`` (default
    OUT/report for a local run); returns its index.html."""
    clips = RunClips(out_dir, shards)
    if to_dir is None and clips.layout.storage.scheme:
        raise FileNotFoundError(f"the run is at a URL ({out_dir}): pass --to, a local folder for the report")
    target = Path(to_dir) if to_dir else Path(out_dir) / "report"
    table = read_metadata(out_dir)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    (staging / "gallery").mkdir(parents=True)
    try:
        sections = [
            summary_section(table, clips.layout, clips.config),
            charts_section(table, staging),
            gallery_section(table, clips, staging, gallery),
        ]
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>motionpipe report: {html.escape(str(out_dir))}"
            f"</title>{STYLE}</head><body><h1>motionpipe report</h1><p>{html.escape(clips.layout.location)}</p>"
            f"{''.join(sections)}{IMAGE_CHECK}</body></html>"
        )
        (staging / "index.html").write_text(page)
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "index.html"


def replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an earlier report is moved aside first, then removed."""
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def html_table(header: list[str], rows: list[list[object]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + f"</tr>{cells}</table>"


def summary_section(table: pa.Table, layout: RunLayout, config: dict) -> str:
    rows = table.to_pylist()
    errors = Counter(row["error"] for row in rows if row["status"] != "ok")
    manifest = layout.manifest()
    done = sum(entry.get("status") == SHARD_DONE for entry in manifest.values())
    backends = Counter(
        f"{name}: {row[name]}" for row in rows for name in ("flow_backend", "segment_backend") if row.get(name)
    )
    facts = [
        ["clips", len(rows)],
        ["ok", len(rows) - sum(errors.values())],
        ["errors", sum(errors.values())],
        ["shards done / failed", f"{done} / {len(manifest) - done}"],
        ["conditions", config["conditions"]["include"]],
        *[[backend, count] for backend, count in sorted(backends.items())],
    ]
    error_rows = [[reason, count] for reason, count in errors.most_common()]
    return (
        "<h2>Run</h2>"
        + html_table(["", "value"], facts)
        + "<h2>Errors</h2>"
        + (html_table(["reason", "clips"], error_rows) if error_rows else "<p>none</p>")
    )


def charts_section(table: pa.Table, folder: Path) -> str:
    """Histograms of the measured columns (those with values), bar charts of camera types and error reasons, and
    object against camera motion per clip (what tells a dataset of moving things from one of moving cameras)."""
    figures = []
    ok = table.filter(pa.compute.equal(table.column("status"), "ok"))
    for column in HISTOGRAM_COLUMNS:
        values = np.array([v for v in ok.column(column).to_pylist() if v is not None], dtype=float)
        if values.size:
            unit = f" ({UNITS[column]})" if UNITS.get(column) else ""
            histogram(folder / f"{column}.png", values, f"{column}{unit}")
            figures.append((f"{column}.png", f"{column}{unit}"))
    for column, name in (("camera_type", "camera types"), ("error", "error reasons")):
        counts = Counter(v for v in table.column(column).to_pylist() if v is not None)
        if counts:
            labels, values = zip(*counts.most_common(), strict=True)
            bar_chart(folder / f"{column}.png", list(labels), list(values), name)
            figures.append((f"{column}.png", name))
    motions = [np.array(ok.column(c).to_pylist(), dtype=float) for c in ("camera_motion", "object_motion")]
    if motions[0].size:
        unit = UNITS["object_motion"]
        caption = f"object vs camera motion ({unit})"
        axes = (f"camera_motion ({unit})", f"object_motion ({unit})")
        scatter(folder / "object_vs_camera.png", *motions, caption, *axes)
        figures.append(("object_vs_camera.png", caption))
    items = "".join(
        f"<figure><img src='{src}' alt='{html.escape(alt)}'><figcaption>{html.escape(alt)}</figcaption></figure>"
        for src, alt in figures
    )
    return f"<h2>Distributions</h2><div class='charts'>{items}</div>"


def gallery_section(table: pa.Table, clips: RunClips, folder: Path, count: int) -> str:
    """Animated clips with their motion overlaid; a clip that cannot be read back is listed with the reason."""
    figures = []
    for index, row in enumerate(gallery_picks(table, count)):
        scores = ", ".join(
            f"{name} {row[name]:.2f}"
            for name in ("object_motion", "camera_motion", "object_score")
            if row[name] is not None
        )
        label = f"{row['key']} ({row['camera_type']}; {scores}) {row['caption'] or ''}"
        try:
            stored = clips.conditions(row["shard"], row["key"]) if row["conditions"] else None
            frames = overlay_frames(clips.samples(row["shard"], row["key"]), stored)
        except (OSError, KeyError, RuntimeError) as error:
            reason = f"{label}: not readable ({error})"
            figures.append(f"<figure><figcaption>{html.escape(reason)}</figcaption></figure>")
            continue
        animated_gif(folder / "gallery" / f"{index:03d}.gif", frames)
        figures.append(
            f"<figure><img src='gallery/{index:03d}.gif' alt='{html.escape(row['key'])}'>"
            f"<figcaption>{html.escape(label)}</figcaption></figure>"
        )
    legend = "heatmap red, motion-mask outline yellow, sparse tracks cyan (when the run stored conditions)"
    return f"<h2>Gallery</h2><p>{legend}</p><div class='gallery'>{''.join(figures)}</div>"
