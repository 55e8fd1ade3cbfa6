"""Shared model servers: inputs of concurrent callers batched into shared forward passes, answers unmixed,
and through real Ray the same rows as workers that run their own models."""

from __future__ import annotations

import importlib.util
import re
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import clip_record, make_clip, motionpipe, write_tar

from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.estimator_data import load_clip_set
from motionpipe.pipeline.model_service import BatchingServer, FlowServer, ScoreServer, SegmentServer, ServedFlow
from motionpipe.pipeline.ray_executor import served_models, worker_share
from motionpipe.pipeline.shard_reader import resolve_shards
from motionpipe.pipeline.synthetic_video import Scene, SceneObject, render_scene
from motionpipe.pipeline.train_estimator import TrainConfig, train_estimator
from motionpipe.stages import flow as flow_stage
from motionpipe.stages.base import WorkerFault
from motionpipe.stages.decode import DecodeConfig, DecodeStage
from motionpipe.stages.decouple import DecoupleConfig
from motionpipe.stages.estimator_model import CPU_CONFIG
from motionpipe.stages.flow import FlowConfig, FlowStage, shared_calls
from motionpipe.stages.scoring import ScoringConfig, load_scorer

needs_sam2 = pytest.mark.skipif(
    importlib.util.find_spec("sam2") is None, reason="sam2 not installed (pip install -e '.[sam2]')"
)


def frame_pairs(seed: int, count: int, size: tuple[int, int] = (48, 64)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 255, (count, *size, 3), dtype=np.uint8)
    return first, np.roll(first, seed + 1, axis=2)  # each caller's content moves by its own amount


def test_concurrent_callers_share_forward_passes_and_get_their_own_flow():
    server = FlowServer(FlowConfig(), max_pairs=8, wait_s=0.5)
    requests = {seed: frame_pairs(seed, 3) for seed in range(4)}
    answers: dict[int, np.ndarray] = {}

    def call(seed: int) -> None:
        answers[seed] = server.flow(*requests[seed])

    threads = [threading.Thread(target=call, args=(seed,)) for seed in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    direct = FlowConfig().build_backend()
    for seed, (first, second) in requests.items():
        np.testing.assert_array_equal(answers[seed], direct.flow(first, second))
    assert server.forward_passes == 2  # 12 pairs at most 8 a pass: two passes of two callers each
    load = server.load()
    assert (load.passes, load.items) == (2, 12) and 0 < load.busy_s <= load.serving_s
    assert load.describe("pairs").startswith("2 passes, 6.0 pairs a pass, in the model ")


def test_a_flow_server_runs_its_whole_batch_in_one_forward_pass():
    # flow_server_pairs, not the per-worker flow.batch_size, sizes a server's RAFT pass (GPU busy time)
    config = FlowConfig(backend="raft_small", allow_random_weights=True, batch_size=2, raft_iterations=1)
    server = FlowServer(config, max_pairs=8, wait_s=0.0)
    passes: list[int] = []
    server.backend.model.register_forward_hook(lambda module, args, output: passes.append(len(args[0])))
    first, second = frame_pairs(0, 6, (64, 80))
    assert server.flow(first, second).shape == (6, 64, 80, 2)
    assert passes == [6]


def test_frames_of_different_sizes_never_share_a_pass():
    server = FlowServer(FlowConfig(), max_pairs=64, wait_s=0.5)
    requests = {0: frame_pairs(0, 2), 1: frame_pairs(1, 2, (64, 48)), 2: frame_pairs(2, 2)}
    answers: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda s=s: answers.__setitem__(s, server.flow(*requests[s]))) for s in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, (first, second) in requests.items():
        np.testing.assert_array_equal(answers[seed], FlowConfig().build_backend().flow(first, second))
    assert server.forward_passes == 2  # the two 48x64 callers together, the portrait one alone


def test_full_size_and_measuring_size_calls_never_share_a_pass():
    server = FlowServer(FlowConfig(), max_pairs=64, wait_s=0.5)
    first, second = frame_pairs(3, 2)
    answers: dict[str, np.ndarray] = {}
    calls = {"flow": server.flow, "flow_at_measuring_size": server.flow_at_measuring_size}
    threads = [
        threading.Thread(target=lambda name=name: answers.__setitem__(name, calls[name](first, second)))
        for name in calls
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    direct = FlowConfig().build_backend()
    np.testing.assert_array_equal(answers["flow"], direct.flow(first, second))
    np.testing.assert_array_equal(answers["flow_at_measuring_size"], direct.flow_at_measuring_size(first, second))
    assert answers["flow_at_measuring_size"].shape == (2, 24, 32, 2) and server.forward_passes == 2


def test_a_worker_without_tracks_gets_only_measuring_size_fields_from_its_server():
    """What crosses from a flow server to a worker is what the worker analyses: the default config's pairs at the
    measuring size (a quarter of the field) and their backward pairs on halved frames."""
    server = FlowServer(FlowConfig(), wait_s=0.0)
    shipped: list[tuple[int, ...]] = []

    def recorded(call):
        def ship(first: np.ndarray, second: np.ndarray) -> np.ndarray:
            answer = call(first, second)
            shipped.append(answer.shape)
            return answer

        return ship

    served = FlowStage(FlowConfig())
    served.serve_from(ServedFlow(server.backend_name(), recorded(server.flow), recorded(server.flow_at_measuring_size)))
    clips = [clip_record(make_clip(Scene(seed=seed, pan=(4.0, 2.0)), 96, 64, seconds=1.0)) for seed in range(3)]
    DecodeStage(DecodeConfig(short_side=64)).process(clips)
    served.process(clips)
    assert all(clip.ok for clip in clips) and clips[0].video.frames.shape[1:3] == (64, 96)
    assert shipped == [(12, 32, 48, 2), (12, 32, 48, 2)]  # 3 clips x 4 pairs, then their halved backward pairs


def test_a_failed_batch_reaches_its_callers_and_the_server_goes_on():
    server = FlowServer(FlowConfig(), wait_s=0.0)
    first, second = frame_pairs(1, 2)
    with pytest.raises(ValueError):
        server.flow(first, second[:1])  # mismatched batch: the backend's zip(strict=True) refuses
    np.testing.assert_array_equal(server.flow(first, second), FlowConfig().build_backend().flow(first, second))


def test_a_server_tells_how_long_its_model_pass_under_way_has_run_and_how_many_ended():
    # the driver's probes read it: a pass running for minutes is a wedged GPU although the process answers
    release, entered = threading.Event(), threading.Event()

    def slow_model(values: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait()
        return values

    server = BatchingServer({"echo": slow_model}, max_items=4, wait_s=0.0)
    assert server.probe() == (0.0, 0)
    caller = threading.Thread(target=server.call, args=("echo", np.zeros((1, 2))))
    caller.start()
    assert entered.wait(5)
    time.sleep(0.3)
    running_s, ended = server.probe()
    assert 0.3 <= running_s < 5 and ended == 0
    release.set()
    caller.join(5)
    assert server.probe() == (0.0, 1)


def test_a_batch_of_clips_shares_two_server_calls_a_frame_size_and_each_clip_gets_its_own_flow():
    # a worker waits on each call to a GPU server in turn: two calls a batch, not two a clip
    server = FlowServer(FlowConfig(), wait_s=0.0)
    served = FlowStage(FlowConfig())
    served.serve_from(ServedFlow(server.backend_name(), server.flow, server.flow_at_measuring_size))
    alone = FlowStage(FlowConfig())
    alone.setup()
    payloads = [make_clip(Scene(seed=seed), 96, 64, seconds=1.0) for seed in range(3)]
    payloads.append(make_clip(Scene(seed=9), 64, 96, seconds=1.0))  # another frame size: its own calls
    batch = [clip_record(payload, key=f"clip-{index}") for index, payload in enumerate(payloads)]
    DecodeStage(DecodeConfig(short_side=64)).process(batch)
    served.process(batch)
    assert server.forward_passes == 4  # pairs at the measuring size and halved backward pairs, each frame size
    for clip, payload in zip(batch, payloads, strict=True):
        single = clip_record(payload, key=clip.key)
        DecodeStage(DecodeConfig(short_side=64)).process([single])
        alone.process([single])
        assert clip.ok and clip.fields == single.fields
        np.testing.assert_array_equal(clip.motion.pair_consistent, single.motion.pair_consistent)


def test_shared_calls_stay_within_their_pair_budget_and_give_each_clip_its_own_flow(monkeypatch):
    # with --conditions all a clip brings ~94 pairs: a batch's in one call would hold them all at once
    monkeypatch.setattr(flow_stage, "PAIRS_PER_SHARED_CALL", 8)
    server = FlowServer(FlowConfig(), wait_s=0.0)
    served = FlowStage(FlowConfig())
    served.serve_from(ServedFlow(server.backend_name(), server.flow, server.flow_at_measuring_size))
    alone = FlowStage(FlowConfig())
    alone.setup()
    payloads = [make_clip(Scene(seed=seed, pan=(3.0, 1.0)), 96, 64, seconds=1.0) for seed in range(5)]
    batch = [clip_record(payload, key=f"clip-{index}") for index, payload in enumerate(payloads)]
    DecodeStage(DecodeConfig(short_side=64)).process(batch)
    assert [len(FlowStage._at_measuring_size(clip.video)) for clip in batch] == [4] * 5
    assert [[clip.key for clip in call] for call in shared_calls(batch, FlowStage._at_measuring_size)] == [
        ["clip-0", "clip-1"],
        ["clip-2", "clip-3"],
        ["clip-4"],
    ]
    served.process(batch)
    assert server.forward_passes == 6  # 3 calls of pairs at the measuring size, 3 of halved backward pairs
    for clip, payload in zip(batch, payloads, strict=True):
        single = clip_record(payload, key=clip.key)
        DecodeStage(DecodeConfig(short_side=64)).process([single])
        alone.process([single])
        assert clip.ok and clip.fields == single.fields


def test_a_lost_server_fails_the_worker_not_the_clip():
    stage = FlowStage(FlowConfig())

    def gone(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        raise WorkerFault("flow server unavailable")

    stage.serve_from(ServedFlow("dis:medium", gone, gone))
    stage.setup()
    clip = clip_record(make_clip(Scene(seed=2), 96, 64, seconds=1.0))
    DecodeStage(DecodeConfig(short_side=64)).process([clip])
    with pytest.raises(WorkerFault):
        stage.process([clip])
    assert stage.resources.gpus == 0


@pytest.mark.parametrize(
    ("settings", "cpus"),
    [
        ((), 0.5),  # flow on a GPU server: two workers a core
        (("execution.worker_cpus=2",), 2.0),
        (("execution.model_servers=0",), 1.0),  # each worker holds its own RAFT (and a GPU)
        (("flow.device=cpu", "execution.model_servers=1"), 1.0),  # a CPU server computes on its callers' cores
    ],
)
def test_workers_whose_flow_a_gpu_server_computes_take_half_a_cpu(settings, cpus):
    config = build_config(overrides=["flow.backend=raft_large", "flow.device=cuda", *settings])
    models, _ = served_models(config, {"CPU": 16.0, "GPU": 1.0})
    assert worker_share(config, models).cpus == cpus


def test_annotate_through_a_flow_server_writes_the_rows_workers_write_alone(annotated_run, tmp_path):
    shards = sorted(str(p) for p in (annotated_run / "shards").glob("sample-*.tar"))
    served, alone = tmp_path / "served", tmp_path / "alone"
    options = ("--short-side", "96", "--workers", "2")
    settings = ("--set", "execution.model_servers=1", "--set", "execution.worker_cpus=0.5")
    done = motionpipe("annotate", *shards, str(served), *options, *settings)
    assert done.returncode == 0, done.stderr
    assert "shard workers: 2 ran, 0.5 CPU each" in done.stdout
    assert re.search(r"^flow server 1/1: \d+ passes, [0-9.]+ pairs a pass, in the model \d+%", done.stdout, re.M)
    assert motionpipe("annotate", *shards, str(alone), *options, "--set", "execution.model_servers=0").returncode == 0
    for shard in ("sample-000000", "sample-000001"):
        left = pq.read_table(served / "metadata" / f"{shard}.parquet")
        assert left.num_rows == 5 and left.equals(pq.read_table(alone / "metadata" / f"{shard}.parquet"))


@pytest.fixture(scope="module")
def estimator(annotated_run, tmp_path_factory):
    shards = resolve_shards([str(annotated_run / "shards" / "sample-000000.tar")])
    data = load_clip_set(shards, annotated_run / "out", CPU_CONFIG)
    folder = tmp_path_factory.mktemp("estimator")
    train_estimator(data, folder, TrainConfig(steps=1, batch_pairs=2))
    return folder, data.inputs


def test_a_score_server_batches_callers_and_scores_as_the_model_does(estimator):
    folder, inputs = estimator
    config = ScoringConfig(checkpoint=str(folder), batch_size=8)
    server = ScoreServer(config, wait_s=0.5)
    answers: dict[int, np.ndarray] = {}
    parts = {0: inputs[:2], 1: inputs[2:3], 2: inputs[3:5]}
    threads = [threading.Thread(target=lambda i=i: answers.__setitem__(i, server.score(parts[i]))) for i in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    score, version = load_scorer(config)
    assert server.forward_passes == 1 and server.estimator_version() == version
    for index, part in parts.items():
        np.testing.assert_allclose(answers[index], score(part), rtol=1e-4, atol=1e-4)


def test_annotate_with_served_flow_and_estimator_writes_the_rows_of_workers_alone(annotated_run, estimator, tmp_path):
    folder, _ = estimator
    shard = str(annotated_run / "shards" / "sample-000001.tar")
    options = ("--short-side", "96", "--workers", "1", "--estimator", str(folder))
    served, alone = tmp_path / "served", tmp_path / "alone"
    done = motionpipe("annotate", shard, str(served), *options, "--set", "execution.model_servers=1")
    assert done.returncode == 0, done.stderr
    assert motionpipe("annotate", shard, str(alone), *options, "--set", "execution.model_servers=0").returncode == 0
    left = pq.read_table(served / "metadata" / "sample-000001.parquet")
    right = pq.read_table(alone / "metadata" / "sample-000001.parquet")
    assert left.num_rows == 5 and left.column("object_score").null_count == 0
    assert left.equals(right)


@needs_sam2
def test_a_segment_server_takes_clips_in_turn_and_segments_as_sam2_does():
    config = DecoupleConfig(segmenter="sam2", allow_random_weights=True, sam2_image_size=128)
    server = SegmentServer(config)
    frames = np.stack([render_scene(Scene(seed=seed, pan=(4.0, 0.0)), 96, 64, 8.0, 3) for seed in range(3)])
    points = np.float32([[30, 20], [60, 40]])
    answers: dict[int, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda i=i: answers.__setitem__(i, server.propagate(frames[i], points)))
        for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    direct = config.build_segmenter()
    direct.setup("cpu")
    assert server.forward_passes == 3
    for index in range(3):
        assert answers[index].shape == (3, 64, 96) and answers[index].dtype == bool
        np.testing.assert_array_equal(answers[index], direct.propagate(frames[index], points))


@needs_sam2
def test_annotate_with_served_sam2_writes_the_rows_of_workers_alone(tmp_path):
    mover = SceneObject(start=(0.4, 0.5), radius=0.25, velocity=(14.0, 5.0))
    clips = [make_clip(Scene(seed=seed, objects=(mover,)), 192, 128, seconds=1.0) for seed in range(3)]
    shard = str(write_tar(tmp_path / "movers-000.tar", [(f"clip-{i}.mp4", clip) for i, clip in enumerate(clips)]))
    options = (
        "--short-side", "96", "--max-frames", "4", "--workers", "2", "--segmenter", "sam2", "--allow-random-weights",
        "--set", "decouple.sam2_image_size=128",
    )  # fmt: skip
    served, alone = tmp_path / "served", tmp_path / "alone"
    done = motionpipe("annotate", shard, str(served), *options, "--set", "execution.model_servers=1")
    assert done.returncode == 0, done.stderr
    assert motionpipe("annotate", shard, str(alone), *options, "--set", "execution.model_servers=0").returncode == 0
    left = pq.read_table(served / "metadata" / "movers-000.parquet")
    assert left.num_rows == 3 and set(left.column("segment_backend").to_pylist()) == {
        "sam2:sam2.1_hiera_t+random-weights"
    }
    assert left.equals(pq.read_table(alone / "metadata" / "movers-000.parquet"))
