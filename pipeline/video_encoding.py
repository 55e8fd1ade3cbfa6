"""Encode frames to video bytes with PyAV, whose wheel carries libx264/libvpx (no system ffmpeg needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

CONTAINER_FORMATS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm", "avi": "avi", "mov": "mov"}


def encode_video(
    frames: np.ndarray,
    fps: float,
    container: str = "mp4",
    codec: str = "libx264",
    crf: int = 18,
    display_rotation: int = 0,
    display_matrix: Sequence[int] | None = None,
    sample_aspect_ratio: Fraction | None = None,
) -> bytes:
    """Encode ``uint8[T, H, W, 3]`` RGB frames; H and W must be even (yuv420p). ``display_rotation``:
    degrees counter-clockwise that players turn the frames (a phone held upright), in the display matrix;
    or the whole ``display_matrix`` (9 ints in FFmpeg's layout, stages/display_matrix.py: mirrors too).
    ``sample_aspect_ratio``: a pixel's width over its height as shown (anamorphic video), in the stream."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8[T, H, W, 3], got {frames.dtype}{list(frames.shape)}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
    if display_rotation and display_matrix is not None:
        raise ValueError("give display_rotation or display_matrix, not both")
    if container not in CONTAINER_FORMATS:
        raise ValueError(f"unknown container {container!r}; choose one of {sorted(CONTAINER_FORMATS)}")
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=CONTAINER_FORMATS[container]) as output:
        stream = output.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if display_rotation:
            stream.set_display_rotation(display_rotation)
        if display_matrix is not None:
            stream.set_display_matrix(list(display_matrix))
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if codec in ("libx264", "libx265"):
            # libx264's macroblock tree gave other bytes run to run (PyAV 18.1's libx264, one thread too)
            deterministic = {"x264-params": "mbtree=0"} if codec == "libx264" else {}
            stream.options = {"crf": str(crf), "preset": "fast"} | deterministic
        else:
            stream.bit_rate = 8_000_000
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode())
    return buffer.getvalue()
