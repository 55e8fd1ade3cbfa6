"""How long a resumed run takes to tell its done shards from the rest on an object store (issue 6).

    python benchmarks/resume_planning.py [--shards 2000] [--latency-ms 20]

Writes a run of SHARDS tiny shards (three in four done, the rest failed or never started) on local disk,
then plans its resume through a filesystem that answers every request after LATENCY ms, as a cloud object
store does: per shard, one after the other (a manifest existence check and read and a table check per
shard, as annotate did before), against ``RunLayout.done_shards`` (two listings, then the manifests of the
shards with a table read in parallel). Prints both times, their ratio and the requests each made.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from pyarrow import fs

from motionpipe.pipeline.run_outputs import SHARD_DONE, RunLayout
from motionpipe.pipeline.run_storage import RunStorage
from motionpipe.schemas.metadata import rows_to_table

CONFIG_HASH = "h"


class SlowFileSystem(fs.FileSystemHandler):
    """A local folder behind an object store's latency: every request waits ``latency_s`` and is counted."""

    def __init__(self, root: str, latency_s: float) -> None:
        self.base = fs.SubTreeFileSystem(root, fs.LocalFileSystem())
        self.latency_s = latency_s
        self.requests = 0
        self._lock = threading.Lock()

    def _request(self) -> fs.FileSystem:
        with self._lock:
            self.requests += 1
        time.sleep(self.latency_s)
        return self.base

    def get_type_name(self) -> str:
        return "slow"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[fs.FileInfo]:
        return self._request().get_file_info(paths)

    def get_file_info_selector(self, selector: fs.FileSelector) -> list[fs.FileInfo]:
        return self._request().get_file_info(selector)

    def open_input_stream(self, path: str):
        return self._request().open_input_stream(path)

    def open_input_file(self, path: str):
        return self._request().open_input_file(path)

    def read_only(self, *args: object) -> None:
        raise OSError("this benchmark's filesystem is read-only")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = read_only
    move = copy_file = open_output_stream = open_append_stream = read_only


def write_run(root: Path, shards: int) -> list[str]:
    """A run folder with ``shards`` one-row shards: done, done with another config, failed, never started."""
    layout = RunLayout.at(root / "out")
    names = [f"shard-{index:06d}" for index in range(shards)]
    for index, name in enumerate(names):
        if index % 4 == 3:
            continue
        row = {"key": "k", "shard": name, "status": "ok", "pipeline_version": "0", "config_hash": CONFIG_HASH}
        layout.write_shard(name, rows_to_table([row]), {"config_hash": CONFIG_HASH if index % 4 else "older"})
        if index % 4 == 2:
            layout.record_failed_shard(name, {"config_hash": CONFIG_HASH, "message": "failed"})
    return names


def one_by_one(layout: RunLayout, names: list[str]) -> set[str]:
    """The per-shard checks annotate made before done_shards."""
    done = set()
    for name in names:
        entry = layout.read_json(layout.manifest_file(name))
        if entry and entry.get("status") == SHARD_DONE and entry.get("config_hash") == CONFIG_HASH:
            if layout.storage.exists(layout.metadata_file(name)):
                done.add(name)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        names = write_run(Path(tmp), args.shards)
        plans = {
            "one shard after another": lambda layout: one_by_one(layout, names),
            "done_shards": lambda layout: layout.done_shards(names, CONFIG_HASH),
        }
        timings = {}
        for label, plan in plans.items():
            slow = SlowFileSystem(tmp, args.latency_ms / 1000)
            started = time.perf_counter()
            done = plan(RunLayout(RunStorage(fs.PyFileSystem(slow), "out")))
            timings[label] = time.perf_counter() - started
            print(f"{label:<26} {timings[label]:8.2f} s {slow.requests:>7} requests  {len(done)} of {len(names)} done")
        ratio = timings["one shard after another"] / timings["done_shards"]
        print(f"{args.shards} shards at {args.latency_ms:g} ms a request: done_shards {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
