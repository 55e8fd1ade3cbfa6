"""``motionpipe filter``: select a run's rows by an expression and, optionally, their clips as new shards.

Layout of the destination (a local folder or a URL, like a run's OUT)::

    TO/metadata.parquet   the selected rows, same schema as OUT/metadata (the expression in its metadata)
    TO/selection.json     expression, source run, row counts, shards written
    TO/shards/SHARD.tar   with --shards: the selected ok clips of each input shard, every member of their
                          samples streamed from the input (nothing extracted), plus KEY.motion.json (the clip's
                          row), same shard names as the input; with --maxcount N, resharded by webdataset's
                          ShardWriter into selected-NNNNNN.tar of N clips each

Stages score and never filter; this is where thresholds apply. Every file appears whole or not at all
(pipeline/run_storage.py).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from motionpipe.pipeline.filter_expression import ExpressionError, columns_used, parse_selection
from motionpipe.pipeline.run_outputs import RunLayout, json_text
from motionpipe.pipeline.run_storage import RunStorage
from motionpipe.pipeline.shard_reader import Sample, iter_samples, shard_name
from motionpipe.pipeline.shard_sources import relocated, shard_exists

SELECTION_FILE = "selection.json"
SHARDS_FOLDER = "shards"
MOTION_MEMBER = "motion.json"  # the clip's row, written beside its other members in selected shards
RESHARD_PATTERN = "selected-%06d.tar"
# what fills a column that is null in every row
NULL_COLUMN_HINTS = {
    "object_score": "annotate with --estimator (scoring.checkpoint)",
    "camera_score": "annotate with --estimator (scoring.checkpoint)",
    "object_track_motion": "annotate with --set tracking.tracker=flow_chain or cotracker",
    "camera_track_motion": "annotate with --set tracking.tracker=flow_chain or cotracker",
}


class FilterTargetError(RuntimeError):
    """The destination holds another selection (or other files) and --overwrite was not given."""


class NullColumnError(ExpressionError):
    """The expression selects nothing because a column it reads is null in every row (what it needs did not run)."""


@dataclass(frozen=True)
class FilterResult:
    """What a filter run selected and wrote."""

    where: str
    source: str
    rows_in: int
    rows_selected: int
    ok_selected: int
    shards_written: list[str]
    clips_written: int  # with --shards; fewer than ok_selected means clips went missing from the input shards


def select_rows(out_dir: str | Path, where: str) -> pa.Table:
    """The run's rows the expression selects, in shard then row order (Python API of ``filter``)."""
    dataset = RunLayout.at(out_dir).metadata()
    try:
        table = dataset.to_table(filter=parse_selection(where, dataset.schema.names))
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid) as error:
        types = ", ".join(f"{name}: {dataset.schema.field(name).type}" for name in sorted(columns_used(where)))
        raise ExpressionError(f"cannot evaluate {where!r} ({types}): {str(error).splitlines()[0]}") from None
    if table.num_rows:
        return table.sort_by([("shard", "ascending")])
    empty = [name for name in sorted(columns_used(where)) if pc.all(pc.is_null(dataset.to_table([name])[name])).as_py()]
    if empty:
        hints = "; ".join(f"{name}: {NULL_COLUMN_HINTS.get(name, 'not computed by this run')}" for name in empty)
        raise NullColumnError(f"{where!r} selects nothing: {', '.join(empty)} is null in every row ({hints})")
    return table


def filter_run(
    out_dir: str | Path,
    where: str,
    to: str | Path,
    write_shards: bool = False,
    overwrite: bool = False,
    on_shard: Callable[[str], None] | None = None,
    shards_from: str = "",
    maxcount: int = 0,
) -> FilterResult:
    """Select rows (and their clips) into ``to``, a folder or URL; ``on_shard`` hears of each input shard done.
    ``shards_from``: read the input shards from this folder by name (moved since annotation); ``maxcount``: reshard
    into shards of this many clips (0: one per input shard, same names)."""
    if maxcount < 0:
        raise ValueError(f"maxcount must be >= 0, got {maxcount}")
    selected = select_rows(out_dir, where)
    ok_rows = ok_rows_by_shard(selected)
    sources = {shard: relocated(shard, shards_from) for shard in ok_rows} if write_shards else {}
    missing = [source for source in sources.values() if not shard_exists(source)]
    if missing:
        hint = "is that the folder they are in?" if shards_from else "pass --shards DIR, the folder they are in now"
        raise FileNotFoundError(f"{len(missing)} selected shard(s) are missing ({missing[0]}); {hint}")
    target = RunStorage.at(to)
    prepare_target(target, overwrite)  # only once the selection is known to be writable: nothing is lost before
    shards_written, clips_written = [], 0
    if write_shards:
        done = on_shard or (lambda _: None)
        if maxcount:
            shards_written, clips_written = reshard(sources, ok_rows, target, maxcount, done)
        else:
            shards_written, clips_written = copy_shards(sources, ok_rows, target, done)
    layout = RunLayout.at(out_dir)
    rows_in = layout.metadata().count_rows()
    ok_selected = sum(len(rows) for rows in ok_rows.values())
    result = FilterResult(where, layout.location, rows_in, selected.num_rows, ok_selected,
                          shards_written, clips_written)  # fmt: skip
    schema = selected.schema.with_metadata({**(selected.schema.metadata or {}), b"motionpipe.selection": where})
    target.write("metadata.parquet", lambda path: pq.write_table(selected.cast(schema), path))
    record = asdict(result) | {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    target.write_bytes(SELECTION_FILE, json_text(record).encode())
    return result


def prepare_target(target: RunStorage, overwrite: bool) -> None:
    """Refuse to mix selections: an earlier selection, or the shards of one that stopped before its metadata, is
    replaced only with ``overwrite``; other files never."""
    if target.is_empty():
        return
    unfinished = all(name == SHARDS_FOLDER or name.startswith(".") for name in target.names())
    if not unfinished and not target.exists(SELECTION_FILE):
        raise FilterTargetError(f"{target.url('')} is not empty and holds no earlier selection; choose an empty folder")
    if not overwrite:
        held = "the shards of an unfinished selection" if unfinished else "an earlier selection"
        raise FilterTargetError(f"{target.url('')} holds {held}; pass --overwrite to replace it")
    target.delete_folder(SHARDS_FOLDER)


def ok_rows_by_shard(table: pa.Table) -> dict[str, dict[str, dict[str, Any]]]:
    """Input shard -> key -> row, of the selected ok rows (error rows have no usable clip to copy)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for row in table.to_pylist():
        if row["status"] == "ok":
            found.setdefault(row["shard"], {})[row["key"]] = row
    return found


def selected_samples(source: str, rows: dict[str, dict[str, Any]]) -> Iterator[Sample]:
    """The samples of the shard at ``source`` whose keys ``rows`` holds (the first of each), with the row added as
    ``KEY.motion.json``."""
    copied: set[str] = set()
    for sample in iter_samples(source):
        if sample.key not in rows or sample.key in copied:
            continue
        copied.add(sample.key)
        sample.payloads[MOTION_MEMBER] = json.dumps(rows[sample.key], sort_keys=True, default=str).encode()
        sample.member_names[MOTION_MEMBER] = f"{sample.key}.{MOTION_MEMBER}"
        yield sample


def copy_shards(
    sources: dict[str, str],
    ok_rows: dict[str, dict[str, dict[str, Any]]],
    target: RunStorage,
    done: Callable[[str], None],
) -> tuple[list[str], int]:
    """One output shard per input shard, under its name. -> (names, clips written)."""
    names, count = [], 0
    for shard, rows in ok_rows.items():
        names.append(shard_name(shard))
        count += copy_samples(sources[shard], rows, target, f"{SHARDS_FOLDER}/{names[-1]}.tar")
        done(shard)
    return names, count


def copy_samples(source: str, rows: dict[str, dict[str, Any]], target: RunStorage, relative: str) -> int:
    """Stream the shard at ``source`` and write its selected samples to ``relative``; -> how many."""
    count = 0

    def write(path: str) -> None:
        nonlocal count
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
            for sample in selected_samples(source, rows):
                count += 1
                for extension, payload in sample.payloads.items():
                    member = tarfile.TarInfo(sample.member_names[extension])
                    member.size = len(payload)
                    archive.addfile(member, io.BytesIO(payload))

    target.write(relative, write)
    return count


def reshard(
    sources: dict[str, str],
    ok_rows: dict[str, dict[str, dict[str, Any]]],
    target: RunStorage,
    maxcount: int,
    done: Callable[[str], None],
) -> tuple[list[str], int]:
    """Write the selected samples of every input shard through webdataset's ShardWriter, ``maxcount`` a shard;
    each shard appears in ``target`` whole once finished. -> (shard names, clips written)."""
    import webdataset as wds

    written: list[str] = []
    count = 0

    def publish(path: str) -> None:
        name = os.path.basename(path)
        target.commit(path, f"{SHARDS_FOLDER}/{name}")
        written.append(shard_name(name))

    with tempfile.TemporaryDirectory(prefix=".reshard-", dir=target.local_staging_folder()) as folder:
        with wds.ShardWriter(f"{folder}/{RESHARD_PATTERN}", maxcount=maxcount, post=publish, verbose=0) as writer:
            for shard, rows in ok_rows.items():
                for sample in selected_samples(sources[shard], rows):
                    writer.write({"__key__": sample.key, **sample.payloads})
                    count += 1
                done(shard)
    return written, count
