"""The run config: one typed object nesting each stage family's config.

Built from defaults, then a YAML/TOML file, then ``--set section.key=value`` overrides, in that
order. Only the annotation sections enter the config hash: execution settings (workers, batch
size) change speed, never results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from motionpipe.stages.conditions import ConditionsConfig
from motionpipe.stages.decode import DecodeConfig
from motionpipe.stages.decouple import DecoupleConfig
from motionpipe.stages.flow import FlowConfig
from motionpipe.stages.quality import QualityConfig
from motionpipe.stages.scoring import ScoringConfig
from motionpipe.stages.tracking import TrackingConfig


@dataclass(frozen=True)
class ExecutionConfig:
    """How the work is spread; does not affect outputs.

    workers: parallel shard workers (at most one per shard); 0: as many as the cluster holds, more as nodes
        join. Workers that do not fit yet wait for room (an autoscaler adds nodes for them); the others run.
    worker_cpus: CPUs a shard worker reserves (Ray only); 0: its stages' demand (1), or half a CPU when a GPU
        server computes its flow (it waits on the server part of each batch: two workers a core keep the cores
        and the GPU busy).
    batch_size: clips per stage batch (bounds memory per worker).
    clip_timeout_s: a Ray worker still on a batch after this many seconds per clip is stopped (a hung decoder).
    max_clip_attempts: a clip whose worker died this many times becomes an error row.
    max_shard_attempts: a shard is tried this often before it is recorded failed (each crash-looping clip
        costs up to max_clip_attempts + 1 of them).
    model_servers: shared model actors (Ray only) that serve all shard workers, for the flow (RAFT), the
        estimator (scoring) and SAM2 (decouple; clips take turns). -1: one of each per GPU for the models on
        cuda (GPUs that join mid-run get theirs, for the workers started after), none on CPU (each worker
        then runs its own); 0: none; N: N of each (flow always, scoring when a checkpoint is given, SAM2 when
        it is the segmenter), sharing a GPU per group when on cuda.
    flow_server_pairs: most frame pairs in one forward pass of a flow server (a score server batches
        scoring.batch_size clips).
    model_server_wait_ms: how long a server waits for other workers' inputs before running a batch.
    gpu_wait_s: when stages run on cuda and the cluster joined with --address has no GPU yet, how long to
        wait for a GPU node (asking an autoscaler for one) before failing; the GPU nodes of a cluster start
        minutes after its head (ray_cluster.yaml's head has none). 0: fail at once. Also how long a run waits
        for one of its model server groups to answer again once every group is lost (below).
    server_lost_s: a model server group that answered and then stays silent this long (its node lost with no
        free GPU to restart it on), or one of whose model passes has run longer than this and clip_timeout_s
        (a wedged GPU), is lost: its workers are stopped (their shards go to the other groups' workers, their
        clips are not blamed), its servers are restarted, and it takes workers again once they answer (one
        until a server has ended a model pass).
    """

    workers: int = 0
    worker_cpus: float = 0.0
    batch_size: int = 4
    clip_timeout_s: float = 300.0
    max_clip_attempts: int = 2
    max_shard_attempts: int = 6
    model_servers: int = -1
    flow_server_pairs: int = 64
    model_server_wait_ms: float = 10.0
    gpu_wait_s: float = 900.0
    server_lost_s: float = 60.0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"execution.workers must be >= 0 (0 = auto), got {self.workers}")
        if self.worker_cpus < 0:
            raise ValueError(f"execution.worker_cpus must be >= 0 (0 = auto), got {self.worker_cpus}")
        if self.batch_size < 1:
            raise ValueError(f"execution.batch_size must be >= 1, got {self.batch_size}")
        if self.clip_timeout_s <= 0:
            raise ValueError(f"execution.clip_timeout_s must be > 0, got {self.clip_timeout_s}")
        if self.max_clip_attempts < 1 or self.max_shard_attempts < 1:
            raise ValueError("execution.max_clip_attempts and execution.max_shard_attempts must be >= 1")
        if self.model_servers < -1 or self.flow_server_pairs < 1 or self.model_server_wait_ms < 0:
            raise ValueError("execution.model_servers must be >= -1, flow_server_pairs >= 1, model_server_wait_ms >= 0")
        if self.gpu_wait_s < 0:
            raise ValueError(f"execution.gpu_wait_s must be >= 0 (0 = no wait), got {self.gpu_wait_s}")
        if self.server_lost_s <= 0:
            raise ValueError(f"execution.server_lost_s must be > 0, got {self.server_lost_s}")


@dataclass(frozen=True)
class RunConfig:
    """Everything an annotate run is configured by."""

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    decouple: DecoupleConfig = field(default_factory=DecoupleConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    conditions: ConditionsConfig = field(default_factory=ConditionsConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    def annotation_dict(self) -> dict[str, Any]:
        """The sections that determine the outputs."""
        return {
            "decode": dataclasses.asdict(self.decode),
            "flow": dataclasses.asdict(self.flow),
            "decouple": dataclasses.asdict(self.decouple),
            "quality": dataclasses.asdict(self.quality),
            "tracking": dataclasses.asdict(self.tracking),
            "scoring": dataclasses.asdict(self.scoring),
            "conditions": dataclasses.asdict(self.conditions),
        }

    def config_hash(self) -> str:
        canonical = json.dumps(self.annotation_dict(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) config file into a nested dict."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"config file {path} must end in .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` -> (['section', 'key'], value), the value parsed as a YAML scalar."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"override {text!r} must look like section.key=value")
    return name.strip().split("."), yaml.safe_load(raw)


def build_config(file: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults <- file <- overrides, validated by the config dataclasses."""
    data = dataclasses.asdict(RunConfig())
    if file is not None:
        _merge(data, load_config_file(file), [])
    for override in overrides or []:
        path, value = parse_override(override)
        _merge(data, _nest(path, value), [])
    return _build(RunConfig, data, "")


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    for name in reversed(path):
        value = {name: value}
    return value


def _merge(base: dict[str, Any], update: dict[str, Any], where: list[str]) -> None:
    for name, value in update.items():
        if name not in base:
            prefix = ".".join(where) or "top level"
            raise ValueError(f"unknown config key {'.'.join(where + [name])!r}; valid keys at {prefix}: {sorted(base)}")
        if isinstance(base[name], dict):
            if not isinstance(value, dict):
                raise ValueError(f"config key {'.'.join(where + [name])!r} is a section, not a value")
            _merge(base[name], value, where + [name])
        else:
            base[name] = value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for item in dataclasses.fields(cls):
        kind, value = hints[item.name], data[item.name]
        if dataclasses.is_dataclass(kind):
            kwargs[item.name] = _build(kind, value, f"{prefix}{item.name}.")
        else:
            kwargs[item.name] = _coerce(value, kind, f"{prefix}{item.name}")
    return cls(**kwargs)


def _coerce(value: Any, kind: type, name: str) -> Any:
    """Accept a value of the field's type (ints for floats too); anything else is a clear error."""
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise ValueError(f"config key {name!r} must be {kind.__name__}, got {value!r}")
