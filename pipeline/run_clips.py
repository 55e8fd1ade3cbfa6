"""A run's clips read back: the video of a row decoded with the run's own sampling, and its stored conditions.

What consumes a run (the trainer dataset, the report) needs frames that line up with the conditions; both
come from here. Tars are opened by random access (``TarIndex``), once per location and process.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from motionpipe.pipeline.run_outputs import RunLayout
from motionpipe.pipeline.shard_reader import shard_name
from motionpipe.pipeline.shard_sources import relocated
from motionpipe.pipeline.tar_index import TarIndex
from motionpipe.stages.base import ClipRecord
from motionpipe.stages.decode import DecodeConfig, DecodeStage


class RunClips:
    """Clips of the annotate run in ``run``; ``shards``: read videos from this folder by shard name instead of
    each row's own shard path (e.g. a filter's TO/shards)."""

    def __init__(self, run: str | Path, shards: str | Path = "") -> None:
        self.layout = RunLayout.at(run)
        self.config = self.layout.run_record()["config"]
        self.shards = str(shards)
        self._indexes: dict[str, TarIndex] = {}
        self._decode: DecodeStage | None = None

    def video_location(self, shard: str) -> str:
        return relocated(shard, self.shards)

    def read(self, location: str, key: str) -> dict[str, bytes]:
        """Extension -> bytes of the sample ``key`` in the tar at ``location``."""
        if location not in self._indexes:
            self._indexes[location] = TarIndex(location)
        index = self._indexes[location]
        if key not in index:
            raise KeyError(
                f"{location} holds no sample {key!r} (changed since annotation, or the wrong shards folder?)"
            )
        return index.read(key)

    def samples(self, shard: str, key: str) -> np.ndarray:
        """``uint8[T, H, W, 3]``: the clip's samples at the run's fps_target and processing size."""
        if self._decode is None:
            self._decode = DecodeStage(DecodeConfig(**self.config["decode"]))
            self._decode.setup()
        location = self.video_location(shard)
        payloads = self.read(location, key)
        clip = ClipRecord(key, location, payloads, {extension: f"{key}.{extension}" for extension in payloads})
        self._decode.process([clip])
        if not clip.ok:
            raise RuntimeError(f"clip {key!r} of {location} no longer decodes: {clip.error_detail}")
        return clip.video.frames[clip.video.samples]

    def conditions(self, shard: str, key: str) -> dict[str, np.ndarray]:
        """The clip's stored condition arrays (``schemas/conditions.py``)."""
        location = self.layout.storage.url(self.layout.conditions_file(shard_name(shard)))
        with np.load(io.BytesIO(self.read(location, key)["npz"])) as npz:
            return dict(npz)
