from itertools import pairwise

import pytest

from motionpipe.stages.frame_sampling import frame_step, frames_to_decode, plan_sampling


@pytest.mark.parametrize("fps, step", [(24, 1), (25, 1), (30, 1), (29.97, 1), (48, 2), (60, 2), (120, 5), (15, 1)])
def test_frame_step_is_the_widest_gap_within_one_24th_of_a_second(fps, step):
    assert frame_step(fps, 1 / 24) == step


@pytest.mark.parametrize("fps", [12, 24, 25, 29.97, 30, 50, 60])
def test_one_12th_of_a_second_pairs_measure_about_the_same_interval_at_every_rate(fps):
    interval = frame_step(fps, 1 / 12) / fps
    assert 1 / 15.1 <= interval <= 1 / 12 + 1e-9


def test_samples_at_fps_target_from_the_start():
    plan = plan_sampling(num_frames=100, fps=24, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 24)
    assert plan.sample_indices == tuple(range(0, 48, 3))


def test_pairs_span_the_gap_and_spread_over_the_window():
    plan = plan_sampling(num_frames=100, fps=30, fps_target=8, max_frames=16, num_pairs=4, pair_gap_s=1 / 12)
    firsts = [a for a, _ in plan.pair_indices]
    assert all(b - a == 2 for a, b in plan.pair_indices)
    assert firsts[0] == 0 and firsts[-1] == plan.sample_indices[-1]
    assert firsts == sorted(firsts) and len(set(firsts)) == 4
    assert plan.chain_indices == ()


def test_the_chain_keeps_its_own_gap_and_passes_through_every_sample():
    plan = plan_sampling(100, fps=24, fps_target=8, max_frames=16, num_pairs=4, pair_gap_s=1 / 12, chain_gap_s=1 / 24)
    assert plan.chain_indices == tuple(range(0, 46))
    assert all(b - a == 2 for a, b in plan.pair_indices)
    plan = plan_sampling(100, fps=60, fps_target=8, max_frames=4, num_pairs=2, pair_gap_s=1 / 12, chain_gap_s=1 / 24)
    assert set(plan.sample_indices) <= set(plan.chain_indices)
    assert max(b - a for a, b in pairwise(plan.chain_indices)) == 2


def test_short_clip_uses_what_it_has_and_pairs_backwards_at_the_end():
    plan = plan_sampling(num_frames=10, fps=30, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 24)
    assert plan.sample_indices == (0, 4, 8)
    assert plan.pair_indices[-1] == (8, 9)
    plan = plan_sampling(num_frames=9, fps=30, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 24)
    assert plan.pair_indices[-1] == (7, 8)
    plan = plan_sampling(num_frames=3, fps=60, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 12)
    assert plan.pair_indices == ((0, 2),)


def test_low_frame_rate_never_repeats_a_frame():
    plan = plan_sampling(num_frames=20, fps=5, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 12)
    assert len(set(plan.sample_indices)) == len(plan.sample_indices)


def test_two_frames_are_enough_and_one_is_not():
    plan = plan_sampling(num_frames=2, fps=60, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 12)
    assert plan.pair_indices == ((0, 1),)
    with pytest.raises(ValueError, match="at least 2 frames"):
        plan_sampling(num_frames=1, fps=30, fps_target=8, max_frames=16, num_pairs=8, pair_gap_s=1 / 12)


def test_decoded_frames_cover_every_planned_index():
    for fps in (12, 24, 29.97, 60):
        count = frames_to_decode(fps, 8, 16, 1 / 12)
        plan = plan_sampling(count, fps, 8, 16, 8, 1 / 12, chain_gap_s=1 / 24)
        assert len(plan.sample_indices) == 16
        assert max(b for _, b in plan.pair_indices) < count
        assert max(plan.chain_indices) < count
        assert all(b > a for a, b in plan.pair_indices)
