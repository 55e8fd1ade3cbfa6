"""The output directory of a run, written so that readers never see partial files.

Layout::

    OUT/run.json                 resolved config, config hash, package versions
    OUT/metadata/SHARD.parquet   one row per input clip of SHARD
    OUT/manifest/SHARD.json      written last: its presence with status 'done' marks SHARD complete

Every file is written to a hidden temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

SHARD_DONE = "done"
SHARD_FAILED = "failed"


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(temp_path)`` then rename over ``path``; a crash leaves only a hidden temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, lambda temp: temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


@dataclass(frozen=True)
class RunLayout:
    """Paths inside a run's output directory."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    @property
    def manifest_dir(self) -> Path:
        return self.root / "manifest"

    def metadata_path(self, shard: str) -> Path:
        return self.metadata_dir / f"{shard}.parquet"

    def manifest_path(self, shard: str) -> Path:
        return self.manifest_dir / f"{shard}.json"

    def write_shard(self, shard: str, table: pa.Table, entry: dict[str, Any]) -> None:
        """Publish a finished shard: its table first, then the manifest entry that marks it done."""
        write_atomically(self.metadata_path(shard), lambda temp: pq.write_table(table, temp))
        write_json_atomically(self.manifest_path(shard), {**entry, "status": SHARD_DONE})

    def record_failed_shard(self, shard: str, entry: dict[str, Any]) -> None:
        """Note a shard that could not be read, so ``inspect`` shows it and a rerun retries it."""
        self.metadata_path(shard).unlink(missing_ok=True)
        write_json_atomically(self.manifest_path(shard), {**entry, "status": SHARD_FAILED})

    def manifest(self) -> dict[str, dict[str, Any]]:
        """Manifest entries by shard name."""
        if not self.manifest_dir.is_dir():
            return {}
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.manifest_dir.glob("*.json"))}

    def is_done(self, shard: str, config_hash: str) -> bool:
        """Done means: manifest says done for this config, and the table it announces is in place."""
        path = self.manifest_path(shard)
        if not path.exists():
            return False
        entry = json.loads(path.read_text())
        return (
            entry.get("status") == SHARD_DONE
            and entry.get("config_hash") == config_hash
            and self.metadata_path(shard).exists()
        )
