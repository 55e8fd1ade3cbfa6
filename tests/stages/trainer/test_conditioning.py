"""Conditioning modules: shapes, identity at initialisation, and that they carry the condition once trained."""

from __future__ import annotations

import pytest
import torch

from motionpipe.stages.trainer.conditioning import (
    AdaptiveFeatureModulation,
    MotionEncoder,
    MotionScoreEmbedding,
    motion_focal_loss,
    sinusoidal_embedding,
)


def test_score_embedding_starts_as_identity_and_learns_to_tell_the_two_scores_apart():
    torch.manual_seed(0)
    embedding = MotionScoreEmbedding(32)
    timestep = torch.randn(4, 32)
    scores = torch.tensor([[1.0, 9.0], [5.0, 5.0], [9.0, 1.0], [3.0, 7.0]])
    torch.testing.assert_close(embedding(timestep, scores), timestep)  # zero-initialised output layers

    optimizer = torch.optim.Adam(embedding.parameters(), lr=1e-2)
    for _ in range(200):  # target: object score in the first half, camera score in the second
        out = embedding(torch.zeros(4, 32), scores)
        loss = ((out[:, :16].mean(1) - scores[:, 0]) ** 2 + (out[:, 16:].mean(1) - scores[:, 1]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    swapped = embedding(torch.zeros(1, 32), torch.tensor([[9.0, 1.0]]))
    assert swapped[0, :16].mean() > 7 and swapped[0, 16:].mean() < 3
    with pytest.raises(ValueError, match="even"):
        MotionScoreEmbedding(31)


def test_sinusoidal_embedding_shapes_and_distinct_scores():
    values = sinusoidal_embedding(torch.tensor([100.0, 200.0, 300.0]), 63)
    assert values.shape == (3, 63) and values.abs().max() <= 1
    assert torch.cdist(values, values)[0, 1] > 1


def test_feature_modulation_is_identity_at_init_and_follows_the_motion_after_training():
    torch.manual_seed(1)
    encoder, modulation = MotionEncoder(8), AdaptiveFeatureModulation(channels=16, motion_channels=8)
    features = torch.randn(2, 16, 4, 8, 8)
    trajectories, mask = torch.randn(2, 4, 2, 16, 16) * 5, torch.ones(2, 1, 16, 16)
    motion = encoder(trajectories, mask)
    assert motion.shape == (2, 8, 4, 16, 16)
    torch.testing.assert_close(modulation(features, motion), features)

    target = features + trajectories[:, :, :1].transpose(1, 2)[:, :, :, ::2, ::2].mean(1, keepdim=True) * 0.1
    parameters = [*encoder.parameters(), *modulation.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=1e-2)
    start = ((modulation(features, encoder(trajectories, mask)) - target) ** 2).mean().item()
    for _ in range(60):
        loss = ((modulation(features, encoder(trajectories, mask)) - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * start


def test_focal_loss_weights_moving_regions_more():
    target = torch.zeros(1, 4, 2, 8, 8)
    heatmap = torch.zeros(1, 2, 8, 8)
    heatmap[:, :, :, :4] = 1.0  # the left half moves
    error_left, error_right = target.clone(), target.clone()
    error_left[..., :4] = 1.0
    error_right[..., 4:] = 1.0
    assert motion_focal_loss(error_right, target, heatmap, weight=2.0).item() == pytest.approx(0.5)
    assert motion_focal_loss(error_left, target, heatmap, weight=2.0).item() == pytest.approx(0.5 + 2.0 * 0.5)
    assert motion_focal_loss(error_left, target, heatmap, weight=0.0) == motion_focal_loss(
        error_right, target, heatmap, 0.0
    )
    predicted = torch.randn(2, 4, 2, 8, 8, requires_grad=True)
    motion_focal_loss(predicted, target.expand(2, -1, -1, -1, -1), heatmap.expand(2, -1, -1, -1)).backward()
    assert predicted.grad[..., :4].abs().sum() > predicted.grad[..., 4:].abs().sum()
