import numpy as np

from motionpipe.stages.object_persistence import persistent_regions

SIZE = (60, 120)  # h, w
INTERVAL_S = 0.1
TIMES_S = np.array([0.0, 0.5, 1.0])
NOTHING = np.zeros(SIZE, bool)


def disc(centre: tuple[float, float], radius: float = 5.0) -> np.ndarray:
    ys, xs = np.mgrid[: SIZE[0], : SIZE[1]]
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2


def persistent(objects: list[np.ndarray], velocity_px_s: tuple[float, float], candidates=None) -> np.ndarray:
    """Every pixel of every pair moves at ``velocity_px_s``; candidates are the objects unless given."""
    objects = np.stack(objects)
    forward = np.zeros((len(objects), *SIZE, 2), np.float32)
    forward[..., 0], forward[..., 1] = (v * INTERVAL_S for v in velocity_px_s)
    candidates = objects if candidates is None else np.stack(candidates)
    return persistent_regions(objects, candidates, forward, np.full(len(objects), INTERVAL_S), TIMES_S[: len(objects)])


def test_an_object_where_its_velocity_carries_it_is_kept():
    # 80 px/s to the right: (20, 30) at 0 s is at (60, 30) at 0.5 s and (100, 30) at 1 s
    kept = persistent([disc((20, 30)), disc((60, 30)), disc((100, 30))], (80, 0))
    assert kept[0][30, 20] and kept[1][30, 60] and kept[2][30, 100]


def test_a_blob_in_one_pair_only_is_flow_error():
    kept = persistent([disc((40, 20)), NOTHING, NOTHING], (10, 0))
    assert not kept.any()


def test_a_blob_where_the_other_pairs_move_elsewhere_is_flow_error():
    kept = persistent([disc((20, 20)), disc((90, 45)), disc((30, 50))], (0, 0))
    assert not kept.any()


def test_the_carried_object_is_found_within_a_tolerance_that_grows_with_the_distance():
    # carried 40 px in 0.5 s, found 10 px off its straight path (a turn): 0.5 x radius 5 + 0.3 x 40 = 14.5 px
    kept = persistent([disc((20, 30)), NOTHING, disc((100, 40))], (80, 0), [disc((20, 30)), NOTHING, disc((100, 40))])
    assert kept[0][30, 20] and kept[2][40, 100]


def test_an_object_seen_in_some_pairs_only_is_kept_when_another_bears_it_out():
    # parallax's evidence can hide an object in the neighbouring pair: the pair after it still bears it out
    kept = persistent([disc((20, 30)), NOTHING, disc((100, 30))], (80, 0))
    assert kept[0][30, 20] and kept[2][30, 100]


def test_an_object_leaving_the_frame_cannot_be_checked_and_is_kept():
    kept = persistent([disc((100, 30)), NOTHING, NOTHING], (80, 0))
    assert kept[0][30, 100]


def test_a_clip_of_one_pair_keeps_what_it_has():
    kept = persistent([disc((40, 20))], (0, 0))
    assert kept[0][20, 40]


def test_a_small_region_that_no_other_pair_can_check_is_flow_error():
    # 13 px (0.2% of the frame) at the edge, carried out of it: scenery entering behind a nearer layer makes such
    # flow error; an object entering or leaving is larger by the time only one pair shows it
    kept = persistent([disc((116, 30), radius=2.0), NOTHING, NOTHING], (80, 0))
    assert not kept.any()
