"""Which model server group a new shard worker calls (the faults that make a group lost run for real in
test_faults.py)."""

from __future__ import annotations

from motionpipe.pipeline.config import build_config
from motionpipe.pipeline.server_groups import FAILED_RETURNS_TO_RETIRE, ServerGroup, ServerGroups, ServerHealth


def groups_of(count: int, models: tuple[str, ...]) -> ServerGroups:
    """Groups whose probe answers the test writes into their ServerHealth (no Ray: only the choice is tested)."""
    groups = ServerGroups(build_config(), list(models), [])
    groups.groups = [ServerGroup({model: ServerHealth(actor=None) for model in models}) for _ in range(count)]
    return groups


def test_a_new_worker_calls_the_answering_group_with_the_fewest_workers():
    groups = groups_of(3, ("flow",))
    for worker, group in (("a", 0), ("b", 0), ("c", 1)):
        groups.attach(worker, group)
    assert groups.pick() == 2
    groups.groups[2].lost_at = 10.0
    assert groups.pick() == 1
    groups.detach("a")
    groups.detach("b")
    assert groups.pick() == 0
    groups.groups[0].lost_at = groups.groups[1].lost_at = 10.0
    assert groups.pick() is None and groups.all_lost()


def test_a_group_back_from_a_loss_takes_one_worker_until_one_of_its_servers_ends_a_pass():
    # a GPU that wedges again at its first pass then holds one shard each time it comes back, not many
    groups = groups_of(2, ("flow", "scoring"))
    steady, back = groups.groups
    groups.attach("a", 0)
    groups.attach("b", 0)
    back.lost_at = 10.0
    assert groups.pick() == 0
    back.came_back()
    assert groups.pick() == 1  # no worker yet: it takes one
    groups.attach("c", 1)
    assert groups.pick() == 0  # although it has fewer workers
    back.end_probation_if_passed()
    assert groups.pick() == 0  # no pass ended yet
    back.servers["scoring"].forward_passes = 1  # its GPU computes (its flow server may be called later)
    back.end_probation_if_passed()
    assert groups.pick() == 1
    assert steady.probation is None


def test_a_group_that_keeps_coming_back_and_wedging_before_a_pass_is_retired():
    """A faulty GPU answers after each restart and wedges at its first pass: each cycle would cost a shard attempt
    and a worker's clip_timeout_s for good. A group whose GPU computed between its losses (a node lost, the servers
    restarted on another) is never retired."""
    groups = groups_of(2, ("flow",))
    faulty, healthy = groups.groups
    faulty.lose(10.0)  # the first loss: it has not come back yet
    for cycle in range(FAILED_RETURNS_TO_RETIRE):
        assert not faulty.retired
        faulty.came_back()
        assert groups.pick() == 0  # back on probation: it takes a worker (neither group has one)
        faulty.lose(20.0 + cycle)  # lost again on probation: no pass ended
    assert faulty.retired and groups.pick() == 1 and faulty.lost_at is not None  # check() probes it no more
    healthy.lose(10.0)
    for cycle in range(2 * FAILED_RETURNS_TO_RETIRE):
        healthy.came_back()
        healthy.servers["flow"].forward_passes += 1
        healthy.end_probation_if_passed()
        healthy.lose(20.0 + cycle)
    assert not healthy.retired and healthy.failed_returns == 0
