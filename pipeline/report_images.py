"""The report's pictures, drawn with Pillow alone: bar charts of distributions and counts (axes with round
ticks, logarithmic where counts span orders of magnitude), an object-vs-camera scatter, and animated clips
with their motion overlaid (heatmap in red, motion-mask outline in yellow, sparse tracks in cyan)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CHART_SIZE = (520, 300)
MARGIN = (56, 36, 16, 64)  # left, top, right, bottom, px: room for tick labels and the axis titles
BAR_COLOUR, AXIS_COLOUR, GRID_COLOUR, TEXT_COLOUR = (66, 118, 196), (90, 90, 90), (225, 225, 225), (30, 30, 30)
POINT_COLOUR = (196, 70, 66)
LOG_SCALE_SPREAD = 50  # counts whose largest is more than this many times their smallest non-zero: log scale
TICK_PX = 4
GIF_FRAME_MS = 120  # ~8 fps, the default sampling rate (GIF delays are in 10 ms units)


def nice_ticks(peak: float, count: int = 4, whole: bool = False) -> list[float]:
    """0 and round steps (1, 2 or 5 x 10^k; whole numbers for counts) up to the first at or above ``peak``."""
    if peak <= 0:
        return [0.0, 1.0]
    raw = max(peak / count, 1.0) if whole else peak / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= raw)
    return [step * index for index in range(math.ceil(peak / step - 1e-9) + 1)]


def log_ticks(peak: float) -> list[float]:
    """0 and the powers of ten up to the first at or above ``peak`` (for counts: 1, 10, 100, ...)."""
    return [0.0] + [10.0**power for power in range(math.ceil(math.log10(max(peak, 1))) + 1)]


def wants_log_scale(values: list[float]) -> bool:
    """Counts that span orders of magnitude (one bar dwarfing the rest) read better on a log scale."""
    positive = [value for value in values if value > 0]
    return len(positive) > 1 and max(positive) > LOG_SCALE_SPREAD * min(positive)


class Plot:
    """A chart's canvas: the plot box inside the margins, its axes, ticks, grid lines and titles."""

    def __init__(self, title: str, x_title: str, y_title: str) -> None:
        self.image = Image.new("RGB", CHART_SIZE, "white")
        self.draw = ImageDraw.Draw(self.image)
        self.font = ImageFont.load_default()
        left, top, right, bottom = MARGIN
        self.box = (left, top, CHART_SIZE[0] - right, CHART_SIZE[1] - bottom)
        self.draw.text((left, 4), title, fill=TEXT_COLOUR, font=self.font)
        self.draw.text((left, CHART_SIZE[1] - 14), x_title, fill=TEXT_COLOUR, font=self.font)
        self.draw.text((4, 20), y_title, fill=TEXT_COLOUR, font=self.font)

    def y_axis(self, ticks: list[float], log: bool) -> Callable[[float], float]:
        """Draw the value axis (grid line and label per tick) -> value to y pixel."""
        left, top, right, bottom = self.box
        scaled = (lambda v: math.log10(1 + v)) if log else (lambda v: v)
        top_value = scaled(ticks[-1]) or 1.0

        def to_y(value: float) -> float:
            return bottom - (bottom - top) * scaled(max(value, 0.0)) / top_value

        for tick in ticks:
            y = to_y(tick)
            self.draw.line([(left, y), (right, y)], fill=GRID_COLOUR)
            self.draw.line([(left - TICK_PX, y), (left, y)], fill=AXIS_COLOUR)
            label = f"{tick:g}"
            self.draw.text((left - TICK_PX - 6 * len(label) - 2, y - 5), label, fill=TEXT_COLOUR, font=self.font)
        self.draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
        return to_y

    def x_axis(self, ticks: list[float]) -> Callable[[float], float]:
        """Draw a value axis along the bottom (grid line and label per tick) -> value to x pixel."""
        left, top, right, bottom = self.box

        def to_x(value: float) -> float:
            return left + (right - left) * value / (ticks[-1] or 1.0)

        for tick in ticks:
            x = to_x(tick)
            self.draw.line([(x, top), (x, bottom)], fill=GRID_COLOUR)
            self.draw.line([(x, bottom), (x, bottom + TICK_PX)], fill=AXIS_COLOUR)
            label = f"{tick:g}"
            self.draw.text((x - 3 * len(label), bottom + TICK_PX + 2), label, fill=TEXT_COLOUR, font=self.font)
        self.draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
        return to_x

    def save(self, path: Path) -> None:
        self.image.save(path)


def bar_chart(path: Path, labels: list[str], values: list[float], title: str, x_title: str = "") -> None:
    """A PNG bar chart: labels under the bars, a value axis with round ticks (logarithmic when the values span
    orders of magnitude, as counts of camera types or errors often do)."""
    log = wants_log_scale(values)
    peak = max(values, default=0)
    plot = Plot(title, x_title, "clips (log scale)" if log else "clips")
    to_y = plot.y_axis(log_ticks(peak) if log else nice_ticks(peak, whole=True), log)
    left, top, right, bottom = plot.box
    step = (right - left) / max(len(values), 1)
    every = max(1, len(labels) // 8)  # at most ~8 labels, so they do not overlap
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + index * step + 1
        plot.draw.rectangle([x0, to_y(value), x0 + max(step - 2, 1), bottom], fill=BAR_COLOUR)
        if index % every == 0:
            y = bottom + TICK_PX + 2 + 12 * ((index // every) % 2)
            plot.draw.text((x0, y), label, fill=TEXT_COLOUR, font=plot.font)
    plot.save(path)


def histogram(path: Path, values: np.ndarray, title: str, bins: int = 20) -> None:
    """A PNG histogram of the finite values (bin left edges as labels)."""
    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(finite, bins=bins) if finite.size else (np.zeros(bins), np.linspace(0, 1, bins + 1))
    edges = np.where(np.abs(edges) < 1e-9 * np.abs(edges).max(initial=1), 0.0, edges)  # no 1e-15 for a 0
    labels = [f"{edge:.3g}" for edge in edges[:-1]]
    bar_chart(path, labels, counts.tolist(), f"{title}: {finite.size} clips", "bin from")


def scatter(path: Path, x: np.ndarray, y: np.ndarray, title: str, x_title: str, y_title: str) -> None:
    """A PNG scatter plot of the finite (x, y) pairs on round-ticked linear axes from 0."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = np.maximum(x[finite], 0), np.maximum(y[finite], 0)
    plot = Plot(f"{title}: {finite.sum()} clips", x_title, y_title)
    to_y = plot.y_axis(nice_ticks(float(y.max(initial=0))), log=False)
    to_x = plot.x_axis(nice_ticks(float(x.max(initial=0))))
    for px, py in zip(map(to_x, x), map(to_y, y), strict=True):
        plot.draw.ellipse([px - 2, py - 2, px + 2, py + 2], outline=POINT_COLOUR, fill=POINT_COLOUR)
    plot.save(path)


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
