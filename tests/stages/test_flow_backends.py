"""Flow backends: analytic known answers (DIS, Farneback), Sintel ground truth, RAFT's real code on random weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from motionpipe.pipeline.synthetic_video import noise_texture
from motionpipe.stages.flow import FlowConfig
from motionpipe.stages.flow_backends import (
    RANDOM_WEIGHTS_MARK,
    DisFlow,
    FarnebackFlow,
    MissingWeightsError,
    RaftFlow,
    pad_to_raft_size,
)
from motionpipe.stages.measuring_size import field_at_measuring_size

HEIGHT, WIDTH, BORDER = 240, 320, 24
# Sintel clean pass, frame 2 -> 3, non-occluded valid pixels: DIS end-point error bounds in px, for the
# default preset and OpenCV's medium (measured 0.28 and 0.87 with medium; 'hard' needs more than classical
# flow and has no bound).
SINTEL_DIS_BOUNDS = {"easy": 0.5, "medium": 1.5}
ACCURATE_DIS_PRESETS = ("balanced", "medium")


def affine_pair(matrix: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A texture and its image under ``matrix`` (2x3, source -> destination); analytic flow and where it holds."""
    texture = noise_texture(np.random.default_rng(seed), WIDTH, HEIGHT)
    moved = cv2.warpAffine(texture, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    target_x = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    target_y = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    flow = np.dstack([target_x - xs, target_y - ys])
    valid = np.zeros((HEIGHT, WIDTH), bool)
    valid[BORDER:-BORDER, BORDER:-BORDER] = True
    valid &= (target_x > BORDER) & (target_x < WIDTH - BORDER) & (target_y > BORDER) & (target_y < HEIGHT - BORDER)
    return texture, moved, flow, valid


MOTIONS = {
    "translation": np.float32([[1, 0, 2.6], [0, 1, -1.7]]),
    "rotation": cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 3.0, 1.0).astype(np.float32),
    "scale": cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 0.0, 1.04).astype(np.float32),
}


@pytest.mark.parametrize("preset", ACCURATE_DIS_PRESETS)
@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_dis_recovers_analytic_flow_within_half_a_pixel(motion, preset):
    first, second, truth, valid = affine_pair(MOTIONS[motion])
    flow = DisFlow(preset).flow(first[None], second[None])[0]
    error = np.linalg.norm(flow - truth, axis=-1)[valid]
    assert error.mean() < 0.5, error.mean()


def test_farneback_reads_a_translation_roughly():
    # Farneback under-reads multi-pixel shifts of fine texture (measured EPE 1.2 px on this 3.1 px shift;
    # Sintel easy 0.89 px vs DIS 0.28): it is a classical reference, not the default.
    first, second, truth, valid = affine_pair(MOTIONS["translation"])
    flow = FarnebackFlow().flow(first[None], second[None])[0]
    assert np.linalg.norm(flow - truth, axis=-1)[valid].mean() < 1.5
    direction = np.median(flow[valid], axis=0) @ truth[valid].mean(axis=0)
    assert direction > 0.5 * np.linalg.norm(truth[valid].mean(axis=0)) ** 2


def test_both_ways_gives_opposite_flows_for_a_translation():
    first, second, truth, valid = affine_pair(MOTIONS["translation"])
    forward, backward = DisFlow("fast").flow_both_ways(first[None], second[None])
    assert forward.shape == backward.shape == (1, HEIGHT, WIDTH, 2) and forward.dtype == np.float32
    np.testing.assert_allclose(np.median(backward[0][valid], axis=0), -truth[valid].mean(axis=0), atol=0.2)


@pytest.mark.parametrize("size", [(HEIGHT, WIDTH), (HEIGHT - 1, WIDTH - 3)])
def test_flow_of_halved_frames_is_half_size_flow_in_half_size_pixels(size):
    first, second, truth, valid = affine_pair(MOTIONS["translation"])
    crop = np.s_[: size[0], : size[1]]
    batch = (slice(None), *crop)
    flow = DisFlow("balanced").flow_of_halved_frames(first[None][batch], second[None][batch])
    assert flow.shape == (1, (size[0] + 1) // 2, (size[1] + 1) // 2, 2) and flow.dtype == np.float32
    # pyrDown's pixel i sits on full-size pixel 2i
    halved_truth, halved_valid = truth[crop][::2, ::2] / 2, valid[crop][::2, ::2]
    error = np.linalg.norm(flow[0] - halved_truth, axis=-1)[halved_valid]
    assert error.mean() < 0.25, error.mean()


def read_flo(path) -> np.ndarray:
    data = path.read_bytes()
    assert np.frombuffer(data[:4], np.float32)[0] == pytest.approx(202021.25)
    width, height = np.frombuffer(data[4:12], np.int32)
    return np.frombuffer(data[12:], np.float32).reshape(height, width, 2)


@pytest.mark.parametrize("preset", ACCURATE_DIS_PRESETS)
@pytest.mark.parametrize("level", sorted(SINTEL_DIS_BOUNDS))
def test_dis_on_sintel_ground_truth(shared_data, level, preset):
    root = shared_data / "flow_gt" / "sintel"
    first, second = (
        cv2.cvtColor(cv2.imread(str(root / "clean" / level / f"frame_000{i}.png")), cv2.COLOR_BGR2RGB) for i in (2, 3)
    )
    truth = read_flo(root / "gt" / level / "frame_0002.flo")
    masks = [cv2.imread(str(root / "gt" / level / f"{m}_frame_0002.png"), 0) > 0 for m in ("occlusions", "invalid")]
    valid = ~masks[0] & ~masks[1]
    flow = DisFlow(preset).flow(first[None], second[None])[0]
    assert np.linalg.norm(flow - truth, axis=-1)[valid].mean() < SINTEL_DIS_BOUNDS[level]


def test_the_default_preset_is_held_to_the_accuracy_bounds():
    assert FlowConfig().dis_preset in ACCURATE_DIS_PRESETS


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """No cached weights, whatever this machine has downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def random_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_pad_sizes_meet_raft_constraints():
    assert pad_to_raft_size(37, 45) == (128, 128)
    assert pad_to_raft_size(257, 341) == (264, 344)


def test_raft_without_weights_is_a_clear_error(empty_torch_home):
    with pytest.raises(MissingWeightsError, match="--flow-weights"):
        RaftFlow("raft_large")
    with pytest.raises(MissingWeightsError, match="does not exist"):
        RaftFlow("raft_small", weights=str(empty_torch_home / "nope.pth"))


@pytest.mark.parametrize("height, width", [(37, 45), (130, 97)])
def test_raft_random_weights_shapes_padding_and_batching(empty_torch_home, height, width):
    torch.manual_seed(0)
    raft = RaftFlow("raft_small", allow_random_weights=True, batch_size=2, iterations=2)
    assert raft.name == "raft_small" + RANDOM_WEIGHTS_MARK
    first, second = random_frames(3, height, width, 1), random_frames(3, height, width, 2)
    batched = raft.flow(first, second)
    assert batched.shape == (3, height, width, 2) and batched.dtype == np.float32
    one_by_one = np.concatenate([raft.flow(first[i : i + 1], second[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    forward, backward = raft.flow_both_ways(first[:1], second[:1])
    np.testing.assert_allclose(forward, batched[:1], atol=1e-4)
    assert backward.shape == forward.shape
    # read at the measuring pixels before the field leaves the device: the same values as reading them after
    np.testing.assert_array_equal(raft.flow_at_measuring_size(first, second), field_at_measuring_size(batched))


def test_raft_loads_a_saved_state_dict_from_a_path_or_the_hub_cache(empty_torch_home):
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    torch.manual_seed(1)
    saved = raft_small(weights=None).state_dict()
    path = empty_torch_home.parent / "raft_small.pth"
    torch.save(saved, path)
    loaded = RaftFlow("raft_small", weights=str(path), iterations=2)
    assert loaded.name == "raft_small"
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    cache = empty_torch_home / "hub" / "checkpoints" / Raft_Small_Weights.DEFAULT.url.rsplit("/", 1)[1]
    cache.parent.mkdir(parents=True)
    torch.save(saved, cache)
    from_cache = RaftFlow("raft_small", iterations=2)
    frames = random_frames(2, 64, 80)
    np.testing.assert_array_equal(from_cache.flow(frames[:1], frames[1:]), loaded.flow(frames[:1], frames[1:]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_raft_on_gpu_with_autocast_matches_shapes(empty_torch_home):
    raft = RaftFlow("raft_small", allow_random_weights=True, device="cuda", precision="bf16", iterations=2)
    first, second = random_frames(4, 130, 97), random_frames(4, 130, 97, 1)
    flow = raft.flow(first, second)
    assert flow.shape == (4, 130, 97, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    at_measuring_size = raft.flow_at_measuring_size(first, second)
    assert at_measuring_size.shape == (4, 65, 49, 2) and at_measuring_size.dtype == np.float32
    np.testing.assert_allclose(at_measuring_size, field_at_measuring_size(flow), atol=1e-3)
