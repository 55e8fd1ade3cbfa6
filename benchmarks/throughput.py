"""Throughput of motionpipe on CPU against its decode limit and against Data-Juicer, in one run (issue 6).

    python benchmarks/throughput.py [--shards 8 --clips-per-shard 25] [--width 320 --height 240]
        [--dj-python /tmp/dj/bin/python] [--baseline /tmp/old-venv/bin/motionpipe] [--only-baseline]

Generates the clips (`sample-data`: 320x240 unless told, 24 fps, 2.5 s; 16 samples at 8 fps each), then
measures
(a) decode only with the same sampling and resize, in one process while the other cores idle (the
    fastest of 3 runs, as for (a'));
(a') the same in one process per core at once: the CPU limit per core when every core works, as in (b)
    (on this workplace's 2 vCPUs each decodes ~30% slower than one alone); the ratios b/a' use it;
(b) `motionpipe annotate` through Ray with the default config (statistics and decoupled camera/object
    motion), one worker per CPU, incl. Ray start-up and, apart, after it (workers ready); the fastest of 3
    runs, as for (a');
(b, running) the same against a Ray head started beforehand (`ray start --head`, as the cluster launcher does
    in production: `annotate --address`), so Ray's own start-up (~4 s here) and shut-down (~1.3 s) are not
    in it; connecting and starting the job's workers are, and the head's processes count in the peak RSS;
(b') the same with `--set flow.dis_preset=fast` (DIS at a quarter of the processing size, ~4x cheaper flow);
(b'') the same with `--conditions all` (the training conditions too), one run;
(c) Data-Juicer's `video_motion_score_filter` with its defaults (`sampling_fps=2`), one process per core
    at once (as (a')), in its own virtualenv (`python -m venv /tmp/dj && /tmp/dj/bin/pip install py-data-juicer
    opencv-contrib-python-headless aiohttp ray`); skipped when --dj-python is not given.
(d) with --baseline: (b) by another install's `motionpipe` (the code before a change, in its own virtualenv) and
    by this one, runs alternating, the fastest of 3 each: this machine's speed drifts by up to 2x within an hour,
    so only runs side by side compare. Old code in its own virtualenv: `git clone . /tmp/old && git -C /tmp/old
    checkout REV && python -m venv /tmp/old-venv && echo $PWD/.venv/lib/python3.11/site-packages >
    /tmp/old-venv/lib/python3.11/site-packages/main.pth && /tmp/old-venv/bin/pip install --no-deps -e /tmp/old`
    (`PYTHONPATH` to a worktree does not override the editable install). --only-baseline runs (d) alone.
Prints clips/s/core, the ratios b/a and b/c (and this code's time over the baseline's), and the peak RSS of each run
(the process tree's sum).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil

from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.shard_reader import iter_samples, resolve_shards
from motionpipe.stages.base import ClipRecord
from motionpipe.stages.decode import DecodeStage

PROCESS_START_S = 5.0  # for the decode processes to import and set up before the timed part
REPEATS = 3
MOTIONPIPE = str(Path(sys.executable).parent / "motionpipe")
RAY = str(Path(sys.executable).parent / "ray")
DATA_JUICER_SCRIPT = """
import sys, time
from data_juicer.ops.filter import VideoMotionScoreFilter
from data_juicer.utils.constant import Fields
op = VideoMotionScoreFilter(sampling_fps=2)
paths = sys.argv[1:]
started = time.perf_counter()
for path in paths:
    op.compute_stats_single({"videos": [path], "text": "", Fields.stats: {}})
print(time.perf_counter() - started)
"""


class PeakMemory:
    """Samples the resident memory of this process tree (or of a child's tree) while a block runs."""

    def __init__(self, *roots: psutil.Process) -> None:
        self.roots = roots
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                processes = [tree for root in self.roots for tree in (root, *root.children(recursive=True))]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in processes if p.is_running()))
            except psutil.Error:
                continue

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def decode_only(shards: list[str], start_at: float = 0.0) -> tuple[int, float, float]:
    """Decodes every clip of ``shards`` from wall-clock time ``start_at`` on -> (clips, start, end) in wall time."""
    stage = DecodeStage(build_config().decode)
    stage.setup()
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    count = 0
    for shard in shards:
        for sample in iter_samples(shard):
            clip = ClipRecord(sample.key, shard, sample.payloads, sample.member_names)
            stage.process([clip])
            count += clip.ok
    return count, started, time.time()


def decode_in_processes(shards: list[str], processes: int) -> tuple[int, float]:
    """Decode only, in ``processes`` processes started together -> (clips, seconds from the first start to
    the last end), the fastest of REPEATS runs: a run of a few seconds on shared vCPUs is noisy, and
    the fastest is the limit. With one process per core it is the machine's decode limit when every core is
    busy, as in (b): cores that share a physical core or memory bandwidth each decode slower than one alone."""
    spans = []
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in range(REPEATS):
            start_at = time.time() + PROCESS_START_S
            runs = list(pool.map(decode_only, [shards[i::processes] for i in range(processes)], [start_at] * processes))
            spans.append(max(end for _, _, end in runs) - min(start for _, start, _ in runs))
    return sum(clips for clips, _, _ in runs), min(spans)


def measure(
    label: str, cores: int, work: Callable[[], tuple[int, float]], elsewhere: tuple[psutil.Process, ...] = ()
) -> float:
    """Runs ``work`` (-> clips, seconds), prints clips/s/core and the peak RSS of this process tree and the
    trees of ``elsewhere`` (processes not started from here), returns clips/s/core."""
    with PeakMemory(psutil.Process(), *elsewhere) as memory:
        clips, seconds = work()
    rate = clips / seconds / cores
    peak = memory.peak / 2**30
    print(f"{label:<58} {clips:>4} clips {seconds:7.1f} s {rate:6.2f} clips/s/core  peak RSS {peak:5.2f} GiB")
    return rate


class RayRun:
    """``motionpipe annotate`` through Ray, ``repeats`` times into fresh outputs -> (clips, seconds of the fastest
    run); keeps the fastest run's seconds spent annotating, after its start-up. Runs of 10-20 s here vary by up
    to 20% from one to the next, so (b) is taken as (a') is: the fastest of a few."""

    def __init__(
        self,
        shards: Path,
        out: Path,
        *options: str,
        repeats: int = REPEATS,
        env: dict[str, str] | None = None,
        motionpipe: str = MOTIONPIPE,
    ) -> None:
        self.shards, self.out, self.options, self.repeats, self.env = shards, out, options, repeats, env
        self.motionpipe = motionpipe
        self.runs: list[tuple[int, float, float, list[str]]] = []  # every run so far, calls add theirs
        self.annotating_s = 0.0
        self.server_loads: list[str] = []  # the fastest run's worker and server lines ("flow server 1/1: ...")

    def __call__(self) -> tuple[int, float]:
        """``repeats`` more runs -> (clips, seconds) of the fastest run so far."""
        for _ in range(self.repeats):
            self.runs.append(self._run(self.out / f"run-{len(self.runs)}"))  # each into a fresh output
        clips, seconds, self.annotating_s, self.server_loads = min(self.runs, key=lambda run: run[1])
        return clips, seconds

    def _run(self, out: Path) -> tuple[int, float, float, list[str]]:
        # run from the output's folder: Ray's workers put the driver's working directory first on their path, and
        # a checkout there would shadow a baseline install's code
        started = time.perf_counter()
        done = subprocess.run(
            [self.motionpipe, "annotate", str(self.shards), str(out), *self.options],
            capture_output=True, text=True, env=self.env, cwd=self.out.parent,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        annotating_s = float(re.search(r"([0-9.]+) s annotating", done.stdout).group(1))
        server_loads = re.findall(r"^(?:shard workers|\w+ server \d+/\d+): .*$", done.stdout, re.M)
        return sum(1 for _ in iter_ok_rows(out)), seconds, annotating_s, server_loads

    def steady_rate(self, clips: int, cores: int) -> float:
        rate = clips / self.annotating_s / cores
        label = "    after start-up (workers ready)"
        print(f"{label:<58} {clips:>4} clips {self.annotating_s:7.1f} s {rate:6.2f} clips/s/core")
        return rate


@contextlib.contextmanager
def running_ray_head(cpus: int):
    """A Ray head on this machine for the block -> (its address, the environment that reaches it, its processes):
    token authentication off for head and drivers alike, and a short temp dir (Ray's socket paths must fit 107
    bytes), which also tells the head's processes (their command lines name it) from any other Ray's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_tmp = tempfile.mkdtemp(prefix="mp-ray-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp}
    options = [f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", *options], env=env, check=True, capture_output=True)
        head = tuple(p for p in psutil.process_iter(["cmdline"]) if ray_tmp in " ".join(p.info["cmdline"] or []))
        yield f"127.0.0.1:{port}", env, head
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def iter_ok_rows(out: Path):
    import pyarrow.parquet as pq

    for path in sorted((out / "metadata").glob("*.parquet")):
        yield from (row for row in pq.read_table(path, columns=["status"]).column("status").to_pylist() if row == "ok")


def extract_videos(shards: list[str], folder: Path) -> list[str]:
    """Data-Juicer reads paths: write each clip's mp4 once, outside the timed part."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in shards:
        with tarfile.open(shard) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".mp4"):
                    path = folder / member.name
                    path.write_bytes(archive.extractfile(member).read())
                    paths.append(str(path))
    return paths


def data_juicer(python: str, videos: list[str], processes: int) -> tuple[int, float]:
    """Data-Juicer's filter over ``videos`` in ``processes`` processes at once -> (clips, seconds of the
    slowest process's timed loop, after its imports)."""
    runs = [
        subprocess.Popen([python, "-c", DATA_JUICER_SCRIPT, *videos[i::processes]], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(processes)
    ]  # fmt: skip
    seconds = []
    try:
        for run in runs:
            stdout, stderr = run.communicate()
            if run.returncode != 0:
                raise RuntimeError(stderr[-2000:])
            seconds.append(float(stdout.strip().splitlines()[-1]))
    finally:
        for run in runs:
            run.kill()  # the others, when one failed
    return len(videos), max(seconds)


def against_baseline(shards: Path, root: Path, baseline: str, clips: int, cores: int) -> None:
    """(d): (b) by ``baseline`` (another install's ``motionpipe``) and by this code, alternating run by run."""
    runs = {
        f"(d) baseline {baseline}": RayRun(shards, root / "baseline", repeats=1, motionpipe=baseline),
        "(d) this code, the same runs alternating": RayRun(shards, root / "ours", repeats=1),
    }
    for _ in range(REPEATS - 1):
        for run in runs.values():
            run()
    # the last round under measure(), which runs each once more (its peak RSS is that run's)
    (theirs, theirs_steady), (ours, ours_steady) = (
        (measure(label, cores, run), run.steady_rate(clips, cores)) for label, run in runs.items()
    )
    print(f"this code's time / the baseline's = {theirs / ours:.2f} ({theirs_steady / ours_steady:.2f} after start-up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--clips-per-shard", type=int, default=25)
    parser.add_argument("--dj-python", help="python of a virtualenv with py-data-juicer installed")
    parser.add_argument("--width", type=int, default=320, help="clip width in px (default 320)")
    parser.add_argument("--height", type=int, default=240, help="clip height in px (default 240)")
    parser.add_argument("--baseline", help="another install's motionpipe console script to compare (b) with: (d)")
    parser.add_argument("--only-baseline", action="store_true", help="run (d) alone (needs --baseline)")
    args = parser.parse_args()
    if args.only_baseline and not args.baseline:
        parser.error("--only-baseline needs --baseline")
    if args.baseline and not os.access(args.baseline, os.X_OK):
        parser.error(f"--baseline {args.baseline} is not an executable (a motionpipe console script)")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [MOTIONPIPE, "sample-data", str(root), "--shards", str(args.shards),
             "--clips-per-shard", str(args.clips_per_shard), "--width", str(args.width), "--height", str(args.height)],
            check=True, capture_output=True,
        )  # fmt: skip
        shards = resolve_shards([str(root / "shards")])
        clips = args.shards * args.clips_per_shard
        print(f"{clips} clips {args.width}x{args.height} 24 fps 2.5 s in {args.shards} shards; {cores} CPUs")
        if args.baseline:
            against_baseline(root / "shards", root, args.baseline, clips, cores)
            if args.only_baseline:
                return
        alone = measure("(a) decode only, 1 process, other cores idle", 1, lambda: decode_in_processes(shards, 1))
        decode = measure(
            f"(a') decode only, {cores} processes at once", cores, lambda: decode_in_processes(shards, cores)
        )
        default_run = RayRun(root / "shards", root / "default")
        default = measure("(b) annotate on Ray, default config", cores, default_run)
        default_steady = default_run.steady_rate(clips, cores)
        with running_ray_head(cores) as (address, env, head):
            running_run = RayRun(root / "shards", root / "running", "--address", address, env=env)
            running = measure("(b, running) annotate --address of a running Ray head", cores, running_run, head)
        fast_run = RayRun(root / "shards", root / "fast", "--set", "flow.dis_preset=fast")
        fast = measure("(b') annotate on Ray, --set flow.dis_preset=fast", cores, fast_run)
        fast_steady = fast_run.steady_rate(clips, cores)
        conditions_run = RayRun(root / "shards", root / "conditions", "--conditions", "all", repeats=1)
        conditions = measure("(b'') annotate on Ray, --conditions all, 1 run", cores, conditions_run)
        conditions_run.steady_rate(clips, cores)
        print(
            f"b/a' = {default / decode:.2f} ({default_steady / decode:.2f} after start-up; "
            f"{running / decode:.2f} on a running head)   "
            f"b'/a' = {fast / decode:.2f} ({fast_steady / decode:.2f})   b''/a' = {conditions / decode:.2f}   "
            f"against (a): b/a = {default / alone:.2f} ({default_steady / alone:.2f})"
        )
        if args.dj_python:
            videos = extract_videos(shards, root / "videos")
            juicer = measure(
                f"(c) Data-Juicer video_motion_score_filter, {cores} processes at once",
                cores,
                lambda: data_juicer(args.dj_python, videos, cores),
            )
            print(
                f"b/c = {default / juicer:.2f} ({default_steady / juicer:.2f} after start-up; "
                f"{running / juicer:.2f} on a running head)   "
                f"b'/c = {fast / juicer:.2f} ({fast_steady / juicer:.2f})   b''/c = {conditions / juicer:.2f}"
            )
        else:
            print("(c) skipped: pass --dj-python (see the docstring for the virtualenv)")


if __name__ == "__main__":
    main()
