import dataclasses
import json
from pathlib import Path

import pytest

from motionpipe.pipeline.config import RunConfig, build_config


def test_defaults_follow_the_design():
    config = build_config()
    assert (config.decode.fps_target, config.decode.max_frames, config.decode.short_side) == (8.0, 16, 256)
    assert config.flow.backend == "dis"
    assert config.flow.mask_threshold == pytest.approx(1.33, abs=0.01)


def test_yaml_then_toml_files_then_overrides(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("decode:\n  short_side: 384\n  fps_target: 4\nflow:\n  dis_preset: fast\n")
    config = build_config(yaml_file, ["decode.short_side=512", "execution.workers=3"])
    assert config.decode.short_side == 512
    assert config.decode.fps_target == 4.0 and isinstance(config.decode.fps_target, float)
    assert config.flow.dis_preset == "fast"
    assert config.execution.workers == 3
    toml_file = tmp_path / "run.toml"
    toml_file.write_text("[decode]\nmax_frames = 8\n")
    assert build_config(toml_file).decode.max_frames == 8


@pytest.mark.parametrize(
    "override, message",
    [
        ("decode.short_sid=300", "unknown config key 'decode.short_sid'"),
        ("decoder.short_side=300", "unknown config key 'decoder'"),
        ("decode.short_side=big", "must be int"),
        ("decode.max_frames=2.5", "must be int"),
        ("decode=3", "is a section"),
        ("decode.short_side", "section.key=value"),
        ("decode.max_frames=1", "max_frames must be >= 2"),
        ("execution.gpu_wait_s=-1", "gpu_wait_s must be >= 0"),
    ],
)
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        build_config(overrides=[override])


def test_unknown_file_type_is_refused(tmp_path):
    path = tmp_path / "run.ini"
    path.write_text("[decode]\n")
    with pytest.raises(ValueError, match=".yaml, .yml or .toml"):
        build_config(path)


def test_hash_covers_annotation_settings_only():
    base = build_config()
    assert build_config(overrides=["execution.workers=7", "execution.batch_size=1"]).config_hash() == base.config_hash()
    assert build_config(overrides=["decode.short_side=320"]).config_hash() != base.config_hash()
    json.dumps(RunConfig().annotation_dict())  # serialisable as saved in run.json


def test_readme_config_example_loads_and_shows_the_defaults(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.yaml").write_text(example)
    loaded, defaults = dataclasses.asdict(build_config(tmp_path / "example.yaml")), dataclasses.asdict(RunConfig())
    for section, values in defaults.items():
        for name, value in values.items():
            assert loaded[section][name] == (pytest.approx(value, rel=1e-4) if isinstance(value, float) else value)
