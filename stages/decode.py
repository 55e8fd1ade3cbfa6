"""Decode stage: sample member bytes -> frames at processing size, caption, video facts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from motionpipe.stages.base import ClipError, ClipRecord, DecodedVideo, Resources, Stage
from motionpipe.stages.frame_sampling import SamplingPlan, frames_to_decode, plan_sampling
from motionpipe.stages.video_decoders import decode_video, quiet_decoder_logs

VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "avi", "mov", "m4v")
CAPTION_JSON_KEYS = ("caption", "text", "txt")
# Anti-aliasing blur before bilinear shrinking: sigma = 0.5 sqrt(1 / ratio^2 - 1) input px. On Sintel (DIS EPE)
# it matches area averaging, where the narrower (1 / ratio - 1) / 2 of scikit-image is worse (0.26 vs 0.25 px).
ANTI_ALIAS_SIGMA = 0.5
MIN_BLUR_SIGMA = 0.3  # narrower blurs change nothing at 8 bits
NO_BLUR_SIGMA = 1e-3  # px: a one-tap kernel


@dataclass(frozen=True)
class DecodeConfig:
    """How clips are sampled and resized.

    fps_target: sampling rate of the processing frames (MotionPro and Motion-I2V use 8).
    max_frames: samples per clip; the window is ``(max_frames - 1) / fps_target`` s from the start.
    short_side: processing frames are resized so their short side is this many px (aspect kept).
    flow_pairs: closely spaced frame pairs, spread over the window, on which motion is measured.
    pair_gap_s: the two frames of a measuring pair are the farthest native frames within this gap. 1/12 s is
        the frame interval of the slowest video taken (12 fps), so every rate from 12 to 60 fps measures about
        the same interval (object scores within 10% across them, benchmarks/decouple.py; 1/24 s left 12 fps
        reading up to 20% above 24 fps), and slow motion stands twice as far above flow noise as at 1/24 s.
    chain_gap_s: the frames that tracks are chained through are at most this far apart (a step's flow stays
        accurate where motion is fast).
    threads: decoder threads per clip.
    max_pixels: pixel budget per frame; a header claiming more is refused before any frame is decoded
        (a decompression bomb; 40 Mpx admits 8K).
    """

    fps_target: float = 8.0
    max_frames: int = 16
    short_side: int = 256
    flow_pairs: int = 4
    pair_gap_s: float = 1 / 12
    chain_gap_s: float = 1 / 24
    threads: int = 1
    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if self.fps_target <= 0:
            raise ValueError(f"decode.fps_target must be > 0, got {self.fps_target}")
        if self.max_frames < 2:
            raise ValueError(f"decode.max_frames must be >= 2 (motion needs two frames), got {self.max_frames}")
        if not 16 <= self.short_side <= 4096:
            raise ValueError(f"decode.short_side must be in [16, 4096] px, got {self.short_side}")
        if self.flow_pairs < 1:
            raise ValueError(f"decode.flow_pairs must be >= 1, got {self.flow_pairs}")
        if self.pair_gap_s <= 0 or self.chain_gap_s <= 0:
            raise ValueError(
                f"decode.pair_gap_s and decode.chain_gap_s must be > 0 s, got {self.pair_gap_s}, {self.chain_gap_s}"
            )
        if self.threads < 0:
            raise ValueError(f"decode.threads must be >= 0 (0 = decoder's choice), got {self.threads}")
        if self.max_pixels < 1:
            raise ValueError(f"decode.max_pixels must be >= 1, got {self.max_pixels}")


def processing_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at ``short_side`` and the aspect ratio kept."""
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def anti_alias_sigma(ratio: float) -> float:
    """Gaussian blur (px) that keeps what a shrink by ``ratio`` can hold; none when enlarging."""
    return ANTI_ALIAS_SIGMA * math.sqrt(1 / ratio**2 - 1) if ratio < 1 else 0.0


def resize_to_short_side(frame: np.ndarray, short_side: int, pixel_aspect: float = 1.0) -> np.ndarray:
    """Resize to the short side in the shape the frame is shown in: ``pixel_aspect`` is a pixel's width over its
    height as shown (an anamorphic video's sample aspect ratio), so the result has square pixels.

    Bilinear when enlarging. Shrinking is halved by Gaussian pyramid steps while the frame is twice the size or
    more, then blurred as much as the remaining ratio asks and sampled bilinearly: as good for flow as area
    averaging (DIS on Sintel at short side 256 and 200: the same EPE, benchmarks/RESULTS.md) at a third to a half
    of its cost from 640x360 to 1080p (OpenCV's area averaging is slow at ratios that are not whole numbers)."""
    height, width = frame.shape[:2]
    size = processing_size(max(1, round(width * pixel_aspect)), height, short_side)
    if size == (width, height):
        return frame
    while min(frame.shape[1] * pixel_aspect, frame.shape[0]) >= 2 * short_side:
        frame = cv2.pyrDown(frame)
    ratio = short_side / min(frame.shape[1] * pixel_aspect, frame.shape[0])  # of the shown frame
    sigma_x, sigma_y = anti_alias_sigma(ratio * pixel_aspect), anti_alias_sigma(ratio)
    if max(sigma_x, sigma_y) >= MIN_BLUR_SIGMA:
        # OpenCV reads a sigma of 0 as "the other one": a sharp axis gets a blur too small to have a kernel
        frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=max(sigma_x, NO_BLUR_SIGMA), sigmaY=max(sigma_y, NO_BLUR_SIGMA))
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def video_member(clip: ClipRecord) -> tuple[str, bytes]:
    """The sample's video member (extension, bytes); a sample without one is a clip error."""
    for extension, payload in clip.members.items():
        if extension.rsplit(".", 1)[-1] in VIDEO_EXTENSIONS:
            return extension, payload
    found = ", ".join(sorted(clip.members)) or "nothing"
    raise ClipError("input:no_video", f"no member with a video extension {VIDEO_EXTENSIONS}; found {found}")


def caption_of(clip: ClipRecord) -> str | None:
    """Caption from KEY.txt, or KEY.json's first of 'caption'/'text'/'txt'; None if absent or unreadable."""
    if "txt" in clip.members:
        return clip.members["txt"].decode("utf-8", errors="replace").strip()
    if "json" in clip.members:
        try:
            meta = json.loads(clip.members["json"])
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        if isinstance(meta, dict):
            for name in CAPTION_JSON_KEYS:
                if isinstance(meta.get(name), str):
                    return meta[name]
    return None


class DecodeStage(Stage):
    """Decodes the leading frames needed by the sampling plan, resized to the processing size."""

    name: ClassVar[str] = "decode"
    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(self, config: DecodeConfig, keep_chain: bool = False) -> None:
        self.config = config
        self.keep_chain = keep_chain

    def setup(self, device: str = "cpu") -> None:
        quiet_decoder_logs()

    def plan(self, fps: float, count: int) -> SamplingPlan | None:
        """The frames to process among ``count`` decoded at ``fps``; None when there are too few."""
        cfg = self.config
        if count < 2:
            return None
        chain_gap_s = cfg.chain_gap_s if self.keep_chain else None
        return plan_sampling(count, fps, cfg.fps_target, cfg.max_frames, cfg.flow_pairs, cfg.pair_gap_s, chain_gap_s)

    def kept_frames(self, fps: float, count: int) -> tuple[int, ...]:
        """The frames the decoder converts and keeps: only those the plan uses (none of a too-short clip)."""
        plan = self.plan(fps, count)
        return plan.all_indices if plan else ()

    def process_clip(self, clip: ClipRecord) -> None:
        cfg = self.config
        clip.fields["caption"] = caption_of(clip)
        extension, payload = video_member(clip)
        clip.fields["source"] = clip.member_names[extension]
        video = decode_video(
            payload,
            frame_limit=lambda fps: frames_to_decode(fps, cfg.fps_target, cfg.max_frames, cfg.pair_gap_s),
            kept=self.kept_frames,
            resize=lambda frame, pixel_aspect: resize_to_short_side(frame, cfg.short_side, pixel_aspect),
            threads=cfg.threads,
            max_pixels=cfg.max_pixels,
        )
        clip.fields.update(
            decode_backend=video.backend,
            codec=video.codec,
            width=video.width,
            height=video.height,
            fps=video.fps,
            num_frames=video.num_frames,
            duration_s=video.duration_s,
        )
        plan = self.plan(video.fps, video.count)
        if plan is None:
            raise ClipError("decode:too_few_frames", f"{video.count} frame(s) decoded; motion needs 2")
        kept = plan.all_indices
        position = {index: i for i, index in enumerate(kept)}
        clip.video = DecodedVideo(
            frames=np.stack([video.frames[i] for i in kept]),
            indices=np.asarray(kept),
            times_s=video.times_s[list(kept)],
            fps=video.fps,
            samples=np.array([position[i] for i in plan.sample_indices]),
            pairs=np.array([[position[a], position[b]] for a, b in plan.pair_indices]),
            chain=np.array([position[i] for i in plan.chain_indices], dtype=int),
        )
        width, height = clip.video.size
        first, last = clip.video.samples[0], clip.video.samples[-1]
        clip.fields.update(
            proc_width=width,
            proc_height=height,
            frames_used=len(plan.sample_indices),
            window_s=clip.video.interval_s(first, last),
        )
