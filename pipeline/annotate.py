"""The annotate job: resolve shards, record the run, skip finished shards, run the rest on an engine."""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from motionpipe.pipeline import __version__
from motionpipe.pipeline.config import RunConfig
from motionpipe.pipeline.run_outputs import SHARD_DONE, RunLayout
from motionpipe.pipeline.shard_reader import shard_name
from motionpipe.pipeline.shard_runner import Progress, RunIdentity, ShardSummary, annotate_in_process
from motionpipe.schemas.metadata import SCHEMA_VERSION

RECORDED_PACKAGES = (
    "motionpipe",
    "numpy",
    "opencv-python-headless",
    "decord",
    "av",
    "pyarrow",
    "ray",
    "torch",
    "torchvision",
    "webdataset",
)


class ConfigMismatchError(Exception):
    """OUT holds results of another config; mixing them would make one table mean two things."""


@dataclass(frozen=True)
class AnnotateResult:
    shards: int
    skipped: int
    summaries: list[ShardSummary]

    @property
    def failed(self) -> list[ShardSummary]:
        return [s for s in self.summaries if s.status != SHARD_DONE]


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages whose behaviour shapes the outputs."""
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def run_record(config: RunConfig, shard_paths: list[str], engine: dict[str, Any]) -> dict[str, Any]:
    """Contents of OUT/run.json."""
    return {
        "motionpipe_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config_hash": config.config_hash(),
        "config": dataclasses.asdict(config),
        "inputs": shard_paths,
        "engine": engine,
        "python": platform.python_version(),
        "packages": package_versions(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def check_config_matches(layout: RunLayout, config: RunConfig) -> None:
    record = layout.read_json(layout.RUN_JSON)
    if record is None:
        return
    previous = record.get("config_hash")
    if previous != config.config_hash():
        raise ConfigMismatchError(
            f"{layout.location} holds results of config {previous}, this run's config is {config.config_hash()}; "
            "choose another output directory, or pass --overwrite to redo every shard with the new config"
        )


def annotate(
    shard_paths: list[str],
    out_dir: str | Path,
    config: RunConfig,
    progress: Progress,
    *,
    local: bool = False,
    address: str | None = None,
    overwrite: bool = False,
) -> AnnotateResult:
    """Annotate every shard not already done with this config (paths from ``resolve_shards``)."""
    config.flow.check_weights()
    config.decouple.check_weights()
    config.scoring.check_weights()
    layout = RunLayout.at(out_dir)
    if not overwrite:
        check_config_matches(layout, config)
    engine = {"local": local, "address": address}
    layout.write_json(layout.RUN_JSON, run_record(config, shard_paths, engine))
    identity = RunIdentity(__version__, config.config_hash())
    layout.remove_stale_temporaries()
    done = layout.done_shards([shard_name(path) for path in shard_paths], identity.config_hash)
    todo = [path for path in shard_paths if shard_name(path) not in done]
    if not todo:
        summaries: list[ShardSummary] = []
    elif local:
        summaries = annotate_in_process(todo, config, out_dir, identity, progress)
    else:
        from motionpipe.pipeline.ray_executor import annotate_on_ray

        summaries = annotate_on_ray(todo, config, out_dir, identity, progress, address=address)
    return AnnotateResult(shards=len(shard_paths), skipped=len(shard_paths) - len(todo), summaries=summaries)
