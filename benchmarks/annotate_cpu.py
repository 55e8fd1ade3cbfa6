"""CPU throughput of annotate on generated clips, with decode-only as the baseline of the same run.

    python benchmarks/annotate_cpu.py --shards 4 --clips-per-shard 12

Prints clips/s for (a) decode only (same sampling and resize), (b) decode + DIS flow statistics
in this process, (c) the same through Ray with one worker per CPU; and the ratios b/a and c/a.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pipeline.annotate import annotate
from pipeline.config import build_config
from pipeline.sample_data import SampleSpec, write_sample_data
from pipeline.shard_reader import iter_samples, resolve_shards
from pipeline.shard_runner import SilentProgress
from stages.base import ClipRecord
from stages.decode import DecodeStage


def decode_only(shards: list[str]) -> int:
    stage = DecodeStage(build_config().decode)
    stage.setup()
    count = 0
    for shard in shards:
        for sample in iter_samples(shard):
            clip = ClipRecord(sample.key, shard, sample.payloads, sample.member_names)
            stage.process([clip])
            count += clip.ok
    return count


def timed(label: str, work) -> float:
    started = time.perf_counter()
    clips = work()
    seconds = time.perf_counter() - started
    print(f"{label:<40} {clips:>5} clips  {seconds:7.2f} s  {clips / seconds:7.2f} clips/s")
    return clips / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--clips-per-shard", type=int, default=12)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_sample_data(root, args.shards, args.clips_per_shard, seed=0, spec=SampleSpec(args.width, args.height))
        shards = resolve_shards([str(root / "shards")])
        total = args.shards * args.clips_per_shard
        print(f"{total} clips {args.width}x{args.height} 24 fps 2.5 s, {os.cpu_count()} CPUs")
        config = build_config()
        decode = timed("(a) decode only, 1 process", lambda: decode_only(shards))
        local = timed(
            "(b) annotate --local, 1 process",
            lambda: sum(
                s.clips for s in annotate(shards, root / "local", config, SilentProgress(), local=True).summaries
            ),
        )
        ray_rate = timed(
            "(c) annotate on Ray (incl. start-up)",
            lambda: sum(s.clips for s in annotate(shards, root / "ray", config, SilentProgress()).summaries),
        )
        print(f"b/a = {local / decode:.2f}   c/a = {ray_rate / decode:.2f}")


if __name__ == "__main__":
    main()
