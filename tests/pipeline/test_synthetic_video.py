import math

import numpy as np
import pytest

from motionpipe.pipeline.sample_data import SampleSpec, ground_truth
from motionpipe.pipeline.synthetic_video import DepthLayer, Scene, SceneObject, SceneRenderer


def renderer_of(scene: Scene) -> SceneRenderer:
    return SceneRenderer(scene, 4 / 3, 2.0)


def test_an_object_in_full_view_shows_its_whole_disc():
    scene = Scene(seed=1, objects=(SceneObject((0.5, 0.5), 0.2, (0.0, 0.0)),))
    (area,) = renderer_of(scene).visible_object_areas(0.0, 160, 120)
    assert area == pytest.approx(math.pi * (0.2 * 120) ** 2, rel=0.1)


def test_the_frame_edge_and_an_object_drawn_over_it_hide_parts():
    half_out = Scene(seed=1, objects=(SceneObject((0.0, 0.5), 0.2, (0.0, 0.0)),))
    (area,) = renderer_of(half_out).visible_object_areas(0.0, 160, 120)
    assert area == pytest.approx(math.pi * (0.2 * 120) ** 2 / 2, rel=0.15)
    under, over = SceneObject((0.5, 0.5), 0.2, (0.0, 0.0)), SceneObject((0.5, 0.5), 0.25, (0.0, 0.0))
    hidden, shown = renderer_of(Scene(seed=1, objects=(under, over))).visible_object_areas(0.0, 160, 120)
    assert hidden < 0.02 * shown


def test_an_objects_coverage_lies_where_it_is_drawn():
    (coverage,) = renderer_of(
        Scene(seed=1, objects=(SceneObject((0.25, 0.5), 0.1, (0.0, 0.0)),))
    ).visible_object_coverage(0.0, 160, 120)
    assert coverage.shape == (120, 160)
    assert coverage[60, 40] > 0.99 and coverage[60, 120] == 0  # the disc's centre; the frame's other half


def test_nearer_layers_hide_objects():
    objects = (SceneObject((0.3, 0.5), 0.15, (4.0, 0.0)), SceneObject((0.7, 0.5), 0.17, (15.0, 0.0)))
    scene = Scene(seed=7, objects=objects, layers=(DepthLayer(0.5, 0.6),))
    seen = renderer_of(scene).visible_object_areas(0.0, 160, 120)
    assert all(0 < area < 0.9 * math.pi * (obj.radius * 120) ** 2 for area, obj in zip(seen, objects, strict=True))


def test_the_truth_weights_the_objects_by_the_pixels_seen():
    objects = (SceneObject((0.3, 0.5), 0.15, (4.0, 0.0)), SceneObject((0.7, 0.5), 0.17, (15.0, 0.0)))
    scene = Scene(seed=7, objects=objects)
    by_size = (4.0 * 0.15**2 + 15.0 * 0.17**2) / (0.15**2 + 0.17**2)
    assert ground_truth(scene, SampleSpec())["object_motion"] == pytest.approx(by_size)
    seen = ground_truth(scene, SampleSpec(), seen_areas=[[300.0, 100.0], [300.0, 100.0]])["object_motion"]
    assert seen == pytest.approx((4.0 * 300 + 15.0 * 100) / 400)
    with pytest.raises(ValueError, match=r"\[times, objects\] with 2 objects"):
        ground_truth(scene, SampleSpec(), seen_areas=[[1.0]])


def test_the_truth_zooms_as_much_as_the_camera_had_when_the_object_was_seen():
    """An object entering at the end of a zoom in moves on screen at its speed times the zoom then, not the
    window's mean zoom (benchmarks/decouple.py, zoom_in-crossing: the truth was 27% under the true masks' reading)."""
    scene = Scene(seed=7, zoom_rate=0.4, objects=(SceneObject((0.5, 0.5), 0.15, (10.0, 0.0)),))
    window_s = 2.0
    everywhere = ground_truth(scene, SampleSpec(), window_s, seen_areas=[[100.0]] * 5)["object_motion"]
    late = ground_truth(scene, SampleSpec(), window_s, seen_areas=[[0.0]] * 4 + [[100.0]])["object_motion"]
    assert everywhere == pytest.approx(10.0 * np.mean(np.exp(0.4 * np.linspace(0, window_s, 5))))
    assert late == pytest.approx(10.0 * math.exp(0.4 * window_s))


@pytest.mark.parametrize(
    "pan, label",
    [((10.0, 1.7), "pan_right"), ((-1.0, -9.0), "tilt_up"), ((7.0, 7.0), "complex"), ((6.0, 8.0), "complex")],
)
def test_a_pan_a_little_off_the_horizontal_is_still_a_pan(pan, label):
    assert Scene(seed=1, pan=pan).camera_type == label
