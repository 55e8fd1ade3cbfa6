"""``import motionpipe`` as a user's script uses it: the installed package, its API, and Ray Data's map_batches."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import make_clip

import motionpipe
from motionpipe.pipeline.sample_data import SampleSpec, ground_truth, write_sample_data
from motionpipe.pipeline.synthetic_video import Scene, SceneObject

REPOSITORY = Path(__file__).resolve().parents[2]
QUICK = ["conditions.include=none"]


def test_the_wheel_installs_one_package_named_motionpipe(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=REPOSITORY, check=True, capture_output=True,
    )  # fmt: skip
    with zipfile.ZipFile(next(tmp_path.glob("motionpipe-*.whl"))) as wheel:
        names = wheel.namelist()
        entry_points = next(wheel.read(name) for name in names if name.endswith("entry_points.txt")).decode()
    assert all(name.startswith(("motionpipe/", "motionpipe-")) for name in names), names
    for module in ("__init__", "pipeline/cli", "pipeline/api", "stages/decouple", "stages/trainer/conditioning"):
        assert f"motionpipe/{module}.py" in names
    assert "motionpipe/schemas/metadata.py" in names
    assert "motionpipe = motionpipe.pipeline.cli:main" in entry_points


def test_a_users_own_pipeline_folder_does_not_shadow_it(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("raise ImportError('the user s own pipeline package')")
    script = "import motionpipe.pipeline.config as config; print(config.build_config().flow.backend)"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "dis", done.stderr


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_annotate_and_read_a_run_from_python(tmp_path, ray_cluster):
    spec = SampleSpec(96, 64, 24.0, 1.0)
    truth = write_sample_data(tmp_path / "data", shards=2, clips_per_shard=2, seed=13, spec=spec)
    result = motionpipe.annotate_shards([str(tmp_path / "data" / "shards")], tmp_path / "out", QUICK, local=True)
    assert result.shards == 2 and not result.failed
    frame = motionpipe.read_run(tmp_path / "out")
    assert sorted(frame["key"]) == sorted(truth) and (frame["status"] == "ok").all()
    moving = motionpipe.select_rows(tmp_path / "out", "camera_motion > 1").column("key").to_pylist()
    assert sorted(moving) == sorted(frame.query("camera_motion > 1")["key"])
    dataset = motionpipe.read_run_ray(tmp_path / "out")
    assert sorted(row["key"] for row in dataset.take_all()) == sorted(truth)
    with pytest.raises(FileNotFoundError, match="holds no metadata"):
        motionpipe.read_run_ray(tmp_path)


def test_ray_data_map_batches_annotates_every_row_once(ray_cluster):
    import ray.data

    scene = Scene(seed=91, objects=(SceneObject((0.4, 0.5), 0.2, (12.0, 4.0)),))
    rows = [
        {"__key__": "object", "mp4": make_clip(scene, 160, 120, seconds=2.0)},
        {"__key__": "pan", "mp4": make_clip(Scene(seed=92, pan=(8.0, 0.0)), 160, 120, seconds=2.0)},
        {"__key__": "broken", "mp4": b"not a video"},
    ]
    annotated = ray.data.from_items(rows).map_batches(
        motionpipe.MotionAnnotator,
        fn_constructor_kwargs={"overrides": QUICK},
        concurrency=1,
        num_cpus=0.5,  # leaves a CPU for the read tasks (a 2-CPU node deadlocks otherwise)
        batch_size=2,
    )
    found = {row["key"]: row for row in annotated.take_all()}
    assert sorted(found) == ["broken", "object", "pan"]
    assert found["broken"]["status"] == "error" and found["broken"]["error"].startswith("decode:")
    expected = ground_truth(scene, SampleSpec())["object_motion"]
    assert found["object"]["status"] == "ok" and found["object"]["object_motion"] == pytest.approx(expected, rel=0.2)
    assert found["pan"]["camera_type"] == "pan_right" and found["pan"]["segment_backend"] == "motion_regions"
