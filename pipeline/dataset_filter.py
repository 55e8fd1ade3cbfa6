"""``motionpipe filter``: select a run's rows by an expression and, optionally, their clips as new shards.

Layout of the destination (a local folder or a URL, like a run's OUT)::

    TO/metadata.parquet   the selected rows, same schema as OUT/metadata (the expression in its metadata)
    TO/selection.json     expression, source run, row counts, shards written
    TO/shards/SHARD.tar   with --shards: the selected ok clips of each input shard, every member of their
                          samples, streamed from the input (nothing extracted), same shard names as the input

Stages score and never filter; this is where thresholds apply. Every file appears whole or not at all
(pipeline/run_storage.py).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.filter_expression import ExpressionError, columns_used, parse_selection
from pipeline.run_outputs import RunLayout, json_text
from pipeline.run_storage import RunStorage
from pipeline.shard_reader import iter_samples, shard_name

SELECTION_FILE = "selection.json"
SHARDS_FOLDER = "shards"


class FilterTargetError(RuntimeError):
    """The destination holds another selection (or other files) and --overwrite was not given."""


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
    return table.sort_by([("shard", "ascending")]) if table.num_rows else table


def filter_run(
    out_dir: str | Path,
    where: str,
    to: str | Path,
    write_shards: bool = False,
    overwrite: bool = False,
    on_shard: Callable[[str], None] | None = None,
) -> FilterResult:
    """Select rows (and their clips) into ``to``, a folder or URL; ``on_shard`` hears of each shard written."""
    target = RunStorage.at(to)
    prepare_target(target, overwrite)
    selected = select_rows(out_dir, where)
    ok_keys = ok_keys_by_shard(selected)
    shards_written, clips_written = [], 0
    if write_shards:
        for shard, keys in ok_keys.items():
            clips_written += copy_samples(shard, keys, target, f"{SHARDS_FOLDER}/{shard_name(shard)}.tar")
            shards_written.append(shard_name(shard))
            if on_shard is not None:
                on_shard(shard)
    layout = RunLayout.at(out_dir)
    rows_in = layout.metadata().count_rows()
    ok_selected = sum(len(keys) for keys in ok_keys.values())
    result = FilterResult(where, layout.location, rows_in, selected.num_rows, ok_selected,
                          shards_written, clips_written)  # fmt: skip
    schema = selected.schema.with_metadata({**(selected.schema.metadata or {}), b"motionpipe.selection": where})
    target.write("metadata.parquet", lambda path: pq.write_table(selected.cast(schema), path))
    record = asdict(result) | {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    target.write_bytes(SELECTION_FILE, json_text(record).encode())
    return result


def prepare_target(target: RunStorage, overwrite: bool) -> None:
    """Refuse to mix selections: an earlier selection is replaced only with ``overwrite``, other files never."""
    if target.is_empty():
        return
    if not target.exists(SELECTION_FILE):
        raise FilterTargetError(f"{target.url('')} is not empty and holds no earlier selection; choose an empty folder")
    if not overwrite:
        raise FilterTargetError(f"{target.url('')} holds an earlier selection; pass --overwrite to replace it")
    target.delete_folder(SHARDS_FOLDER)


def ok_keys_by_shard(table: pa.Table) -> dict[str, set[str]]:
    """Input shard -> keys of its selected ok rows (error rows have no usable clip to copy)."""
    found: dict[str, set[str]] = {}
    for shard, key, status in zip(
        *(table.column(name).to_pylist() for name in ("shard", "key", "status")), strict=True
    ):
        if status == "ok":
            found.setdefault(shard, set()).add(key)
    return found


def copy_samples(shard: str, keys: set[str], target: RunStorage, relative: str) -> int:
    """Stream ``shard`` and write the samples with these keys (first occurrence of each) to ``relative``."""
    copied: set[str] = set()

    def write(path: str) -> None:
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
            for sample in iter_samples(shard):
                if sample.key not in keys or sample.key in copied:
                    continue
                copied.add(sample.key)
                for extension, payload in sample.payloads.items():
                    member = tarfile.TarInfo(sample.member_names[extension])
                    member.size = len(payload)
                    archive.addfile(member, io.BytesIO(payload))

    target.write(relative, write)
    return len(copied)
