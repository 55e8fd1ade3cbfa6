"""The per-clip metadata table: one row per input clip, written to ``OUT/metadata/SHARD.parquet``.

Speeds are in **%diag/s**: a displacement of ``d`` px between frames ``dt`` seconds apart,
at processing size ``w x h``, is ``100 * d / hypot(w, h) / dt``. The same clip at another
resolution or frame rate reads the same, so scores compare across datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "3"
SPEED_UNIT = "%diag/s"


@dataclass(frozen=True)
class Column:
    """One metadata column: its Arrow type, what it means, and its unit (None if unitless)."""

    name: str
    type: pa.DataType
    doc: str
    unit: str | None = None
    nullable: bool = True


COLUMNS: tuple[Column, ...] = (
    # identity
    Column("key", pa.string(), "WebDataset sample key (member name without extensions).", nullable=False),
    Column("shard", pa.string(), "Path or URL of the input shard.", nullable=False),
    Column("source", pa.string(), "Tar member the video was read from; null when the sample has none."),
    Column("status", pa.string(), "'ok' or 'error'.", nullable=False),
    Column("error", pa.string(), "Short enumerable reason such as 'decode:truncated'; null when ok."),
    Column("error_detail", pa.string(), "Human-readable detail of the error; null when ok."),
    Column("pipeline_version", pa.string(), "motionpipe version that wrote the row.", nullable=False),
    Column("config_hash", pa.string(), "Hash of the annotation config (see OUT/run.json).", nullable=False),
    Column(
        "caption",
        pa.string(),
        "Caption from KEY.txt, or the first of 'caption', 'text', 'txt' in KEY.json; null if absent.",
    ),
    # video
    Column("decode_backend", pa.string(), "Decoder that produced the frames: 'decord' or 'pyav'."),
    Column("codec", pa.string(), "Video codec name as reported by the container."),
    Column("width", pa.int32(), "Source frame width as shown: turned upright, anamorphic pixels made square.", "px"),
    Column("height", pa.int32(), "Source frame height as shown.", "px"),
    Column("fps", pa.float64(), "Average source frame rate.", "frames/s"),
    Column("num_frames", pa.int64(), "Frame count declared by the container (null if unknown).", "frames"),
    Column("duration_s", pa.float64(), "Source duration.", "s"),
    Column("proc_width", pa.int32(), "Width of the processing frames (short side resized to S).", "px"),
    Column("proc_height", pa.int32(), "Height of the processing frames.", "px"),
    Column("frames_used", pa.int32(), "Frames sampled at fps_target for this clip.", "frames"),
    Column("window_s", pa.float64(), "Span of the sampled window, first to last sampled frame.", "s"),
    # flow statistics
    Column("flow_backend", pa.string(), "Optical-flow backend of the motion statistics, e.g. 'dis:balanced'."),
    Column("flow_pairs", pa.int32(), "Closely spaced frame pairs the statistics were measured on.", "pairs"),
    Column("flow_mean", pa.float32(), "Mean per-pixel speed over all measured pairs.", SPEED_UNIT),
    Column("flow_p50", pa.float32(), "Median per-pixel speed.", SPEED_UNIT),
    Column("flow_p95", pa.float32(), "95th percentile of per-pixel speed.", SPEED_UNIT),
    Column(
        "flow_max",
        pa.float32(),
        "Peak per-pixel speed, taken as the 99.9th percentile so single-pixel flow outliers do not set it.",
        SPEED_UNIT,
    ),
    Column(
        "motion_fraction",
        pa.float32(),
        "Area fraction of the MotionPro motion mask: pixels whose speed, averaged over pairs, "
        "exceeds flow.mask_threshold (default 1.33 %diag/s = 1 px/frame at 320x512, 8 fps).",
        "fraction",
    ),
    Column("static_clip", pa.bool_(), "True when flow_p95 is below the mask threshold: nothing visibly moves."),
    # camera vs object motion (DESIGN.md §4)
    Column("camera_backend", pa.string(), "Camera model: 'homography:usac' (RANSAC homography per pair)."),
    Column("segment_backend", pa.string(), "Object masks: 'motion_regions' (built in) or 'sam2:CONFIG'."),
    Column(
        "camera_motion",
        pa.float32(),
        "Mean image speed of the still scene, averaged over pairs: the camera model's over the frame, plus (camera "
        "moving) the still pixels' mean excess over it (parallax).",
        SPEED_UNIT,
    ),
    Column(
        "object_motion",
        pa.float32(),
        "Mean camera-compensated (residual) speed of object points (each object region's median, weighted by its "
        "pixels); 0 when no object moves.",
        SPEED_UNIT,
    ),
    Column("object_area", pa.float32(), "Mean fraction of the frame inside object masks.", "fraction"),
    Column(
        "camera_type",
        pa.string(),
        "static, pan_left, pan_right, tilt_up, tilt_down, zoom_in, zoom_out, rotate or complex (camera's own motion).",
    ),
    Column("cam_tx", pa.float32(), "Camera velocity, x (right > 0); image content moves the other way.", SPEED_UNIT),
    Column("cam_ty", pa.float32(), "Camera velocity, y (down > 0).", SPEED_UNIT),
    Column("cam_zoom", pa.float32(), "d ln(scale)/dt at the frame centre; > 0 zooms in.", "1/s"),
    Column("cam_rot", pa.float32(), "Image rotation rate; > 0 clockwise on screen.", "rad/s"),
    Column(
        "camera_inliers", pa.float32(), "Mean fraction of consistent grid points the homography explains.", "fraction"
    ),
    Column(
        "camera_parallax",
        pa.bool_(),
        "The camera translates through a scene with depth: part of the residual flow moved along the epipolar lines "
        "and was taken as parallax. object_motion is less certain there: an object moving along those lines looks "
        "like nearer still scenery.",
    ),
    # track-based pseudo-labels (MotionStone)
    Column("tracker_backend", pa.string(), "Point tracker: 'flow_chain' (built in) or 'cotracker'; null if none."),
    Column("object_tracks", pa.int32(), "Tracks queried inside the first sample's object masks.", "tracks"),
    Column("background_tracks", pa.int32(), "Tracks queried evenly over the background.", "tracks"),
    Column(
        "camera_track_motion",
        pa.float32(),
        "Mean speed of the background points under per-step homographies fitted to their tracks; null if too few.",
        SPEED_UNIT,
    ),
    Column(
        "object_track_motion",
        pa.float32(),
        "Mean camera-compensated speed of object tracks per step between samples (each object region's median, "
        "weighted by its readings, as object_motion); 0 without object tracks.",
        SPEED_UNIT,
    ),
    # estimator (MotionStone)
    Column("object_score", pa.float32(), "Estimator's object motion intensity; null without --estimator.", "1..10"),
    Column("camera_score", pa.float32(), "Estimator's camera motion intensity; null without --estimator.", "1..10"),
    Column("estimator_version", pa.string(), "Hash of the estimator weights that scored the row."),
    # quality flags
    Column(
        "scene_cut_suspected",
        pa.bool_(),
        "Flow broke down between two consecutive samples (consistent area < quality.cut_consistency): likely a cut.",
    ),
    Column(
        "low_texture",
        pa.bool_(),
        "Under quality.low_texture_fraction of the first frame has local contrast: flow has little to hold on to.",
    ),
    # dense tracks and conditions
    Column("tracks_backend", pa.string(), "How dense tracks were made: 'flow_chain' (chained flow); null if none."),
    Column(
        "visible_fraction",
        pa.float32(),
        "Fraction of dense tracks from the first sample still visible at the last (MotionPro's M_g area).",
        "fraction",
    ),
    Column(
        "conditions",
        pa.list_(pa.string()),
        "Conditions stored for this clip in OUT/conditions/SHARD.tar (KEY.npz); null when none.",
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in COLUMNS)


def metadata_schema() -> pa.Schema:
    """Arrow schema with per-field ``doc``/``unit`` metadata and the schema version."""
    fields = []
    for column in COLUMNS:
        field_metadata = {"doc": column.doc}
        if column.unit is not None:
            field_metadata["unit"] = column.unit
        fields.append(pa.field(column.name, column.type, nullable=column.nullable, metadata=field_metadata))
    return pa.schema(fields, metadata={"motionpipe.schema_version": SCHEMA_VERSION})


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build the metadata table; an unknown column is a programming error and raises."""
    known = set(COLUMN_NAMES)
    required = [column.name for column in COLUMNS if not column.nullable]
    for row in rows:
        unknown = set(row) - known
        if unknown:
            raise KeyError(f"row {row.get('key')!r} has columns missing from the schema: {sorted(unknown)}")
        missing = [name for name in required if row.get(name) is None]
        if missing:
            raise ValueError(f"row {row.get('key')!r} lacks required columns {missing}")
    return pa.Table.from_pylist(rows, schema=metadata_schema())


def describe_columns() -> str:
    """Markdown table of the columns, for docs and ``--help``."""
    lines = ["| column | type | unit | meaning |", "| --- | --- | --- | --- |"]
    for column in COLUMNS:
        kind = str(column.type).replace("item: ", "")
        lines.append(f"| `{column.name}` | {kind} | {column.unit or ''} | {column.doc} |")
    return "\n".join(lines)
