"""ray_cluster.yaml passes Ray's own cluster-launcher schema validation, offline."""

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_cluster_config_is_valid_and_installs_motionpipe():
    config = load()
    validate_config(prepare_config(copy.deepcopy(config)))
    assert any("pip install -e /home/ubuntu/motionpipe" in c for c in config["setup_commands"])
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["resources"]["GPU"] >= 1


def test_validation_catches_a_misspelt_key():
    config = load()
    config["available_node_types"]["gpu_worker"]["min_workrs"] = 1
    with pytest.raises(Exception, match="min_workrs"):
        validate_config(prepare_config(config))
