"""A Ray Data entry point: ``dataset.map_batches(MotionAnnotator, ...)`` annotates rows that hold videos.

Ray Data calls the class once per actor (stages built and set up once, as a shard worker does) and then with
each batch. A batch is any of Ray Data's formats (numpy dict, pandas, pyarrow) with a column of video bytes:
``ray.data.read_webdataset`` gives one per extension (``mp4``, ...) and ``__key__``;
``ray.data.read_binary_files(..., include_paths=True)`` gives ``bytes`` and ``path``. Every input row gives
exactly one output row, in order, with the metadata schema's columns (``schemas/metadata.py``): a clip that
fails is a row with ``status`` error and its reason, never a lost row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa

KEY_COLUMNS = ("__key__", "key", "path")  # the first present names the clip
SOURCE_COLUMNS = ("__url__", "path")  # the first present fills the rows' ``shard``
BINARY_COLUMN = "bytes"  # read_binary_files: the video's extension comes from its path


class MotionAnnotator:
    """Annotates batches of videos with motion (the annotate stages, in this process)."""

    def __init__(self, overrides: Sequence[str] = (), config_file: str | None = None, device: str = "cpu") -> None:
        """``overrides``: config settings as ``--set`` takes them (``flow.dis_preset=fast``); ``config_file``: a
        YAML or TOML run config."""
        from motionpipe.pipeline import __version__
        from motionpipe.pipeline.config import build_config
        from motionpipe.pipeline.shard_runner import RunIdentity, build_annotation_stages

        config = build_config(config_file, list(overrides))
        for check in (config.flow.check_weights, config.decouple.check_weights, config.scoring.check_weights):
            check()
        self.identity = RunIdentity(__version__, config.config_hash())
        self.stages = build_annotation_stages(config)
        for stage in self.stages:
            stage.setup(device)

    def __call__(self, batch: Any) -> pa.Table:
        from motionpipe.pipeline.shard_runner import clip_row, run_stages_checked
        from motionpipe.schemas.metadata import rows_to_table

        clips = input_clips(batch_columns(batch))
        run_stages_checked(self.stages, clips)
        return rows_to_table([clip_row(clip, self.identity) for clip in clips])


def batch_columns(batch: Any) -> dict[str, list]:
    """Column name -> values of a Ray Data batch in any of its formats."""
    if isinstance(batch, pa.Table):
        return batch.to_pydict()
    if hasattr(batch, "columns") and hasattr(batch, "to_dict"):  # pandas
        return {name: batch[name].tolist() for name in batch.columns}
    return {name: list(values) for name, values in batch.items()}


def input_clips(columns: dict[str, list]) -> list:
    """One clip record per row: its byte columns are its members (a ``bytes`` column takes the extension of the
    row's ``path``), its key the first key column present (else its position)."""
    from motionpipe.stages.base import ClipRecord

    count = len(next(iter(columns.values()))) if columns else 0
    key_column = next((name for name in KEY_COLUMNS if name in columns), None)
    source_column = next((name for name in SOURCE_COLUMNS if name in columns), None)
    clips = []
    for index in range(count):
        key = str(columns[key_column][index]) if key_column else str(index)
        payloads = {}
        for name, values in columns.items():
            value = values[index]
            if isinstance(value, bytes | bytearray | memoryview) and not name.startswith("_"):
                extension = name
                if name == BINARY_COLUMN and "path" in columns:
                    extension = PurePosixPath(str(columns["path"][index])).suffix[1:].lower() or name
                payloads[extension] = bytes(value)
        source = str(columns[source_column][index]) if source_column else "ray-data"
        clips.append(ClipRecord(key, source, payloads, {extension: f"{key}.{extension}" for extension in payloads}))
    return clips
