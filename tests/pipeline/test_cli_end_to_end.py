"""``motionpipe`` end to end as a user runs it: console script, real shards, real Ray (2 CPUs)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import make_clip, motionpipe, rows_by_key, write_tar

from motionpipe.pipeline.inspect_run import read_metadata
from motionpipe.pipeline.synthetic_video import Scene

BAD_SHARD_REASONS = {
    "truncated": "decode:truncated",
    "zero_bytes": "decode:empty",
    "not_a_video": "decode:unreadable",
    "one_frame": "decode:too_few_frames",
    "caption_only": "input:no_video",
}


def conditions_by_key(tar_path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every npz of a conditions tar, read with tarfile and numpy alone; keys must be unique."""
    found: dict[str, dict[str, np.ndarray]] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive.getmembers():
            assert member.name.endswith(".npz")
            key = member.name[: -len(".npz")]
            assert key not in found, f"duplicate conditions for {key}"
            with np.load(io.BytesIO(archive.extractfile(member).read())) as npz:
                found[key] = dict(npz)
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two generated shards, one shard of bad clips (plus one good one), and one unreadable tar."""
    root = tmp_path_factory.mktemp("corpus")
    done = motionpipe(
        "sample-data",
        str(root),
        "--shards",
        "2",
        "--clips-per-shard",
        "3",
        "--width",
        "160",
        "--height",
        "120",
        "--seconds",
        "2",
    )
    assert done.returncode == 0, done.stderr
    good = make_clip(Scene(seed=21, pan=(6.0, 0.0)), 160, 120, seconds=2.0)
    write_tar(
        root / "shards" / "bad-000000.tar",
        [
            ("good.mp4", good),
            ("good.txt", b"a good clip among bad ones"),
            ("truncated.mp4", good[: len(good) // 2]),
            ("zero_bytes.mp4", b""),
            ("not_a_video.mp4", b"<html>404 not found</html>" * 40),
            ("one_frame.mp4", make_clip(Scene(seed=22), 160, 120, seconds=1 / 24)),
            ("caption_only.txt", b"the video went missing"),
        ],
    )
    (root / "shards" / "unreadable-000000.tar").write_bytes(b"this is no tar file" * 64)
    return root


def test_annotate_on_ray_gives_one_row_per_clip_and_resumes(corpus, tmp_path):
    out = tmp_path / "out"
    first = motionpipe("annotate", str(corpus / "shards"), str(out), "--conditions", "all")
    assert first.returncode == 1, first.stderr  # the unreadable tar fails, after the others finish
    assert "shard failed: unreadable-000000" in first.stderr
    assert "4 shard(s): 3 annotated, 1 failed, 0 already done; 12 clip(s), 5 in error" in first.stdout
    assert "shard workers: 2 ran, 1 CPU each" in first.stdout  # one a core (a third waits for room)

    rows = rows_by_key(out)
    truth = json.loads((corpus / "ground_truth.json").read_text())["clips"]
    assert set(rows) == set(truth) | {"good"} | set(BAD_SHARD_REASONS)
    for key, reason in BAD_SHARD_REASONS.items():
        assert (rows[key]["status"], rows[key]["error"]) == ("error", reason)
    for key in [*truth, "good"]:
        assert rows[key]["status"] == "ok" and rows[key]["error"] is None
        assert rows[key]["flow_mean"] >= 0 and rows[key]["decode_backend"] == "decord"
    assert rows["good"]["caption"] == "a good clip among bad ones"
    assert rows["good"]["flow_mean"] == pytest.approx(6.0, rel=0.15)

    for shard in ("sample-000000", "sample-000001", "bad-000000"):
        ok_keys = {k for k, row in rows.items() if row["status"] == "ok" and row["shard"].endswith(f"/{shard}.tar")}
        stored = conditions_by_key(out / "conditions" / f"{shard}.tar")
        assert set(stored) == ok_keys
        for key in ok_keys:
            assert rows[key]["conditions"] == [
                "motion_mask",
                "heatmap",
                "dense_tracks",
                "region_trajectories",
                "sparse_tracks",
            ]
            assert stored[key]["heatmap"].dtype == np.uint8 and stored[key]["motion_mask"].dtype == bool
    assert rows["truncated"]["conditions"] is None
    assert not (out / "conditions" / "unreadable-000000.tar").exists()

    run = json.loads((out / "run.json").read_text())
    assert run["config"]["decode"]["fps_target"] == 8.0 and run["packages"]["ray"]
    manifest = {p.stem: json.loads(p.read_text()) for p in (out / "manifest").glob("*.json")}
    assert manifest["unreadable-000000"]["status"] == "failed"
    assert manifest["bad-000000"] | {"clips": 6, "errors": 5, "status": "done"} == manifest["bad-000000"]

    again = motionpipe("annotate", str(corpus / "shards"), str(out), "--conditions", "all")
    assert again.returncode == 1
    assert "0 annotated, 1 failed, 3 already done" in again.stdout
    assert rows_by_key(out).keys() == rows.keys()

    good_shards = sorted(str(p) for p in (corpus / "shards").glob("[sb]*.tar"))
    assert motionpipe("annotate", *good_shards, str(out), "--conditions", "all").returncode == 0

    summary = motionpipe("inspect", str(out))
    assert summary.returncode == 0
    assert "3 done, 1 failed" in summary.stdout and "decode:truncated: 1" in summary.stdout
    assert "flow_mean" in summary.stdout and "%diag/s" in summary.stdout


def test_local_engine_writes_the_same_rows_as_ray(corpus, tmp_path):
    shards = sorted(str(p) for p in (corpus / "shards").glob("sample-*.tar"))
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    assert motionpipe("annotate", *shards, str(ray_out), "--workers", "1", "--conditions", "all").returncode == 0
    assert motionpipe("annotate", *shards, str(local_out), "--local", "--conditions", "all").returncode == 0
    for shard in ("sample-000000", "sample-000001"):
        ray_table = pq.read_table(ray_out / "metadata" / f"{shard}.parquet")
        local_table = pq.read_table(local_out / "metadata" / f"{shard}.parquet")
        assert ray_table.equals(local_table)
        ray_arrays = conditions_by_key(ray_out / "conditions" / f"{shard}.tar")
        local_arrays = conditions_by_key(local_out / "conditions" / f"{shard}.tar")
        assert ray_arrays.keys() == local_arrays.keys()
        for key, arrays in ray_arrays.items():
            for name, array in arrays.items():
                np.testing.assert_array_equal(array, local_arrays[key][name])


def test_another_config_into_the_same_output_needs_overwrite(corpus, tmp_path):
    shard = str(corpus / "shards" / "sample-000000.tar")
    out = tmp_path / "out"
    assert motionpipe("annotate", shard, str(out), "--local", "--conditions", "none").returncode == 0
    assert not (out / "conditions").exists()
    refused = motionpipe("annotate", shard, str(out), "--local", "--short-side", "128", "--conditions", "none")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    redone = motionpipe(
        "annotate", shard, str(out), "--local", "--short-side", "128", "--conditions", "none", "--overwrite"
    )
    assert redone.returncode == 0 and "1 annotated" in redone.stdout
    assert set(read_metadata(out).column("proc_height").to_pylist()) == {128}


def test_raft_with_random_weights_marks_every_row(corpus, tmp_path):
    shard = str(corpus / "shards" / "sample-000000.tar")
    done = motionpipe(
        "annotate",
        shard,
        str(tmp_path / "out"),
        "--local",
        "--flow-backend",
        "raft_small",
        "--allow-random-weights",
        "--short-side",
        "128",
        "--conditions",
        "motion_mask",
        "--set",
        "flow.raft_iterations=2",
        env={"TORCH_HOME": str(tmp_path / "torch")},
    )
    assert done.returncode == 0, done.stderr
    rows = read_metadata(tmp_path / "out").to_pylist()
    assert len(rows) == 3 and {row["flow_backend"] for row in rows} == {"raft_small+random-weights"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["annotate", "/nonexistent/shards", "/tmp/out"], "does not exist"),
        (["annotate", "{shard}", "{out}", "--set", "flow.dis_preset=turbo"], "dis_preset"),
        (["inspect", "/nonexistent/out"], "not a motionpipe run"),
        (["annotate", "{shard}", "{out}", "--flow-backend", "raft_large"], "--flow-weights PATH"),
        (["annotate", "{shard}", "{out}", "--conditions", "heatmaps"], "conditions.include"),
        (["sample-data", "{out}", "--width", "161"], "even"),
        (["annotate", "{shard}", "nosuchfs://bucket/out"], "nosuchfs"),
        (["annotate", "{shard}", "{file}"], "is a file, not a folder"),
    ],
)
def test_usage_errors_exit_2_with_a_message(corpus, tmp_path, args, message):
    (tmp_path / "a_file").write_text("not a folder")
    paths = {"shard": corpus / "shards" / "sample-000000.tar", "out": tmp_path / "o", "file": tmp_path / "a_file"}
    args = [a.format(**paths) for a in args]
    done = motionpipe(*args, env={"TORCH_HOME": str(tmp_path / "torch")})
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.parametrize(
    "command",
    ["annotate", "sample-data", "inspect", "train-estimator", "eval-estimator", "filter", "report", "train-diffusion"],
)
def test_help_documents_each_command(command):
    done = motionpipe(command, "--help")
    assert done.returncode == 0 and "usage: motionpipe " + command in done.stdout
    assert "%%" not in done.stdout  # argparse unescapes only help texts, not descriptions


def test_help_gives_the_unit_of_speeds_and_the_defaults():
    text = " ".join(motionpipe("--help").stdout.split())  # as wrapped to the terminal
    assert "flow statistics in %diag/s (percent of the frame diagonal per second)" in text
    text = " ".join(motionpipe("annotate", "--help").stdout.split())
    assert "sparse_tracks (default none)" in text and "optical flow (default dis)" in text  # statistics only


def test_out_as_a_filesystem_url_is_written_resumed_and_read_back(corpus, tmp_path):
    shards = sorted(str(p) for p in (corpus / "shards").glob("sample-*.tar"))
    url = (tmp_path / "out").as_uri()  # file://: the same code path as s3:// and gs:// through pyarrow
    done = motionpipe("annotate", *shards, url, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert f"Output: {url}/metadata" in done.stdout
    assert len(rows_by_key(tmp_path / "out")) == 6
    assert "0 annotated, 0 failed, 2 already done" in motionpipe("annotate", *shards, url, "--local").stdout
    assert "2 done, 0 failed" in motionpipe("inspect", url).stdout
    selected = motionpipe("filter", url, "--where", "flow_mean >= 0", "--to", str(tmp_path / "f"))
    assert selected.returncode == 0 and "selected 6 of 6 rows" in selected.stdout
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary left behind
    assert "--to" in motionpipe("report", url).stderr
    reported = motionpipe("report", url, "--to", str(tmp_path / "report"), "--gallery", "1")
    assert reported.returncode == 0 and (tmp_path / "report" / "gallery" / "000.gif").is_file()


def test_more_workers_than_the_cluster_holds_run_on_those_that_fit(corpus, tmp_path):
    shards = sorted(str(p) for p in (corpus / "shards").glob("*.tar") if not p.name.startswith("unreadable"))
    done = motionpipe("annotate", *shards, str(tmp_path / "out"), "--workers", "3", "--conditions", "none")
    assert done.returncode == 0, done.stderr  # 3 workers asked of 2 CPUs: the third waits for room, never blocks
    assert "3 shard(s): 3 annotated, 0 failed" in done.stdout
    assert len(rows_by_key(tmp_path / "out")) == 12


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_saying_what_finished_and_the_rerun_resumes(tmp_path):
    import re
    import signal
    import subprocess
    import sys
    import time

    from conftest import MOTIONPIPE

    from motionpipe.pipeline.sample_data import SampleSpec, write_sample_data

    # enough work that Ctrl-C lands mid-run: with 4 shards the whole run once finished between the first shard's
    # Parquet appearing and the test seeing it
    shards, clips_per_shard = 10, 12
    write_sample_data(
        tmp_path / "data", shards=shards, clips_per_shard=clips_per_shard, seed=11, spec=SampleSpec(160, 120, 24.0, 1.5)
    )
    command = [MOTIONPIPE, "annotate", str(tmp_path / "data" / "shards"), str(tmp_path / "out")]
    # as a terminal's foreground job: SIGINT at its default. A shell without job control starts background commands
    # (`( pytest & )`, `bash -c 'pytest &'`) with SIGINT ignored; children inherit that, and Python then rightly keeps
    # ignoring it, so without this reset the run would finish and exit 0 whatever the code does
    in_foreground = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    running = subprocess.Popen(
        [sys.executable, "-c", in_foreground, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metadata = tmp_path / "out" / "metadata"
    deadline = time.monotonic() + 240
    while not (metadata.is_dir() and any(metadata.glob("*.parquet"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    running.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    said = re.fullmatch(
        rf"motionpipe annotate: interrupted; (\d+) shard\(s\) finished in {re.escape(str(tmp_path / 'out'))}; "
        r"rerun the same command to resume \(they are skipped\)",
        last,
    )
    finished = len(list(metadata.glob("*.parquet")))
    assert said and 1 <= int(said[1]) <= finished < shards, last  # a worker may finish one more
    done = motionpipe(*command[1:])
    assert done.returncode == 0, done.stderr
    assert len(rows_by_key(tmp_path / "out")) == clips_per_shard * shards  # every clip once
