"""The decouple benchmark's report over several seeds (benchmarks/decouple.py): what RESULTS.md quotes."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decouple.py"
spec = importlib.util.spec_from_file_location("decouple_benchmark", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # its dataclasses look their module up
spec.loader.exec_module(bench)


def row(seed: int, scene: str, truth: float, measured: float, along_lines: bool = False) -> dict:
    camera = 5.0 * (1 + "abc".index(scene))  # read right
    return {
        "seed": seed,
        "condition": "parallax",
        "scene": scene,
        "clip": f"parallax--{scene}",
        "object_motion": truth,
        "camera_motion": camera,
        "camera_type": "pan_right",
        "along_lines": along_lines,
        "measured": {"object_motion": measured, "camera_motion": camera, "camera_type": "pan_right"},
    }


def test_seeds_are_one_a_range_or_a_list():
    assert bench.seed_list("3") == [3]
    assert bench.seed_list("0-2,5,1") == [0, 1, 2, 5]
    with pytest.raises(argparse.ArgumentTypeError):
        bench.seed_list("two")


def test_several_seeds_report_the_range_and_mean_and_count_clips_near():
    """Seed 0 orders its three scenes right; seed 1 reads its still scene over its slow object (pair accuracy 2/3
    there), but that object moves along the lines: ``off`` leaves it out and orders the rest right."""
    seed0 = [row(0, "a", 0.0, 0.0), row(0, "b", 5.0, 5.2), row(0, "c", 15.0, 14.0)]
    seed1 = [row(1, "a", 0.0, 3.0), row(1, "b", 5.0, 0.0, along_lines=True), row(1, "c", 15.0, 15.0)]
    rows = seed0 + seed1
    along = {bench.clip_of(r) for r in rows if r["along_lines"]}
    per_seed = [bench.condition_figures(chosen, along) for chosen in bench.by_seed(rows)]
    obj, cam, camera_type, still, near, off = bench.summary_cells(per_seed)
    assert obj == "0.67-1.00 0.833"
    assert (cam, camera_type, still) == ("1.00", "1.00", "3.00")
    assert near == "4/6"  # seed 1's still scene reads 3 and its slow object 0
    assert off == "1.00-1.00 1.000"
    assert bench.summary_cells(per_seed[:1]) == ["1.00", "1.00", "1.00", "0.00", "1.00", "1.00"]


def test_a_saved_run_is_compared_over_this_run_s_seeds(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps([row(seed, "a", 0.0, 0.0) for seed in (0, 1, 2)]))
    assert [r["seed"] for r in bench.saved_rows(saved, [1, 2])] == [1, 2]
    with pytest.raises(SystemExit):
        bench.saved_rows(saved, [2, 3])


def test_a_run_saved_without_seeds_compares_against_one_seed_only(tmp_path):
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps([{k: v for k, v in row(0, "a", 0.0, 0.0).items() if k != "seed"}]))
    assert bench.saved_rows(saved, [7])[0]["seed"] == 7
    with pytest.raises(SystemExit):
        bench.saved_rows(saved, [0, 1])
