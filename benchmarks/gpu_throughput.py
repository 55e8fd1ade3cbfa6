"""End-to-end GPU throughput: RAFT through the shared flow servers, clips/s/GPU and GPU busy time (issue 6).

    python benchmarks/gpu_throughput.py --raft-weights raft_large_C_T_SKHT_V2-ff5fadd5.pth \
        [--clips 400] [--clips-per-shard 5] [--server-pairs 16,32,64] [--worker-cpus 1,0.5] [--precision bf16] \
        [--repeats 1] [--conditions all]

Generates clips (`sample-data`, 640x360, 24 fps, 2.5 s), then for each `execution.flow_server_pairs`
value and each `execution.worker_cpus` value (1: a worker a core; 0.5, the default with a GPU flow server: two)
runs `motionpipe annotate --flow-backend raft_large --set flow.device=cuda` through Ray: one flow
server per GPU batching the pairs of every shard worker, workers on the CPUs. While each run goes,
`nvidia-smi` reports utilisation every 250 ms; the table gives clips/s/GPU once workers are ready and the
GPUs' mean utilisation over that same stretch (the target: >= 80% with RAFT-large). Without weights,
--allow-random-weights measures speed (it does not depend on the weights). `--device cpu` runs the same
path on CPU with one server and no utilisation (a check of the harness on a machine without GPU).
`--conditions all` adds the training conditions: a clip's tracking chain both ways, ~94 pairs at 24 fps, is
then most of the flow work (each clip its own server call).

Shards are small (5 clips) so that there are many more of them than workers, as in production: work is
handed out by shard, and with 16 shards for 15 workers (the first H100 runs) the run ends with one worker on
the last shard while the GPU idles.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from throughput import MOTIONPIPE, RayRun

SAMPLE_EVERY_MS = 250


class GpuUtilisation:
    """Samples each GPU's utilisation (%) with nvidia-smi while a block runs; keeps (time, mean over GPUs)."""

    def __init__(self, gpus: int) -> None:
        self.gpus = gpus
        self.samples: list[tuple[float, float]] = []

    def __enter__(self) -> GpuUtilisation:
        self._smi = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", f"-lms={SAMPLE_EVERY_MS}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        batch: list[float] = []
        for line in self._smi.stdout:
            batch.append(float(line.strip() or 0))
            if len(batch) == self.gpus:
                self.samples.append((time.monotonic(), sum(batch) / self.gpus))
                batch = []

    def __exit__(self, *exc: object) -> None:
        self._smi.terminate()
        self._smi.wait()
        self.ended = time.monotonic()

    def mean_over_last(self, seconds: float) -> float:
        """Mean utilisation over the last ``seconds`` of the block (the annotating part of a run)."""
        recent = [busy for at, busy in self.samples if at >= self.ended - seconds]
        return sum(recent) / len(recent) if recent else float("nan")


def gpu_count() -> int:
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raft-weights", default="", help="raft_large state dict (.pth or .safetensors)")
    parser.add_argument("--allow-random-weights", action="store_true")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--clips-per-shard", type=int, default=5)
    parser.add_argument("--server-pairs", default="16,32,64", help="execution.flow_server_pairs values to sweep")
    parser.add_argument("--worker-cpus", default="1,0.5", help="execution.worker_cpus values to sweep")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting, the fastest kept")
    parser.add_argument("--conditions", default="none", help="annotate's --conditions (none, all or a list)")
    args = parser.parse_args()
    on_gpu = args.device == "cuda"
    gpus = gpu_count() if on_gpu else 1
    weights = ["--flow-weights", args.raft_weights] if args.raft_weights else []
    random_weights = ["--allow-random-weights"] if args.allow_random_weights else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per_shard = min(args.clips, args.clips_per_shard)
        shards = max(1, args.clips // per_shard)
        subprocess.run(
            [MOTIONPIPE, "sample-data", str(root), "--shards", str(shards), "--clips-per-shard", str(per_shard),
             "--width", "640", "--height", "360"],
            check=True, capture_output=True,
        )  # fmt: skip
        clips = shards * per_shard
        print(f"{clips} clips 640x360 24 fps 2.5 s in {shards} shards; raft_large on {args.device} x{gpus}, "
              f"{args.precision}, conditions {args.conditions}")  # fmt: skip
        print(f"{'server pairs':>12} {'worker CPUs':>11} {'s annotating':>13} {'clips/s/GPU':>12} {'GPU busy %':>11}")
        settings = [
            (int(pairs), float(cpus)) for pairs in args.server_pairs.split(",") for cpus in args.worker_cpus.split(",")
        ]
        for pairs, cpus in settings:
            run = RayRun(
                root / "shards", root / f"out-{pairs}-{cpus:g}", "--flow-backend", "raft_large", *weights,
                *random_weights, "--set", f"flow.device={args.device}", "--set", f"flow.precision={args.precision}",
                "--set", f"execution.flow_server_pairs={pairs}", "--set", f"execution.worker_cpus={cpus:g}",
                "--set", "execution.model_servers=" + ("-1" if on_gpu else "1"), "--conditions", args.conditions,
                repeats=args.repeats,
            )  # fmt: skip
            if on_gpu:
                with GpuUtilisation(gpus) as utilisation:
                    done, _ = run()
                busy = utilisation.mean_over_last(run.annotating_s)
            else:
                (done, _), busy = run(), float("nan")
            rate = done / run.annotating_s / gpus
            print(f"{pairs:>12} {cpus:>11g} {run.annotating_s:>13.1f} {rate:>12.2f} {busy:>11.1f}")
            for line in run.server_loads:
                print(f"{'':>12} {line}")


if __name__ == "__main__":
    main()
