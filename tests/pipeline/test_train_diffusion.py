"""``motionpipe train-diffusion`` as a user runs it, on a real annotated run and a local SVD folder."""

from __future__ import annotations

from conftest import motionpipe


def test_the_command_line_fine_tunes_a_local_svd_folder(annotated_run, tiny_svd, tmp_path):
    done = motionpipe(
        "train-diffusion", str(annotated_run / "out"), "--out", str(tmp_path / "ckpt"), "--model", str(tiny_svd),
        "--lora-rank", "4", "--steps", "2", "--scores", "object_motion,camera_motion", "--size", "32x32",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 steps on 11 clips" in done.stdout and (tmp_path / "ckpt" / "motion_svd.safetensors").is_file()
    assert "Loading weights" not in done.stderr  # the libraries' own progress bars stay off


def test_the_command_line_refuses_what_it_cannot_train(annotated_run, tiny_svd, tmp_path):
    no_scores = motionpipe("train-diffusion", str(annotated_run / "out"), "--out", str(tmp_path / "c"), "--model",
                           str(tiny_svd))  # fmt: skip
    assert no_scores.returncode == 2 and "object_score is null in every row" in no_scores.stderr  # no --estimator ran
    no_model = motionpipe("train-diffusion", str(annotated_run / "out"), "--out", str(tmp_path / "c"))
    assert no_model.returncode == 2 and "--model" in no_model.stderr
    not_svd = motionpipe("train-diffusion", str(annotated_run / "out"), "--out", str(tmp_path / "c"), "--model",
                         str(tmp_path), "--scores", "object_motion,camera_motion")  # fmt: skip
    assert not_svd.returncode == 2 and "not a diffusers SVD folder" in not_svd.stderr
