"""The output directory of a run, written so that readers never see partial files.

Layout::

    OUT/run.json                 resolved config, config hash, package versions
    OUT/metadata/SHARD.parquet   one row per input clip of SHARD
    OUT/conditions/SHARD.tar     KEY.npz per ok clip, when conditions are on (schemas/conditions.py)
    OUT/manifest/SHARD.json      written last: its presence with status 'done' marks SHARD complete
    OUT/attempts/SHARD.json      while SHARD is in progress: clips in flight and crash counts

Every file is written to a hidden temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_DONE = "done"
SHARD_FAILED = "failed"


class StagedFile:
    """A file written under a hidden temporary name beside ``path``, renamed into place by ``publish``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")

    def publish(self) -> None:
        with open(self.temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(temp_path)`` then rename over ``path``; a crash leaves only a hidden temp file."""
    staged = StagedFile(path)
    try:
        write(staged.temp)
        staged.publish()
    finally:
        staged.discard()


class ConditionsTar:
    """Streams each clip's condition arrays into a staged WebDataset tar as ``KEY.npz``."""

    def __init__(self, path: Path) -> None:
        self.staged = StagedFile(path)
        self.archive = tarfile.open(self.staged.temp, "w")

    def add(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        info = tarfile.TarInfo(f"{key}.npz")
        info.size = buffer.tell()
        buffer.seek(0)
        self.archive.addfile(info, buffer)

    def publish(self) -> None:
        self.archive.close()
        self.staged.publish()

    def discard(self) -> None:
        self.archive.close()
        self.staged.discard()


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

    @property
    def conditions_dir(self) -> Path:
        return self.root / "conditions"

    def attempts_path(self, shard: str) -> Path:
        return self.root / "attempts" / f"{shard}.json"

    def remove_stale_temporaries(self) -> None:
        """Delete the hidden temporary files that killed writers left behind."""
        for folder in (self.metadata_dir, self.conditions_dir, self.manifest_dir, self.root / "attempts"):
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)

    def conditions_path(self, shard: str) -> Path:
        return self.conditions_dir / f"{shard}.tar"

    def metadata_path(self, shard: str) -> Path:
        return self.metadata_dir / f"{shard}.parquet"

    def manifest_path(self, shard: str) -> Path:
        return self.manifest_dir / f"{shard}.json"

    def write_shard(
        self, shard: str, table: pa.Table, entry: dict[str, Any], conditions: ConditionsTar | None = None
    ) -> None:
        """Publish a finished shard: conditions and table first, then the manifest entry that marks it done."""
        if conditions is not None:
            conditions.publish()
        write_atomically(self.metadata_path(shard), lambda temp: pq.write_table(table, temp))
        write_json_atomically(self.manifest_path(shard), {**entry, "status": SHARD_DONE})

    def record_failed_shard(self, shard: str, entry: dict[str, Any]) -> None:
        """Note a shard that could not be read, so ``inspect`` shows it and a rerun retries it."""
        self.metadata_path(shard).unlink(missing_ok=True)
        self.conditions_path(shard).unlink(missing_ok=True)
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
