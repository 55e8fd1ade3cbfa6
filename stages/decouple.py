"""Decouple stage: camera motion vs object motion per clip (DESIGN.md §4, MotionStone pseudo-labels).

Per measuring pair: a homography for the camera (stages/camera_model.py); the residual flow,
flow minus what the camera explains, is object motion once what real video fakes is taken out
(stages/residual_motion.py: flow leaving the frame, noise, parallax; regions the pixels do not confirm;
stages/farthest_surface.py: under parallax, a homography that took a nearer layer refitted to the farthest scenery;
stages/velocity_split.py: a region's parts that move unlike it, cut off first;
stages/temporal_support.py: regions a frame a quarter second on does not show still moving;
stages/object_persistence.py: regions that no other pair bears out).
Object masks are connected regions of large residual speed (without parallax, averaged over a small window:
residual_motion.coherent_lengths), cleaned morphologically (the built-in
segmenter), or SAM2 masks prompted where that motion is (stages/segmenters.py); object_motion is the mean residual
speed of object points (DESIGN.md §4) read over their forward-backward-consistent pixels whose motion the frames bear
out (flow smoothed past an object's edges moves a halo of still background with it): each region's median, weighted
by its pixels. Within a region the median, as a few pixels of wrong flow would drag a mean; across regions the mean,
as a median over all pixels jumps from one object's speed to the other's when their areas come near (benchmark
seed 1's static-two, objects of 6.8 and 18.3 %diag/s whose areas differ by 13%, read 6.9). A pan over a still scene
reads zero object motion; an object the camera follows reads its speed relative to the scene. camera_motion is the
still scene's mean image speed: the homography's over the frame, plus, when the camera moves, the mean excess of the
still pixels' own flow speed over it (nearer scenery's parallax; ``still_scene_excess``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from motionpipe.stages.base import ClipRecord, DecodedVideo, Resources, Stage
from motionpipe.stages.camera_model import CameraRates, camera_flow, camera_rates, fit_camera
from motionpipe.stages.farthest_surface import against_farthest_surface
from motionpipe.stages.flow_checks import squared_length
from motionpipe.stages.motion_units import mean_of_medians, pct_diag_per_s
from motionpipe.stages.object_persistence import persistent_regions
from motionpipe.stages.residual_motion import (
    CONFIRM_REFERENCE_PX,
    coherent_lengths,
    confirm_ratio_at,
    explain_parallax,
    lands_inside,
    matched_unlike_camera,
    pixels_matched_better,
    region_box,
    regions_matched_better,
    reliable_medians,
)
from motionpipe.stages.segmenters import (
    MotionRegionSegmenter,
    Propagate,
    Sam2Segmenter,
    Segmenter,
    require_sam2_checkpoint,
)
from motionpipe.stages.temporal_support import SUPPORT_RATIO, PairFlows, still_moving, support_frame
from motionpipe.stages.velocity_split import split_by_velocity

SEGMENTERS = ("motion_regions", "sam2")

CAMERA_TYPES = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "rotate", "complex")


@dataclass(frozen=True)
class DecoupleConfig:
    """Camera/object separation.

    object_threshold: residual speed, %diag/s, above which a pixel may belong to a moving object (the floor).
    noise_factor: a pair's threshold is at least this many times its noise floor, the median residual speed of
        its reliable pixels (noisy, compressed or fast video has more flow error than clean video).
    parallax_area: when more than this share of the reliable pixels moves along the lines through the epipole,
        the way nearer still scenery does under a moving camera, and it is spread over the frame, that component
        is parallax, not object motion (stages/residual_motion.py).
    confirm_ratio: a moving region's match error with the second frame moved by the camera over that moved by
        the flow, at least (1 keeps nearly every region). Measured on the tuning seed of benchmarks/decouple.py
        at 256 px, pairs 1/12 s apart, crf 42 aside: blobs of flow error 1.35 median, 2.1 at the 90th percentile
        (the few above, up to 4.5, do not persist: stages/object_persistence.py); the largest region of a pair
        with objects 2.6 at the 5th percentile, 7.0 median. That is the ratio at a 256 px processing size; smaller
        frames use less (residual_motion.confirm_ratio_at): at 96 px, 2 lost 3 of 17 slow objects (3-6 %diag/s)
        and the 1.375 used there none.
    support_ratio: a region's match error with a frame a quarter second on, moved as a still scene, over that moved
        with the region's own velocity too, at least (stages/temporal_support.py); 0 keeps every region.
    min_object_area: connected regions smaller than this fraction of the frame are noise.
    static_threshold: %diag/s; a camera whose translation, zoom and rotation each move the frame less
        than this on average is 'static'.
    dominance: a camera motion component must exceed the others by this factor to name the type;
        otherwise the type is 'complex'.
    segmenter: 'motion_regions' (built in) | 'sam2'.
    sam2_config: SAM2 model config inside the sam2 package; sam2_checkpoint: its local weights file.
    sam2_image_size: SAM2 input size (1024 as trained; 512 is 8x faster on CPU).
    allow_random_weights: SAM2 without a checkpoint, for tests only (rows say '+random-weights').
    device: 'cpu' | 'cuda' for SAM2; on 'cuda' the engine gives each worker one GPU.
    """

    object_threshold: float = 2.0
    min_object_area: float = 0.002
    static_threshold: float = 0.75
    dominance: float = 2.0
    segmenter: str = "motion_regions"
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml"
    sam2_checkpoint: str = ""
    sam2_image_size: int = 1024
    allow_random_weights: bool = False
    device: str = "cpu"
    noise_factor: float = 3.0
    parallax_area: float = 0.15
    confirm_ratio: float = 2.0
    support_ratio: float = SUPPORT_RATIO

    def __post_init__(self) -> None:
        if self.object_threshold <= 0 or self.static_threshold <= 0:
            raise ValueError("decouple.object_threshold and decouple.static_threshold must be > 0 %diag/s")
        if self.noise_factor < 1 or self.confirm_ratio < 1 or not 0 < self.parallax_area <= 1:
            raise ValueError(
                "decouple.noise_factor and decouple.confirm_ratio must be >= 1, decouple.parallax_area in (0, 1]"
            )
        if self.support_ratio < 0:
            raise ValueError(f"decouple.support_ratio must be >= 0 (0 keeps every region), got {self.support_ratio}")
        if not 0 <= self.min_object_area < 1:
            raise ValueError(f"decouple.min_object_area must be a fraction in [0, 1), got {self.min_object_area}")
        if self.dominance < 1:
            raise ValueError(f"decouple.dominance must be >= 1, got {self.dominance}")
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"decouple.segmenter {self.segmenter!r} unknown; choose one of {SEGMENTERS}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"decouple.device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.sam2_image_size < 64 or self.sam2_image_size % 16:
            raise ValueError(f"decouple.sam2_image_size must be a multiple of 16, >= 64, got {self.sam2_image_size}")

    def check_weights(self) -> None:
        """Fail before any work starts when SAM2 has no checkpoint (MissingWeightsError)."""
        if self.segmenter == "sam2":
            require_sam2_checkpoint(self.sam2_checkpoint, self.allow_random_weights)

    def build_segmenter(self) -> Segmenter:
        if self.segmenter == "motion_regions":
            return MotionRegionSegmenter(self.min_object_area)
        return Sam2Segmenter(
            self.min_object_area,
            self.sam2_config,
            self.sam2_checkpoint,
            self.allow_random_weights,
            self.sam2_image_size,
        )


@functools.cache
def mean_radius_pct_diag(width: int, height: int) -> float:
    """Mean distance of the frame's pixels from its centre, in %diag: turns zoom and rotation rates
    into the mean speed they give the frame."""
    xs = (np.arange(width) - (width - 1) / 2)[None, :]
    ys = (np.arange(height) - (height - 1) / 2)[:, None]
    return float(np.hypot(xs, ys).mean() * 100 / math.hypot(width, height))


def classify_camera(rates: CameraRates, width: int, height: int, config: DecoupleConfig) -> str:
    """Name the camera motion from its per-second rates (thresholds in %diag/s)."""
    radius = mean_radius_pct_diag(width, height)
    components = {
        "translation": math.hypot(rates.tx, rates.ty),
        "zoom": abs(rates.zoom) * radius,
        "rotate": abs(rates.rot) * radius,
    }
    ranked = sorted(components.items(), key=lambda item: -item[1])
    (kind, speed), (_, runner_up) = ranked[0], ranked[1]
    if speed < config.static_threshold:
        return "static"
    if speed < config.dominance * runner_up:
        return "complex"
    if kind == "zoom":
        return "zoom_in" if rates.zoom > 0 else "zoom_out"
    if kind == "rotate":
        return "rotate"
    if abs(rates.tx) >= config.dominance * abs(rates.ty):
        return "pan_right" if rates.tx > 0 else "pan_left"
    if abs(rates.ty) >= config.dominance * abs(rates.tx):
        return "tilt_down" if rates.ty > 0 else "tilt_up"
    return "complex"


def mean_region_speed(regions: np.ndarray, measured: np.ndarray, speeds: np.ndarray) -> float:
    """The mean over the connected regions of ``regions[P, h, w]`` of their median ``speeds`` over the ``measured``
    pixels inside them, each weighted by that many pixels; 0 without any."""
    groups = []
    for pair_regions, pair_measured, pair_speeds in zip(regions, measured, speeds, strict=True):
        count, labels = cv2.connectedComponents(pair_regions.astype(np.uint8), connectivity=8)
        groups += [pair_speeds[pair_measured & (labels == label)] for label in range(1, count)]
    return mean_of_medians(groups)


def still_scene_excess(forward: np.ndarray, camera: np.ndarray, still: np.ndarray) -> np.ndarray:
    """``float[P]``: per pair, how much faster than the ``camera`` flow the ``still`` pixels (``bool[P, h, w]``:
    reliable, no object) move by their ``forward`` flow, on average (px). Under a translating camera nearer
    scenery moves faster than the plane a homography fits and farther scenery slower: camera_motion is the still
    scene's mean image speed (MotionStone's camera motion, the benchmark's truth), and the homography's alone read
    it 24-30% low on layered scenes with the rendered flow, with this 1-2% (benchmarks/RESULTS.md)."""
    excess = np.sqrt(squared_length(forward)) - np.sqrt(squared_length(camera))
    return np.array([float(e[mask].mean()) if mask.any() else 0.0 for e, mask in zip(excess, still, strict=True)])


def measuring_grey(frame: np.ndarray) -> np.ndarray:
    """A frame in grey at the measuring size (a pyramid step down, where the measuring pixels sit)."""
    return cv2.pyrDown(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)).astype(np.float32)


Grey = Callable[[int], np.ndarray]
"""A clip's frame (by index) in grey at the measuring size; each is converted once (pairs share frames)."""


class DecoupleStage(Stage):
    """Camera model, object masks and the decoupled pseudo-labels, from the measuring pairs."""

    name: ClassVar[str] = "decouple"

    def __init__(self, config: DecoupleConfig) -> None:
        self.config = config
        self.segmenter = config.build_segmenter()
        uses_gpu = config.segmenter == "sam2" and config.device == "cuda"
        self.resources = Resources(cpus=1.0, gpus=1.0 if uses_gpu else 0.0)

    def serve_from(self, propagate: Propagate) -> None:
        """Segment with a SAM2 that lives elsewhere (a shared segment server): this worker needs no GPU."""
        if not isinstance(self.segmenter, Sam2Segmenter):
            raise TypeError(f"only the sam2 segmenter can be served, not {self.segmenter.name}")
        self.segmenter.serve_from(propagate)
        self.resources = Resources(cpus=1.0)

    def setup(self, device: str = "cpu") -> None:
        self.segmenter.setup(self.config.device)

    def _confirmed(
        self, mask: np.ndarray, grey: Grey, pair: list[int], camera: np.ndarray, forward: np.ndarray
    ) -> np.ndarray:
        """The pair's candidate regions that its pixels confirm; the frames are read only when there is one."""
        if not mask.any():
            return mask
        box = region_box(mask)
        ratio = confirm_ratio_at(self.config.confirm_ratio, min(mask.shape))
        frames = grey(pair[0]), grey(pair[1])
        return regions_matched_better(mask, frames, camera[box], forward[box], ratio, box)

    def _borne_out(
        self, mask: np.ndarray, grey: Grey, pair: list[int], still: np.ndarray, forward: np.ndarray
    ) -> np.ndarray:
        """The pair's object pixels whose motion its frames bear out, the ones object_motion is read over
        (residual_motion.pixels_matched_better); the frames are read only when there are any."""
        return pixels_matched_better(mask, (grey(pair[0]), grey(pair[1])), still, forward) if mask.any() else mask

    def _kept_moving(
        self, mask: np.ndarray, video: DecodedVideo, grey: Grey, pair: list[int], flows: PairFlows
    ) -> np.ndarray:
        """The pair's regions that a frame ``SUPPORT_GAP_S`` away still shows moving (stages/temporal_support.py);
        all of them when the clip is too short to have one."""
        later = support_frame(video.times_s, pair[0])
        if not mask.any() or later < 0 or not self.config.support_ratio:
            return mask
        scale = video.interval_s(pair[0], later) / video.interval_s(*pair)
        return still_moving(mask, grey(pair[0]), grey(later), flows, scale, self.config.support_ratio)

    def process_clip(self, clip: ClipRecord) -> None:
        video, motion, config = clip.video, clip.motion, self.config
        height, width = motion.pair_forward.shape[1:3]  # the measuring size: px below are half-size px
        pairs = video.pairs.tolist()
        reliable = motion.pair_consistent & lands_inside(motion.pair_forward)
        fits = [fit_camera(forward, trusted) for forward, trusted in zip(motion.pair_forward, reliable, strict=True)]
        induced = np.stack([camera_flow(fit.homography, width, height) for fit in fits])
        intervals = [video.interval_s(first, second) for first, second in pairs]
        per_px = np.array([pct_diag_per_s(width, height, dt) for dt in intervals])[:, None, None]
        residual = motion.pair_forward - induced
        residual_speeds = np.sqrt(squared_length(residual)) * per_px
        camera_speeds = (np.sqrt(squared_length(induced)) * per_px).mean(axis=(1, 2))
        evidence = np.where(reliable, coherent_lengths(residual, reliable) * per_px, 0.0)
        noise_speeds, still_flow, parallax = reliable_medians(evidence, reliable), induced, None
        grey = functools.cache(lambda index: measuring_grey(video.frames[index]))
        homography_flow = induced  # the first fit's, which camera_motion starts from (a refit replaces induced)
        camera_moves = float(np.mean(camera_speeds)) > 2 * config.static_threshold
        if camera_moves:
            # parallax is told from each pixel's own residual, so its noise floor is theirs, not the window's
            noise_px = reliable_medians(residual_speeds, reliable) / per_px[:, 0, 0]
            borne_out = np.stack(
                [
                    matched_unlike_camera((grey(first), grey(second)), camera, forward)
                    for (first, second), camera, forward in zip(pairs, induced, motion.pair_forward, strict=True)
                ]
            )
            parallax = explain_parallax(residual, induced, reliable, noise_px, config.parallax_area, borne_out)
            if parallax is not None:
                farther = against_farthest_surface(
                    motion.pair_forward, reliable, induced, parallax, noise_px, config.parallax_area
                )
                if farther is not None:  # objects move against the farthest surface, not a nearer layer
                    induced, parallax = farther
                    residual = motion.pair_forward - induced
                    residual_speeds = np.sqrt(squared_length(residual)) * per_px
                evidence = np.where(reliable, parallax.evidence_px * per_px, 0.0)
                noise_speeds, still_flow = parallax.noise_px * per_px[:, 0, 0], parallax.still_flow
        thresholds = np.maximum(config.object_threshold, config.noise_factor * noise_speeds)
        candidates = self.segmenter.object_masks(video, evidence, reliable, thresholds)
        min_px = config.min_object_area * height * width
        candidates = np.stack(
            [
                split_by_velocity(mask, forward - still, min_px)
                for mask, forward, still in zip(candidates, motion.pair_forward, still_flow, strict=True)
            ]
        )
        confirmed = np.stack(
            [
                self._confirmed(mask, grey, pair, still, forward)
                for mask, pair, still, forward in zip(candidates, pairs, still_flow, motion.pair_forward, strict=True)
            ]
        )
        objects = np.stack(
            [
                self._kept_moving(mask, video, grey, pair, PairFlows(forward, camera, still))
                for mask, pair, forward, camera, still in zip(
                    confirmed, pairs, motion.pair_forward, induced, still_flow, strict=True
                )
            ]
        )
        anchors = np.array([video.times_s[first] for first, _ in pairs])
        # Heavily compressed video has candidate motion everywhere, so another pair's confirmed motion must bear a
        # region out; candidate motion does under parallax (an object's evidence shows in some pairs only) and on
        # frames too small for the full confirmation ratio (a slow object is confirmed in some pairs only).
        confirmed_witnesses = parallax is None and min(height, width) >= CONFIRM_REFERENCE_PX
        witnesses = confirmed if confirmed_witnesses else candidates
        objects = persistent_regions(objects, witnesses, motion.pair_forward, np.array(intervals), anchors)
        clip.object_masks = objects
        measured = np.stack(
            [
                self._borne_out(mask & trusted, grey, pair, still, forward)
                for mask, trusted, pair, still, forward in zip(
                    objects, reliable, pairs, still_flow, motion.pair_forward, strict=True
                )
            ]
        )
        if camera_moves:  # a still camera's flow over the still pixels is noise, which only adds speed
            camera_speeds = (
                camera_speeds
                + still_scene_excess(motion.pair_forward, homography_flow, reliable & ~objects) * per_px[:, 0, 0]
            )
        rates = [camera_rates(fit.homography, width, height, dt) for fit, dt in zip(fits, intervals, strict=True)]
        # the median pair's rates: a handheld jolt or a cut within one pair does not name the clip's camera motion
        typical = CameraRates(*(float(np.median([getattr(r, f) for r in rates])) for f in ("tx", "ty", "zoom", "rot")))
        clip.fields.update(
            camera_backend="homography:usac",
            segment_backend=self.segmenter.name,
            camera_motion=float(camera_speeds.mean()),
            object_motion=mean_region_speed(objects, measured, residual_speeds),
            object_area=float(objects.mean()),
            camera_type=classify_camera(typical, width, height, self.config),
            cam_tx=typical.tx,
            cam_ty=typical.ty,
            cam_zoom=typical.zoom,
            cam_rot=typical.rot,
            camera_inliers=float(np.mean([fit.inlier_fraction for fit in fits])),
            camera_parallax=parallax is not None,
        )
