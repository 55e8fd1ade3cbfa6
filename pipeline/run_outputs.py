"""The output of a run, written so that readers never see partial files.

Layout (``OUT`` is a local folder or a URL, see run_storage.py)::

    OUT/run.json                 resolved config, config hash, package versions
    OUT/metadata/SHARD.parquet   one row per input clip of SHARD
    OUT/conditions/SHARD.tar     KEY.npz per ok clip, when conditions are on (schemas/conditions.py)
    OUT/manifest/SHARD.json      written last: its presence with status 'done' marks SHARD complete

Every file appears whole (renamed into place, or uploaded whole to an object store).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from motionpipe.pipeline.run_storage import RunStorage
from motionpipe.schemas.metadata import metadata_schema

if TYPE_CHECKING:
    import pyarrow.dataset as ds

SHARD_DONE = "done"
SHARD_FAILED = "failed"
MANIFEST_READERS = 32  # manifest entries read at once: an object store answers each request in tens of ms


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write a local file via ``write(temp_path)``, then rename it over ``path``; a crash leaves only a hidden temp."""
    RunStorage.at(path.parent).write(path.name, lambda staging: write(Path(staging)))


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, lambda temp: temp.write_text(json_text(data)))


def json_text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


class ConditionsTar:
    """Streams each clip's condition arrays into a staged WebDataset tar as ``KEY.npz``."""

    def __init__(self, storage: RunStorage, relative: str) -> None:
        self.storage = storage
        self.relative = relative
        self.staging = storage.staging_path(relative)
        self.archive = tarfile.open(self.staging, "w")

    def add(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        info = tarfile.TarInfo(f"{key}.npz")
        info.size = buffer.tell()
        buffer.seek(0)
        self.archive.addfile(info, buffer)

    def publish(self) -> None:
        self.archive.close()
        self.storage.commit(self.staging, self.relative)
        self.storage.discard(self.staging)

    def discard(self) -> None:
        self.archive.close()
        self.storage.discard(self.staging)


class RunLayout:
    """The files of a run, by role, in its storage (names relative to OUT)."""

    RUN_JSON = "run.json"
    FOLDERS = ("metadata", "conditions", "manifest")

    def __init__(self, storage: RunStorage) -> None:
        self.storage = storage

    @classmethod
    def at(cls, out: str | Path) -> RunLayout:
        return cls(RunStorage.at(out))

    @property
    def location(self) -> str:
        return self.storage.url("")

    @staticmethod
    def metadata_file(shard: str) -> str:
        return f"metadata/{shard}.parquet"

    @staticmethod
    def conditions_file(shard: str) -> str:
        return f"conditions/{shard}.tar"

    @staticmethod
    def manifest_file(shard: str) -> str:
        return f"manifest/{shard}.json"

    def run_record(self) -> dict[str, Any]:
        """OUT/run.json; FileNotFoundError when OUT is not a run."""
        record = self.read_json(self.RUN_JSON)
        if record is None:
            raise FileNotFoundError(f"{self.location} is not a motionpipe run (no run.json)")
        return record

    def read_json(self, relative: str) -> dict[str, Any] | None:
        """The JSON file's contents, or None when it does not exist."""
        return json.loads(self.storage.read_bytes(relative)) if self.storage.exists(relative) else None

    def write_json(self, relative: str, data: dict[str, Any]) -> None:
        self.storage.write_bytes(relative, json_text(data).encode())

    def remove_stale_temporaries(self) -> None:
        """Delete the hidden temporary files that killed writers left behind."""
        self.storage.remove_stale_temporaries(list(self.FOLDERS))

    def write_shard(
        self, shard: str, table: pa.Table, entry: dict[str, Any], conditions: ConditionsTar | None = None
    ) -> None:
        """Publish a finished shard: conditions and table first, then the manifest entry that marks it done."""
        if conditions is not None:
            conditions.publish()
        self.storage.write(self.metadata_file(shard), lambda path: pq.write_table(table, path))
        self.write_json(self.manifest_file(shard), {**entry, "status": SHARD_DONE})

    def record_failed_shard(self, shard: str, entry: dict[str, Any]) -> None:
        """Note a shard that could not be read, so ``inspect`` shows it and a rerun retries it."""
        self.storage.delete(self.metadata_file(shard))
        self.storage.delete(self.conditions_file(shard))
        self.write_json(self.manifest_file(shard), {**entry, "status": SHARD_FAILED})

    def manifest(self, shards: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Manifest entries by shard name (only of ``shards`` when given): one listing, then the entries read
        in parallel; one after the other, a resumed run of 10k shards on an object store waits minutes."""
        names = [name[: -len(".json")] for name in self.storage.list("manifest", ".json")]
        if shards is not None:
            names = sorted(set(names) & set(shards))
        with ThreadPoolExecutor(MANIFEST_READERS) as pool:
            entries = list(pool.map(lambda name: self.read_json(self.manifest_file(name)), names))
        return {name: entry for name, entry in zip(names, entries, strict=True) if entry is not None}

    def done_shards(self, shards: Iterable[str], config_hash: str) -> set[str]:
        """The shards that are done: the manifest says done for this config, and the table it announces is
        in place. Two listings and the entries of the shards with a table, however many shards."""
        tables = {name[: -len(".parquet")] for name in self.storage.list("metadata", ".parquet")}
        entries = self.manifest(tables.intersection(shards))
        return {
            shard
            for shard, entry in entries.items()
            if entry.get("status") == SHARD_DONE and entry.get("config_hash") == config_hash
        }

    def metadata(self) -> ds.Dataset:
        """The run's metadata files as one dataset, in this version's schema (a column that shards written by an
        older version lack reads null, so a run resumed across versions reads whole); FileNotFoundError when no
        shard has finished."""
        import pyarrow.dataset as ds  # here, not at the top: it imports pandas, 0.4 s of every worker's start-up

        names = self.storage.list("metadata", ".parquet")
        if not names:
            raise FileNotFoundError(f"no metadata in {self.location}: not a motionpipe run, or no shard finished yet")
        paths = [self.storage.full(f"metadata/{name}") for name in names]
        return ds.dataset(paths, schema=metadata_schema(), filesystem=self.storage.filesystem, format="parquet")
