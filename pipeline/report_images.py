"""The report's pictures, drawn with Pillow alone: bar charts of distributions and counts, and animated clips
with their motion overlaid (heatmap in red, motion-mask outline in yellow, sparse tracks in cyan)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CHART_SIZE = (480, 260)
MARGIN = (48, 16, 16, 52)  # left, top, right, bottom, px
BAR_COLOUR, AXIS_COLOUR, TEXT_COLOUR = (66, 118, 196), (120, 120, 120), (30, 30, 30)
GIF_FRAME_MS = 120  # ~8 fps, the default sampling rate (GIF delays are in 10 ms units)


def bar_chart(path: Path, labels: list[str], values: list[float], title: str) -> None:
    """A PNG bar chart (labels under the bars, the largest value on the axis)."""
    image = Image.new("RGB", CHART_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = MARGIN
    width, height = CHART_SIZE[0] - left - right, CHART_SIZE[1] - top - bottom
    peak = max(values, default=0) or 1
    draw.text((left, 2), title, fill=TEXT_COLOUR, font=font)
    draw.line([(left, top), (left, top + height), (left + width, top + height)], fill=AXIS_COLOUR)
    draw.text((4, top), f"{peak:g}", fill=TEXT_COLOUR, font=font)
    step = width / max(len(values), 1)
    every = max(1, len(labels) // 8)  # at most ~8 labels, so they do not overlap
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + index * step + 1
        draw.rectangle([x0, top + height * (1 - value / peak), x0 + max(step - 2, 1), top + height], fill=BAR_COLOUR)
        if index % every == 0:
            draw.text((x0, top + height + 4 + 12 * ((index // every) % 2)), label, fill=TEXT_COLOUR, font=font)
    image.save(path)


def histogram(path: Path, values: np.ndarray, title: str, bins: int = 20) -> None:
    """A PNG histogram of the finite values (bin left edges as labels)."""
    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(finite, bins=bins) if finite.size else (np.zeros(bins), np.linspace(0, 1, bins + 1))
    bar_chart(path, [f"{edge:.3g}" for edge in edges[:-1]], counts.tolist(), f"{title} ({finite.size} clips)")


def overlay_frames(samples: np.ndarray, conditions: dict[str, np.ndarray] | None) -> list[Image.Image]:
    """Each sample with what motionpipe saw in it: heatmap tint, motion-mask outline, sparse tracks so far."""
    frames = []
    height, width = samples.shape[1:3]
    outline = None
    if conditions and "motion_mask" in conditions:
        mask = conditions["motion_mask"].astype(np.uint8)
        outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    for index, sample in enumerate(samples):
        frame = sample.astype(np.float32)
        if conditions and "heatmap" in conditions:
            heat = conditions["heatmap"]
            plane = heat[min(index * len(heat) // len(samples), len(heat) - 1)].astype(np.float32) / 255
            weight = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)[..., None] * 0.6
            frame = frame * (1 - weight) + np.array([255, 0, 0], np.float32) * weight
        if outline is not None:
            frame[outline] = (255, 230, 0)
        image = Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8))
        if conditions and "sparse_tracks" in conditions:
            draw = ImageDraw.Draw(image)
            for track, visible in zip(conditions["sparse_tracks"], conditions["sparse_visibility"], strict=True):
                points = [
                    tuple(point) for point, seen in zip(track[: index + 1].tolist(), visible, strict=False) if seen
                ]
                if len(points) > 1:
                    draw.line(points, fill=(0, 255, 255), width=1)
                if points:
                    x, y = points[-1]
                    draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(0, 255, 255))
        frames.append(image)
    return frames


def animated_gif(path: Path, frames: list[Image.Image]) -> None:
    """An endlessly looping GIF at the sampling rate."""
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0)
