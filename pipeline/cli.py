"""``motionpipe`` command line: parser, one run function per subcommand, and main."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from motionpipe.pipeline import __version__

EXIT_OK, EXIT_SHARDS_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT
LABEL_SOURCES = ("flow", "track")  # estimator_data.LABEL_COLUMNS's keys, named here so --help imports nothing heavy


class TqdmProgress:
    """Clips/s and error counts on stderr while shards run."""

    def __init__(self, total_shards: int) -> None:
        self._bar = None
        self.created_at = time.monotonic()
        self.started_at: float | None = None
        self.last_shard_at: float | None = None
        self.total_shards = total_shards
        self.shards_done = 0
        self.errors = 0
        self.failed_shards = 0
        self.notes: list[str] = []

    def clips(self, ok: int, errors: int) -> None:
        if ok or errors:
            self.errors += errors
            self._bar.update(ok + errors)
            self._postfix()

    def shard_done(self, summary) -> None:
        self.last_shard_at = time.monotonic()
        self.shards_done += 1
        self.failed_shards += summary.status != "done"
        self._postfix()

    def note(self, line: str) -> None:
        self.notes.append(line)

    def waiting(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)  # on its own line, the bar redrawn below it
        else:
            print(line, file=sys.stderr, flush=True)

    def start(self) -> None:
        """Called once the workers are set up, so engine start-up does not dilute the clips/s rate."""
        from tqdm import tqdm

        self.started_at = time.monotonic()
        self._bar = tqdm(unit="clip", desc="annotate", dynamic_ncols=True, file=sys.stderr)

    def _postfix(self) -> None:
        postfix = {"errors": self.errors, "shards": f"{self.shards_done}/{self.total_shards}"}
        if self.failed_shards:
            postfix["failed_shards"] = self.failed_shards
        self._bar.set_postfix(postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def timing(self) -> str:
        """Wall time, with the engine's start-up (Ray, workers, models) and shut-down apart from the annotation."""
        now = time.monotonic()
        ready = self.started_at or now
        finished = max(self.last_shard_at or ready, ready)
        total = now - self.created_at
        return (
            f"{total:.1f} s ({ready - self.created_at:.1f} s start-up, {finished - ready:.1f} s annotating, "
            f"{now - finished:.1f} s shut-down)"
        )


def build_parser() -> argparse.ArgumentParser:
    from motionpipe.pipeline.config import RunConfig
    from motionpipe.stages.conditions import CONDITIONS
    from motionpipe.stages.decouple import SEGMENTERS
    from motionpipe.stages.flow import FLOW_BACKENDS

    parser = argparse.ArgumentParser(
        prog="motionpipe",
        description="Annotate WebDataset video shards with motion: flow statistics in %diag/s "
        "(percent of the frame diagonal per second), one Parquet row per clip.",
    )
    parser.add_argument("--version", action="version", version=f"motionpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    annotate = commands.add_parser(
        "annotate",
        help="annotate shards into OUT/metadata/SHARD.parquet",
        description="Decode every clip of the input shards, measure its motion and write one row per clip to "
        "OUT/metadata/SHARD.parquet (atomically, with OUT/manifest/SHARD.json). Shards already done with "
        "the same config are skipped, so an interrupted run resumes. Exit status: 0 when every shard was "
        "annotated (clips in error still get rows), 1 when a shard could not be read, 2 on bad usage.",
    )
    annotate.add_argument(
        "inputs",
        nargs="+",
        metavar="IN",
        help="shard .tar files, directories of them, globs or brace ranges (shards-{000000..000009}.tar); local "
        "paths, URLs (file://, s3://, gs://, https://, hf://) or pipe:COMMAND; or a folder of video files, "
        "packed first into OUT/packed/",
    )
    annotate.add_argument("out", metavar="OUT", help="output directory")
    annotate.add_argument("--config", metavar="FILE", help="YAML or TOML config (sections: see README, Config)")
    annotate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set flow.dis_preset=fast (repeatable)",
    )
    default = RunConfig()  # the help states the defaults the config has
    annotate.add_argument(
        "--fps-target", type=float, help=f"sampling rate of processing frames (default {default.decode.fps_target:g})"
    )
    annotate.add_argument(
        "--max-frames", type=int, help=f"sampled frames per clip (default {default.decode.max_frames})"
    )
    annotate.add_argument(
        "--short-side", type=int, help=f"processing short side in px (default {default.decode.short_side})"
    )
    annotate.add_argument("--workers", type=int, help="parallel shard workers (default: one per CPU)")
    annotate.add_argument(
        "--flow-backend", choices=FLOW_BACKENDS, help=f"optical flow (default {default.flow.backend})"
    )
    annotate.add_argument("--flow-weights", metavar="PATH", help="RAFT state dict (.pth or .safetensors)")
    annotate.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="run RAFT/SAM2 without weights: for tests only, every row's backend names say '+random-weights'",
    )
    annotate.add_argument(
        "--segmenter", choices=SEGMENTERS, help=f"object masks (default {default.decouple.segmenter}, built in)"
    )
    annotate.add_argument("--sam2-checkpoint", metavar="PATH", help="SAM2 checkpoint (.pt) for --segmenter sam2")
    annotate.add_argument(
        "--estimator", metavar="DIR", help="MotionStone estimator checkpoint folder: adds object/camera scores"
    )
    annotate.add_argument(
        "--conditions",
        metavar="LIST",
        help=f"conditions to write to OUT/conditions: none, all, or a comma list of {', '.join(CONDITIONS)} "
        f"(default {default.conditions.include})",
    )
    engine = annotate.add_mutually_exclusive_group()
    engine.add_argument("--local", action="store_true", help="run in this process, without Ray")
    engine.add_argument("--address", help="address of a running Ray cluster, e.g. 'auto' (default: start a local one)")
    annotate.add_argument(
        "--overwrite", action="store_true", help="allow a config different from OUT's earlier run; redoes its shards"
    )

    pack = commands.add_parser(
        "pack",
        help="pack a folder of videos into WebDataset shards",
        description="Write the video files under VIDEOS_DIR (any depth, sorted) as WebDataset shards in SHARDS_DIR: "
        "one sample a video, keyed by its path without the extension, with the files beside it sharing its stem "
        "(captions: clip.txt, clip.json) as its other members. annotate also takes such a folder directly.",
    )
    pack.add_argument("videos", metavar="VIDEOS_DIR", help="folder of video files")
    pack.add_argument("shards", metavar="SHARDS_DIR", help="destination folder (must hold no shards yet)")
    pack.add_argument("--maxcount", type=int, default=1000, help="videos per shard (default 1000)")

    sample = commands.add_parser(
        "sample-data",
        help="write synthetic shards with known motion",
        description="Render synthetic clips with known camera and object motion, encode them as H.264 mp4, and "
        "write OUT/shards/sample-NNNNNN.tar plus OUT/ground_truth.json (speeds in %diag/s).",
    )
    sample.add_argument("out", metavar="OUT", help="output directory")
    sample.add_argument("--shards", type=int, default=2, help="number of shards (default 2)")
    sample.add_argument("--clips-per-shard", type=int, default=6, help="clips per shard (default 6)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--width", type=int, default=320, help="frame width in px, even (default 320)")
    sample.add_argument("--height", type=int, default=240, help="frame height in px, even (default 240)")
    sample.add_argument("--fps", type=float, default=24.0, help="frame rate (default 24)")
    sample.add_argument("--seconds", type=float, default=2.5, help="clip length in seconds (default 2.5)")

    train = commands.add_parser(
        "train-estimator",
        help="train the MotionStone motion estimator",
        description="Train the estimator (TAdaConv backbone, object and camera heads) on the clips of IN, with the "
        "pseudo-labels (object_motion, camera_motion) of an annotate run, and optionally human pair judgements "
        "(Parquet: key_a, key_b, object_winner, camera_winner in a|b|tie). Writes OUT/estimator.safetensors and "
        "OUT/estimator.json; --resume continues an interrupted run.",
    )
    train.add_argument("inputs", nargs="+", metavar="IN", help="shard .tar files, directories or globs")
    train.add_argument("--run", required=True, help="annotate output directory holding the pseudo-labels")
    train.add_argument("--out", required=True, help="checkpoint folder")
    train.add_argument("--pairs", help="Parquet of human pair judgements (default: pairs from pseudo-labels)")
    train.add_argument(
        "--labels",
        choices=LABEL_SOURCES,
        default="flow",
        help="pseudo-labels: flow (object_motion, camera_motion; every run) or track (object_track_motion, "
        "camera_track_motion: MotionStone's points inside / outside the object masks; runs with a tracker)",
    )
    train.add_argument(
        "--without-parallax",
        action="store_true",
        help="leave out clips whose row says camera_parallax: an object moving along a translating camera's "
        "epipolar lines looks like nearer still scenery, so their object labels are unsure",
    )
    train.add_argument("--steps", type=int, default=800, help="optimisation steps (default 800)")
    train.add_argument("--batch-pairs", type=int, default=8, help="pairs per step (default 8)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--model", choices=["cpu", "gpu"], default="cpu", help="model size (default cpu)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    train.add_argument(
        "--workers",
        type=int,
        default=0,
        help="data-parallel Ray Train workers (default 0: train in this process); --out must be seen by all",
    )
    train.add_argument("--gpu", action="store_true", help="with --workers: one GPU per worker")
    train.add_argument("--address", help="with --workers: Ray cluster to join (default: start a local one)")

    evaluate = commands.add_parser(
        "eval-estimator",
        help="pairwise accuracy of a trained estimator against baselines",
        description="Score the clips of IN with the estimator and report pairwise accuracy per head on pairs "
        "(--pairs judgements, else pseudo-label pairs of --run), beside 1 - mean SSIM and the flow_mean "
        "column, plus Spearman correlation with the pseudo-labels and score histograms.",
    )
    evaluate.add_argument("inputs", nargs="+", metavar="IN", help="held-out shard .tar files, directories or globs")
    evaluate.add_argument("--run", required=True, help="annotate output directory of those shards")
    evaluate.add_argument("--estimator", required=True, help="checkpoint folder")
    evaluate.add_argument("--pairs", help="Parquet of pair judgements (default: pairs from pseudo-labels)")
    evaluate.add_argument(
        "--labels", choices=LABEL_SOURCES, help="pseudo-labels to compare with (default: those it was trained on)"
    )
    evaluate.add_argument("--json", metavar="FILE", help="also write the report as JSON (for scripts comparing runs)")

    inspect = commands.add_parser(
        "inspect",
        help="summarise a run",
        description="Print shard and clip counts, error reasons and the distribution of each motion statistic.",
    )
    inspect.add_argument("out", metavar="OUT", help="output directory of an annotate run")

    select = commands.add_parser(
        "filter",
        help="select rows (and clips) of a run by an expression",
        description="Write TO/metadata.parquet with the rows of OUT the expression selects and, with --shards, "
        "TO/shards/SHARD.tar holding their clips (ok rows), streamed from the input shards. Expressions are "
        "Python-style: comparisons (== != < <= > >=), and/or/not, parentheses, 'in [...]', 'is None', + - * /. "
        "A comparison with null selects nothing.",
    )
    select.add_argument("out", metavar="OUT", help="output directory of an annotate run")
    select.add_argument("--where", required=True, help="e.g. \"object_score >= 6 and camera_type == 'static'\"")
    select.add_argument("--to", required=True, metavar="TO", help="destination folder or URL (as OUT)")
    select.add_argument(
        "--shards",
        nargs="?",
        const="",
        metavar="DIR",
        help="also write WebDataset shards of the selected clips (with KEY.motion.json, the clip's row); DIR: read "
        "the input shards from this folder by name, when they moved since annotation",
    )
    select.add_argument(
        "--maxcount",
        type=int,
        default=0,
        help="with --shards: reshard into shards of this many clips (default: one "
        "output shard per input shard, same names)",
    )
    select.add_argument("--overwrite", action="store_true", help="replace an earlier selection in TO")

    report = commands.add_parser(
        "report",
        help="write an HTML report of a run (histograms, counts, an animated gallery)",
        description="Write a static HTML page with PNG charts (score and flow histograms, camera types, error reasons) "
        "and a gallery of animated clips with their heatmap, motion mask and tracks overlaid. Open TO/index.html "
        "in a browser; no server needed.",
    )
    report.add_argument("out", metavar="OUT", help="output directory of an annotate run")
    report.add_argument("--to", help="report folder (default OUT/report; replaced as a whole)")
    report.add_argument("--gallery", type=int, default=8, help="clips in the gallery (default %(default)s)")
    report.add_argument("--shards", default="", help="read videos from this folder by shard name")

    diffusion = commands.add_parser(
        "train-diffusion",
        help="fine-tune Stable Video Diffusion on a run's motion conditions",
        description="Fine-tune an image-to-video diffusion model on the clips of OUT that --where selects, with every "
        "motion condition (object and camera scores, motion mask, region trajectories, MotiF's heatmap-weighted "
        "loss). --model DIR: a local diffusers Stable Video Diffusion folder (unet/, vae/, image_encoder/), LoRA "
        "(--lora-rank) or full fine-tuning of its UNet; writes CKPT/motion_svd.safetensors and .json. OUT must "
        "be annotated with --conditions all.",
    )
    diffusion.add_argument("--model", required=True, metavar="DIR", help="local diffusers SVD folder to fine-tune")
    diffusion.add_argument(
        "--lora-rank", type=int, default=0, help="with --model: LoRA rank (default 0: fine-tune the whole UNet)"
    )
    diffusion.add_argument(
        "--replicas",
        type=int,
        default=0,
        help="data-parallel Ray Train workers (default 0: train in this process); --out must be seen by all",
    )
    diffusion.add_argument("--gpu", action="store_true", help="with --replicas: one GPU per worker")
    diffusion.add_argument("--address", help="with --replicas: Ray cluster to join (default: start a local one)")
    diffusion.add_argument("run", metavar="OUT", help="annotate output directory (with conditions)")
    diffusion.add_argument("--out", required=True, metavar="CKPT", help="checkpoint folder")
    diffusion.add_argument("--where", default="status == 'ok'", help="filter expression (see `filter`)")
    diffusion.add_argument("--shards", default="", help="read videos from this folder by shard name (TO/shards)")
    diffusion.add_argument(
        "--scores", default="object_score,camera_score",
        help="two metadata columns as the (object, camera) scores; object_motion,camera_motion without an estimator",
    )  # fmt: skip
    diffusion.add_argument("--steps", type=int, default=20, help="optimisation steps (default %(default)s)")
    diffusion.add_argument("--batch-size", type=int, default=2, help="clips per step (default %(default)s)")
    diffusion.add_argument("--frames", type=int, default=8, help="frames per training clip (default %(default)s)")
    diffusion.add_argument("--size", default="64x64", help="training WIDTHxHEIGHT in px (default %(default)s)")
    diffusion.add_argument("--focal-weight", type=float, default=1.0, help="MotiF's lambda (default %(default)s)")
    diffusion.add_argument("--workers", type=int, default=0, help="dataloader worker processes")
    diffusion.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    return parser


def cli_overrides(args: argparse.Namespace) -> list[str]:
    """The dedicated flags as config overrides, before the generic --set ones (which win)."""
    flags = {
        "decode.fps_target": args.fps_target,
        "decode.max_frames": args.max_frames,
        "decode.short_side": args.short_side,
        "execution.workers": args.workers,
        "flow.backend": args.flow_backend,
        "flow.weights": args.flow_weights,
        "flow.allow_random_weights": True if args.allow_random_weights else None,
        "decouple.allow_random_weights": True if args.allow_random_weights else None,
        "decouple.segmenter": args.segmenter,
        "decouple.sam2_checkpoint": args.sam2_checkpoint,
        "scoring.checkpoint": args.estimator,
        "conditions.include": args.conditions,
    }
    return [f"{name}={value}" for name, value in flags.items() if value is not None] + args.overrides


def run_annotate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from motionpipe.pipeline.annotate import ConfigMismatchError, annotate
    from motionpipe.pipeline.config import build_config
    from motionpipe.pipeline.pack import packed_inputs
    from motionpipe.pipeline.ray_executor import InsufficientResourcesError
    from motionpipe.pipeline.run_storage import RunStorage
    from motionpipe.pipeline.shard_reader import resolve_shards
    from motionpipe.stages.flow_backends import MissingWeightsError

    try:
        config = build_config(args.config, cli_overrides(args))
        with tqdm(desc="pack", unit="video", file=sys.stderr, delay=1) as bar:  # folders of videos, not shards
            inputs = packed_inputs(args.inputs, args.out, on_video=bar.update)
        shard_paths = resolve_shards(inputs)
        RunStorage.at(args.out).require_folder()  # an unknown scheme, unreachable store or a file fails here
    except (ValueError, OSError) as error:
        print(f"motionpipe annotate: {error}", file=sys.stderr)
        return EXIT_USAGE
    progress = TqdmProgress(len(shard_paths))
    try:
        result = annotate(
            shard_paths, args.out, config, progress, local=args.local, address=args.address, overwrite=args.overwrite
        )
    except (ConfigMismatchError, MissingWeightsError, InsufficientResourcesError) as error:
        print(f"motionpipe annotate: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        progress.close()
    clips = sum(s.clips for s in result.summaries)
    errors = sum(s.errors for s in result.summaries)
    print(
        f"{result.shards} shard(s): {len(result.summaries) - len(result.failed)} annotated, "
        f"{len(result.failed)} failed, {result.skipped} already done; "
        f"{clips} clip(s), {errors} in error, {progress.timing()}. Output: {args.out.rstrip('/')}/metadata"
    )
    for line in progress.notes:
        print(line)
    for failed in result.failed:
        print(f"shard failed: {failed.name}: {failed.message}", file=sys.stderr)
    return EXIT_SHARDS_FAILED if result.failed else EXIT_OK


def run_pack(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from motionpipe.pipeline.pack import pack_videos

    try:
        with tqdm(desc="pack", unit="video", file=sys.stderr) as bar:
            shards = pack_videos(args.videos, args.shards, args.maxcount, on_video=bar.update)
    except (ValueError, OSError) as error:
        print(f"motionpipe pack: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {bar.n} videos in {len(shards)} shard(s) to {args.shards}")
    return EXIT_OK


def run_sample_data(args: argparse.Namespace) -> int:
    from motionpipe.pipeline.sample_data import SampleSpec, write_sample_data

    try:
        spec = SampleSpec(width=args.width, height=args.height, fps=args.fps, seconds=args.seconds)
        truth = write_sample_data(args.out, args.shards, args.clips_per_shard, args.seed, spec)
    except ValueError as error:
        print(f"motionpipe sample-data: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {len(truth)} clips in {args.shards} shard(s) to {Path(args.out) / 'shards'}")
    return EXIT_OK


def run_inspect(args: argparse.Namespace) -> int:
    from motionpipe.pipeline.inspect_run import summarize_run

    try:
        print(summarize_run(args.out))
    except FileNotFoundError as error:
        print(f"motionpipe inspect: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def run_train_estimator(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from motionpipe.pipeline.estimator_data import load_clip_set
    from motionpipe.pipeline.train_estimator import MODEL_SIZES, TrainConfig, train_estimator

    try:
        config = TrainConfig(steps=args.steps, batch_pairs=args.batch_pairs, seed=args.seed, model=args.model)
        with tqdm(desc="decode", unit="clip", file=sys.stderr) as bar:
            data = load_clip_set(
                args.inputs,
                args.run,
                MODEL_SIZES[config.model],
                on_clip=lambda: bar.update(),
                label_source=args.labels,
                leave_out_parallax=args.without_parallax,
            )
        if data.unlabelled:
            print(f"{data.unlabelled} ok clips have no {args.labels} pseudo-labels: left out", file=sys.stderr)
        if args.without_parallax:
            print(f"{data.parallax_left_out} ok clips show camera parallax: left out", file=sys.stderr)
        if args.workers:
            from motionpipe.pipeline.train_estimator_ray import train_estimator_on_ray

            print(f"training on {args.workers} Ray Train workers ...", file=sys.stderr)
            summary = train_estimator_on_ray(
                data, args.out, config, args.workers, args.gpu, args.pairs, args.resume, args.address
            )
        else:
            with tqdm(total=config.steps, desc="train", unit="step", file=sys.stderr) as bar:

                def on_step(step: int, loss: float) -> None:
                    bar.n = step
                    bar.set_postfix(loss=f"{loss:.3f}")
                    bar.refresh()

                summary = train_estimator(data, args.out, config, args.pairs, args.resume, on_step)
    except (ValueError, FileNotFoundError) as error:
        print(f"motionpipe train-estimator: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"trained on {summary['train']} clips ({summary['pairs']} pairs, {args.labels} labels), "
        f"{summary['validation']} held out; "
        f"checkpoint {summary['version']} in {args.out}"
    )
    return EXIT_OK


def run_eval_estimator(args: argparse.Namespace) -> int:
    import numpy as np

    from motionpipe.pipeline.estimator_data import HEADS, judged_pairs, load_clip_set, pseudo_label_pairs
    from motionpipe.pipeline.estimator_eval import evaluate
    from motionpipe.pipeline.inspect_run import read_metadata
    from motionpipe.pipeline.run_outputs import write_json_atomically
    from motionpipe.stages.estimator_io import load_checkpoint
    from motionpipe.stages.flow_backends import MissingWeightsError

    try:
        model, meta = load_checkpoint(args.estimator)
        labels = args.labels or meta.get("labels", "flow")
        data = load_clip_set(args.inputs, args.run, model.config, label_source=labels)
    except (MissingWeightsError, ValueError, FileNotFoundError) as error:
        print(f"motionpipe eval-estimator: {error}", file=sys.stderr)
        return EXIT_USAGE
    pairs = judged_pairs(args.pairs, data.keys) if args.pairs else pseudo_label_pairs(data.labels, 0.2)
    flow_mean = {row["key"]: row["flow_mean"] for row in read_metadata(args.run).to_pylist()}
    report = evaluate(model, data, pairs, np.array([flow_mean[k] for k in data.keys]))
    print(f"estimator {meta['version']} on {len(data.keys)} clips, {len(pairs)} pairs")
    print(f"{'predictor':<16}" + "".join(f"{h + ' accuracy':>18}" for h in HEADS))
    for name, values in report.items():
        print(f"{name:<16}" + "".join(f"{values[f'{h}_accuracy']:>18.1%}" for h in HEADS))
    for head in HEADS:
        histogram = report["estimator"]["score_histograms"][head]
        spearman = report["estimator"][f"{head}_spearman"]
        print(f"{head}: Spearman with pseudo-labels {spearman:.3f}; clips per score unit 1..10: {histogram}")
    if args.json:
        summary = {"version": meta["version"], "clips": len(data.keys), "pairs": len(pairs), "report": report}
        write_json_atomically(Path(args.json), summary)
    return EXIT_OK


def run_filter(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from motionpipe.pipeline.dataset_filter import FilterTargetError, filter_run
    from motionpipe.pipeline.filter_expression import ExpressionError

    write_shards = args.shards is not None
    with tqdm(unit="shard", desc="filter", disable=not write_shards, file=sys.stderr) as bar:
        try:
            result = filter_run(
                args.out, args.where, args.to, write_shards, args.overwrite, lambda _: bar.update(), args.shards or "",
                args.maxcount,
            )  # fmt: skip
        except (ExpressionError, FilterTargetError, FileNotFoundError, NotADirectoryError, ValueError) as error:
            print(f"motionpipe filter: {error}", file=sys.stderr)
            return EXIT_USAGE
    print(f"selected {result.rows_selected} of {result.rows_in} rows ({result.ok_selected} ok) -> {args.to}")
    if write_shards:
        shards = len(result.shards_written)
        print(f"wrote {result.clips_written} clips in {shards} shard(s) to {args.to.rstrip('/')}/shards")
        if result.clips_written < result.ok_selected:
            print(f"{result.ok_selected - result.clips_written} selected clips were not found in their input "
                  "shards (changed since annotation?)", file=sys.stderr)  # fmt: skip
            return EXIT_SHARDS_FAILED
    return EXIT_OK


def run_train_diffusion(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from motionpipe.pipeline.filter_expression import ExpressionError
    from motionpipe.pipeline.train_diffusion import DiffusionTrainConfig, train_diffusion, train_diffusion_on_ray
    from motionpipe.pipeline.training_dataset import TrainingDataConfig

    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
        scores = tuple(name.strip() for name in args.scores.split(","))
        if len(scores) != 2:
            raise ValueError(f"--scores needs two columns (object, camera), got {args.scores!r}")
        data = TrainingDataConfig(args.run, args.where, args.shards, args.frames, width, height, scores, seed=args.seed)
        config = DiffusionTrainConfig(
            data, steps=args.steps, batch_size=args.batch_size, focal_weight=args.focal_weight, workers=args.workers,
            seed=args.seed, model_dir=args.model, lora_rank=args.lora_rank,
        )  # fmt: skip
        if args.replicas:
            print(f"training on {args.replicas} Ray Train workers ...", file=sys.stderr)
            result = train_diffusion_on_ray(config, args.out, args.replicas, args.gpu, args.address)
        else:
            with tqdm(total=args.steps, unit="step", desc="train-diffusion", file=sys.stderr) as bar:

                def show(_: int, loss: float) -> None:
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}")

                result = train_diffusion(config, args.out, show)
    except (ValueError, ExpressionError, FileNotFoundError) as error:
        print(f"motionpipe train-diffusion: {error}", file=sys.stderr)
        return EXIT_USAGE
    probe = f"probe loss {result.probe_before:.4f} -> {result.probe_after:.4f}"
    print(f"{args.steps} steps on {result.clips} clips; {probe}; checkpoint in {args.out}")
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from motionpipe.pipeline.report import build_report

    if args.gallery < 0:
        print("motionpipe report: --gallery must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        index = build_report(args.out, args.to, args.gallery, args.shards)
    except FileNotFoundError as error:
        print(f"motionpipe report: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report: {index}")
    return EXIT_OK


COMMANDS = {
    "annotate": run_annotate,
    "report": run_report,
    "train-diffusion": run_train_diffusion,
    "filter": run_filter,
    "sample-data": run_sample_data,
    "pack": run_pack,
    "inspect": run_inspect,
    "train-estimator": run_train_estimator,
    "eval-estimator": run_eval_estimator,
}


def interrupted_note(args: argparse.Namespace) -> str:
    """What an interrupted command finished, and how to go on (one line for Ctrl-C)."""
    if args.command == "annotate":
        from motionpipe.pipeline.run_storage import RunStorage

        finished = len(RunStorage.at(args.out).list("metadata", ".parquet"))
        return f"{finished} shard(s) finished in {args.out}; rerun the same command to resume (they are skipped)"
    if args.command == "train-estimator":
        meta = Path(args.out) / "estimator.json"
        saved = f"checkpoint of step {json.loads(meta.read_text())['step']}" if meta.is_file() else "no checkpoint yet"
        return f"{saved} in {args.out}; rerun with --resume to continue"
    if args.command == "filter":
        return f"{args.to} may hold part of the selection; rerun with --overwrite"
    if args.command == "pack":
        return f"{args.shards} holds the shards finished so far: empty it and rerun"
    if args.command == "train-diffusion":
        return f"the checkpoints saved so far are in {args.out}; training does not resume: rerun to start over"
    return "nothing to resume: rerun the same command"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\nmotionpipe {args.command}: interrupted; {interrupted_note(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
