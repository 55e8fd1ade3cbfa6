"""Annotates whole shards with the stages, in whatever process hosts it (driver, Ray actor, test).

The shard is the unit of work and of output: its rows are collected, checked against the
clips that went in, and published atomically with its manifest entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from motionpipe.pipeline.clip_attempts import AttemptsBook, AttemptsRecords, ClipAttempts
from motionpipe.pipeline.config import RunConfig
from motionpipe.pipeline.fault_injection import inject_faults
from motionpipe.pipeline.run_outputs import SHARD_DONE, SHARD_FAILED, ConditionsTar, RunLayout
from motionpipe.pipeline.shard_reader import Sample, ShardReadError, iter_samples, shard_name
from motionpipe.pipeline.watchdog import BatchWatchdog
from motionpipe.schemas.metadata import SCHEMA_VERSION, rows_to_table
from motionpipe.stages.base import ClipRecord, Resources, Stage
from motionpipe.stages.conditions import ConditionsStage
from motionpipe.stages.decode import DecodeStage
from motionpipe.stages.decouple import DecoupleStage
from motionpipe.stages.dense_tracks import DenseTracksStage
from motionpipe.stages.flow import FlowStage
from motionpipe.stages.quality import QualityStage
from motionpipe.stages.scoring import ScoringStage
from motionpipe.stages.tracking import TrackingStage

ClipCounts = Callable[[int, int], None]
"""Called with (ok, errors) after each batch of clips, for progress display."""


@dataclass(frozen=True)
class RunIdentity:
    """What every row records about the code and config that produced it."""

    pipeline_version: str
    config_hash: str


@dataclass(frozen=True)
class ShardSummary:
    """Outcome of one shard, as the driver reports it."""

    shard: str
    name: str
    status: str
    clips: int
    errors: int
    seconds: float
    message: str | None = None


class Progress(Protocol):
    """What executors report to the driver's display."""

    def start(self) -> None: ...

    def clips(self, ok: int, errors: int) -> None: ...

    def shard_done(self, summary: ShardSummary) -> None: ...

    def note(self, line: str) -> None:
        """A line for the end of the run (how the model servers were used)."""

    def waiting(self, line: str) -> None:
        """A line to show at once: the run waits on the cluster (for a GPU node before any work starts), or lost
        part of it (a model server group)."""


def manifest_entry(summary: ShardSummary, identity: RunIdentity) -> dict[str, Any]:
    """What OUT/manifest/SHARD.json records about a shard's outcome."""
    return {
        **asdict(summary),
        "config_hash": identity.config_hash,
        "pipeline_version": identity.pipeline_version,
        "schema_version": SCHEMA_VERSION,
        "finished_at": time.time(),
    }


class SilentProgress:
    """A Progress that shows nothing: for annotate() called from Python, benchmarks and tests."""

    def start(self) -> None:
        pass

    def clips(self, ok: int, errors: int) -> None:
        pass

    def shard_done(self, summary: ShardSummary) -> None:
        pass

    def note(self, line: str) -> None:
        pass

    def waiting(self, line: str) -> None:
        pass


def build_annotation_stages(config: RunConfig) -> list[Stage]:
    """The stages of an annotate run, in order."""
    tracker = config.tracking.resolved(dense_tracks_built=config.conditions.needs_tracks)
    wants_tracks = config.conditions.needs_tracks or tracker == "flow_chain"
    stages: list[Stage] = [
        DecodeStage(config.decode, keep_chain=wants_tracks),
        FlowStage(config.flow),
        DecoupleStage(config.decouple),
        QualityStage(config.quality),
    ]
    if wants_tracks:
        stages.append(DenseTracksStage())
    if tracker != "none":
        stages.append(TrackingStage(replace(config.tracking, tracker=tracker)))
    if config.scoring.checkpoint:
        stages.append(ScoringStage(config.scoring))
    if config.conditions.names:
        stages.append(ConditionsStage(config.conditions, config.flow.mask_threshold))
    return stages


def worker_resources(stages: Iterable[Stage], served_elsewhere: frozenset[str] = frozenset()) -> Resources:
    """A worker runs its stages one after another, so it needs the largest of their demands (stages served by
    a shared model actor, named in ``served_elsewhere``, need one CPU in the worker and nothing more)."""
    stages = [stage for stage in stages if stage.name not in served_elsewhere]
    return Resources(cpus=max(s.resources.cpus for s in stages), gpus=max(s.resources.gpus for s in stages))


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def unsafe_key(key: str) -> bool:
    """A key that would escape a folder if a consumer extracted our outputs by it (absolute, or with '..')."""
    return key.startswith("/") or ".." in key.split("/")


def input_clip(sample: Sample, shard_path: str, seen: set[str]) -> ClipRecord:
    """The sample as a clip; a duplicated or unsafe key is an error row from the start."""
    clip = ClipRecord(sample.key, shard_path, sample.payloads, sample.member_names)
    if sample.key in seen:
        clip.fail("input:duplicate_key", "an earlier sample of this shard has the same key; only the first is read")
    elif unsafe_key(sample.key):
        clip.fail("input:unsafe_name", f"member names {sorted(sample.member_names.values())} leave the shard's root")
    seen.add(sample.key)
    return clip


class ShardAnnotator:
    """Holds the stages of one worker (built and set up once) and annotates shard after shard."""

    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path,
        identity: RunIdentity,
        disposable_process: bool = False,
        attempts_book: AttemptsRecords | None = None,
    ) -> None:
        """``disposable_process``: this process may be ended by the hang watchdog (a Ray worker, never a driver).
        ``attempts_book``: the run's attempt records, kept where this process's death cannot reach them (the
        driver's); none: this process's own (it is the driver)."""
        self.config = config
        self.layout = RunLayout.at(out_dir)
        self.identity = identity
        self.stages = build_annotation_stages(config)
        self.disposable_process = disposable_process
        self.attempts_book = attempts_book if attempts_book is not None else AttemptsBook()

    def setup(self, device: str = "cpu") -> None:
        for stage in self.stages:
            stage.setup(device)

    def annotate(self, shard_path: str, on_clips: ClipCounts | None = None) -> ShardSummary:
        """Annotate one shard and publish its outputs; an unreadable tar is recorded as a failed shard."""
        started = time.monotonic()
        name = shard_name(shard_path)
        rows: list[dict[str, Any]] = []
        storage = self.layout.storage
        conditions = ConditionsTar(storage, self.layout.conditions_file(name)) if self.config.conditions.names else None
        execution = self.config.execution
        attempts = ClipAttempts(self.attempts_book, name, execution.max_clip_attempts)
        watchdog = BatchWatchdog(execution.clip_timeout_s, attempts.note_hang) if self.disposable_process else None
        seen: set[str] = set()
        try:
            for samples in batched(iter_samples(shard_path), execution.batch_size):
                clips = [input_clip(sample, shard_path, seen) for sample in samples]
                self._run_guarded(clips, attempts, watchdog)
                rows.extend(self._row(clip) for clip in clips)
                if conditions is not None:
                    for clip in clips:
                        if clip.ok:
                            conditions.add(clip.key, clip.conditions)
                errors = sum(not clip.ok for clip in clips)
                if on_clips is not None:
                    on_clips(len(clips) - errors, errors)
            errors = sum(row["status"] != "ok" for row in rows)
            summary = ShardSummary(shard_path, name, SHARD_DONE, len(rows), errors, time.monotonic() - started)
            self.layout.write_shard(name, rows_to_table(rows), manifest_entry(summary, self.identity), conditions)
            attempts.remove()
        except ShardReadError as error:
            summary = ShardSummary(shard_path, name, SHARD_FAILED, 0, 0, time.monotonic() - started, str(error))
            self.layout.record_failed_shard(name, manifest_entry(summary, self.identity))
        finally:
            if conditions is not None:
                conditions.discard()  # no-op once published
        return summary

    def _run_guarded(self, clips: list[ClipRecord], attempts: ClipAttempts, watchdog: BatchWatchdog | None) -> None:
        """Run the batch with its keys recorded as in flight; clips that crashed a worker before run alone, and
        those that did so too often are error rows without running."""
        for clip in clips:
            if clip.ok and (verdict := attempts.given_up(clip.key)):
                clip.fail(*verdict)
        runnable = [clip for clip in clips if clip.ok]
        suspects = [[clip] for clip in runnable if attempts.suspected(clip.key)]
        groups = [*suspects, [clip for clip in runnable if not attempts.suspected(clip.key)]]
        for group in filter(None, groups):
            attempts.start([clip.key for clip in group])
            with watchdog.armed(len(group)) if watchdog else nullcontext():
                inject_faults([clip.key for clip in group])
                self._run_stages(group)
            attempts.finish()

    def _run_stages(self, clips: list[ClipRecord]) -> None:
        run_stages_checked(self.stages, clips)

    def _row(self, clip: ClipRecord) -> dict[str, Any]:
        return clip_row(clip, self.identity)


def run_stages_checked(stages: list[Stage], clips: list[ClipRecord]) -> None:
    """Every stage over the batch, checking that none drops or reorders a clip (a lost row)."""
    keys = [clip.key for clip in clips]
    for stage in stages:
        out = stage.process(clips)
        if [clip.key for clip in out] != keys:
            raise RuntimeError(f"stage {stage.name} changed the clips of a batch: rows would be lost")


def clip_row(clip: ClipRecord, identity: RunIdentity) -> dict[str, Any]:
    """The clip's metadata row (schemas/metadata.py): who it is, its status, what the stages measured."""
    return {
        "key": clip.key,
        "shard": clip.shard,
        "status": clip.status,
        "error": clip.error,
        "error_detail": clip.error_detail,
        "pipeline_version": identity.pipeline_version,
        "config_hash": identity.config_hash,
        **clip.fields,
    }


def annotate_in_process(
    shard_paths: list[str], config: RunConfig, out_dir: str | Path, identity: RunIdentity, progress: Progress
) -> list[ShardSummary]:
    """The ``--local`` engine: one annotator in this process, shards one after another."""
    annotator = ShardAnnotator(config, out_dir, identity)
    annotator.setup("cpu")
    progress.start()
    summaries = []
    for path in shard_paths:
        summary = annotator.annotate(path, progress.clips)
        progress.shard_done(summary)
        summaries.append(summary)
    return summaries
