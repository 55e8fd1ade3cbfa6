"""Training conditions on a real encoded clip with one moving object and a still camera."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import disc_mask, make_clip, ready_stages, run_stages

from motionpipe.pipeline.synthetic_video import Scene, SceneObject
from motionpipe.stages.conditions import CONDITIONS, ConditionsConfig, area_pool, pool_2d
from motionpipe.stages.measuring_size import mask_at_measuring_size

OBJECT = SceneObject(start=(0.3, 0.5), radius=0.2, velocity=(14.0, 0.0))
SCENE = Scene(seed=31, objects=(OBJECT,))


@pytest.fixture(scope="module")
def annotated():
    return run_stages(ready_stages("conditions.include=all"), make_clip(SCENE))


def object_mask_at(t: float, width: int, height: int) -> np.ndarray:
    return disc_mask(SCENE, OBJECT, t, width, height)


def test_every_condition_is_built_with_documented_shapes_and_dtypes(annotated):
    arrays = annotated.conditions
    assert annotated.fields["conditions"] == list(CONDITIONS)
    assert arrays["motion_mask"].shape == (256, 341) and arrays["motion_mask"].dtype == bool
    assert arrays["heatmap"].shape == (4, 32, 43) and arrays["heatmap"].dtype == np.uint8
    assert arrays["dense_flow"].shape == (16, 2, 64, 86) and arrays["dense_flow"].dtype == np.float16
    assert arrays["dense_visibility"].shape == (16, 64, 86)
    assert arrays["region_flow"].shape == (16, 2, 64, 86) and int(arrays["region_grid"]) == 8
    count = len(arrays["sparse_tracks"])
    assert 0 < count <= 64 and arrays["sparse_tracks"].shape == (count, 16, 2)
    assert arrays["sparse_visibility"].shape == (count, 16)
    np.testing.assert_array_equal(arrays["proc_size"], (341, 256))


def test_motion_mask_is_the_motion_fraction_area(annotated):
    # measured at the measuring size, written at the processing size (each measuring pixel covers its block)
    mask = annotated.conditions["motion_mask"]
    assert mask_at_measuring_size(mask).mean() == pytest.approx(annotated.fields["motion_fraction"])
    assert mask.mean() == pytest.approx(annotated.fields["motion_fraction"], abs=0.005)


def test_heatmap_is_hot_on_the_object_and_cold_on_the_still_background(annotated):
    heatmap = annotated.conditions["heatmap"]
    # the object's footprint over each latent frame's 4 samples, at the latent grid
    for latent in range(heatmap.shape[0]):
        times = [(4 * latent + i) / 8 for i in range(4)]
        covered = np.mean([object_mask_at(t, 341, 256) for t in times], axis=0)
        always = pool_2d(covered.astype(np.float32), 8) > 0.99
        never = pool_2d(covered.astype(np.float32), 8) == 0
        assert always.any() and heatmap[latent][always].min() >= 200
        assert heatmap[latent][never].mean() < 10


def test_dense_tracks_follow_the_object(annotated):
    flow = annotated.conditions["dense_flow"].astype(np.float32)  # [T, 2, h, w] px at processing size
    inside = area_pool(area_pool(object_mask_at(0.0, 341, 256).astype(np.float32), 4, 0), 4, 1) > 0.99
    inside &= annotated.conditions["dense_visibility"][-1]
    assert inside.sum() > 20
    expected_dx = OBJECT.velocity[0] / 100 * math.hypot(341, 256) * 15 / 8  # %diag/s -> px over the window
    np.testing.assert_allclose(np.median(flow[-1, 0][inside]), expected_dx, rtol=0.05)
    assert abs(np.median(flow[-1, 1][inside])) < 0.5


def test_sparse_tracks_sit_where_motion_is_and_spread_out(annotated):
    arrays = annotated.conditions
    travel = arrays["sparse_travel"].astype(np.float32)
    assert np.all(np.diff(travel) <= 1e-3)  # ordered by travel
    moving = travel > 10
    assert moving.sum() >= 8
    starts = arrays["sparse_tracks"][moving, 0].astype(np.float32)
    assert object_mask_at(0.0, 341, 256)[starts[:, 1].astype(int), starts[:, 0].astype(int)].mean() > 0.9
    distances = np.linalg.norm(starts[:, None] - starts[None], axis=-1) + np.eye(len(starts)) * 1e9
    assert distances.min() >= 8  # half a grid cell: 64 points on 341x256 give 18 px cells


def test_conditions_selection_and_pooling():
    assert ConditionsConfig(include="none").names == ()
    assert ConditionsConfig(include="heatmap, motion_mask").names == ("motion_mask", "heatmap")
    assert not ConditionsConfig(include="motion_mask").needs_tracks
    with pytest.raises(ValueError, match="unknown"):
        ConditionsConfig(include="heatmaps")
    assert area_pool(np.arange(10.0), 4, 0).tolist() == [1.5, 5.5, 8.5]
    assert pool_2d(np.ones((3, 17, 9)), 8).shape == (3, 3, 2)


def test_arrays_match_the_documented_schema(annotated):
    from motionpipe.schemas.conditions import CONDITION_ARRAYS

    assert set(annotated.conditions) == {array.name for array in CONDITION_ARRAYS}
    for array in CONDITION_ARRAYS:
        produced = annotated.conditions[array.name]
        assert produced.dtype == np.dtype(array.dtype), array.name
        assert produced.ndim == array.shape.count(",") + (array.shape != "[]"), array.name
