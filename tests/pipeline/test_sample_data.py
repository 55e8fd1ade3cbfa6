import json
import math

import numpy as np

from pipeline.sample_data import CAMERA_MOTIONS, OBJECT_MOTIONS, SampleSpec, make_scene, write_sample_data
from pipeline.shard_reader import iter_samples


def test_shards_hold_every_clip_and_truth_stays_outside(tmp_path):
    truth = write_sample_data(tmp_path, shards=2, clips_per_shard=2, seed=3, spec=SampleSpec(160, 120, 12.0, 1.0))
    keys = [s.key for path in sorted((tmp_path / "shards").glob("*.tar")) for s in iter_samples(str(path))]
    assert keys == sorted(truth) == ["clip-000000", "clip-000001", "clip-000002", "clip-000003"]
    saved = json.loads((tmp_path / "ground_truth.json").read_text())
    assert saved["clips"] == truth
    sample = next(iter_samples(str(tmp_path / "shards" / "sample-000000.tar")))
    assert set(sample.payloads) == {"mp4", "json"}
    assert sample.payloads["mp4"][4:8] == b"ftyp"
    assert truth["clip-000001"]["camera_type"] == "pan_left"
    assert truth["clip-000001"]["camera_motion"] == math.hypot(*truth["clip-000001"]["pan"])


def test_a_seed_gives_the_same_clips_whether_shards_are_written_in_parallel_or_not(tmp_path):
    spec = SampleSpec(96, 64, 12.0, 0.5)
    serial = write_sample_data(tmp_path / "one", shards=1, clips_per_shard=2, seed=7, spec=spec)
    parallel = write_sample_data(tmp_path / "two", shards=2, clips_per_shard=1, seed=7, spec=spec)
    assert [info["pan"] for info in serial.values()] == [info["pan"] for info in parallel.values()]
    clips = {
        name: [
            s.payloads["mp4"]
            for path in sorted((tmp_path / name / "shards").glob("*.tar"))
            for s in iter_samples(str(path))
        ]
        for name in ("one", "two")
    }
    assert clips["one"] == clips["two"]


def test_scenes_cycle_through_camera_and_object_motion():
    rng = np.random.default_rng(0)
    scenes = [make_scene(i, rng, SampleSpec()) for i in range(len(CAMERA_MOTIONS) * len(OBJECT_MOTIONS))]
    assert {s.camera_type for s in scenes} == set(CAMERA_MOTIONS)
    assert {len(s.objects) for s in scenes} == {0, 1, 2}
    fast = [o.speed for s in scenes for o in s.objects if o.speed > 10]
    slow = [o.speed for s in scenes for o in s.objects if o.speed < 10]
    assert fast and slow
