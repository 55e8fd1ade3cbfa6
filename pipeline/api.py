"""The functions ``import motionpipe`` offers (documented in its docstring and the README's Python API)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from motionpipe.pipeline.dataset_filter import select_rows
from motionpipe.pipeline.ray_data import MotionAnnotator

if TYPE_CHECKING:
    import pandas
    import ray.data

    from motionpipe.pipeline.annotate import AnnotateResult

__all__ = ["MotionAnnotator", "annotate_shards", "read_run", "read_run_ray", "select_rows"]


def annotate_shards(
    inputs: Sequence[str],
    out: str | Path,
    overrides: Sequence[str] = (),
    config_file: str | None = None,
    *,
    local: bool = False,
    address: str | None = None,
) -> AnnotateResult:
    """Annotate shards as ``motionpipe annotate`` does (inputs as it takes them: shards, folders, globs, brace
    ranges, URLs, ``pipe:``, folders of videos), silently; shards already done with this config are skipped."""
    from motionpipe.pipeline.annotate import annotate
    from motionpipe.pipeline.config import build_config
    from motionpipe.pipeline.pack import packed_inputs
    from motionpipe.pipeline.shard_reader import resolve_shards
    from motionpipe.pipeline.shard_runner import SilentProgress

    config = build_config(config_file, list(overrides))
    shards = resolve_shards(packed_inputs(list(inputs), str(out)))
    return annotate(shards, out, config, SilentProgress(), local=local, address=address)


def read_run(out: str | Path) -> pandas.DataFrame:
    """A run's rows (OUT/metadata, local or a URL) as a pandas DataFrame, one row per clip, in shard order."""
    from motionpipe.pipeline.inspect_run import read_metadata

    return read_metadata(out).to_pandas()


def read_run_ray(out: str | Path) -> ray.data.Dataset:
    """A run's rows as a Ray dataset, read in parallel from its Parquet files (on the Ray cluster in use)."""
    import ray.data

    from motionpipe.pipeline.run_outputs import RunLayout

    layout = RunLayout.at(out)
    files = [layout.storage.url(f"metadata/{name}") for name in layout.storage.list("metadata", ".parquet")]
    if not files:
        raise FileNotFoundError(f"{out} holds no metadata: is it the OUT of an annotate run?")
    return ray.data.read_parquet(files)
