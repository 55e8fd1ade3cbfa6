"""A video's display matrix: how players turn and mirror the coded frames before showing them.

FFmpeg's layout (``AV_PKT_DATA_DISPLAYMATRIX``; in MP4 the ``tkhd`` matrix, then the ``mvhd`` one): 9 int32
``a b u c d v x y w`` mapping a coded point (x, y) to the shown ``(a x + c y, b x + d y)``, y pointing down.
Decoders read only its rotation (FFmpeg's ``av_display_rotation_get``, PyAV's ``frame.rotation``, and decord,
which turns frames by it), so a mirrored clip (a selfie camera) comes out turned instead: measured with decord
0.6, a horizontal mirror as a half turn and a vertical one not at all. Motion read from it would go the wrong
way (a pan right as a pan left). Here the whole matrix is applied when it turns by quarter turns, mirrored or not.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

FIXED_ONE = 1 << 16  # a, b, c, d are 16.16 fixed point
TKHD_TIMES = (20, 32)  # bytes of times, track id and duration in a tkhd of version 0, 1
MVHD_TIMES = (16, 28)  # bytes of times, timescale and duration in an mvhd of version 0, 1


@dataclass(frozen=True)
class Orientation:
    """How the shown frame's axes come from the coded one's: rows and columns swapped (a quarter turn or a
    transpose), then shown rows and columns reversed."""

    swap_axes: bool
    flip_rows: bool
    flip_cols: bool

    @property
    def mirrored(self) -> bool:
        """Whether it mirrors (determinant -1) rather than only turns."""
        return self.swap_axes != (self.flip_rows != self.flip_cols)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The coded ``[H, W, ...]`` pixels as shown."""
        if self.swap_axes:
            pixels = pixels.swapaxes(0, 1)
        if self.flip_rows:
            pixels = pixels[::-1]
        if self.flip_cols:
            pixels = pixels[:, ::-1]
        return np.ascontiguousarray(pixels)


def orientation_of(matrix: Sequence[int]) -> Orientation | None:
    """The orientation a display matrix asks for; None unless it turns by quarter turns (with or without a
    mirror), the only ones frames can follow without resampling."""
    a, b, c, d = (round(matrix[index] / FIXED_ONE) for index in (0, 1, 3, 4))
    if {abs(a), abs(d)} == {1} and b == c == 0:
        return Orientation(swap_axes=False, flip_rows=d < 0, flip_cols=a < 0)
    if {abs(b), abs(c)} == {1} and a == d == 0:
        return Orientation(swap_axes=True, flip_rows=b < 0, flip_cols=c < 0)
    return None


def decoder_turns(matrix: Sequence[int]) -> int:
    """Counter-clockwise quarter turns that a decoder reading only the rotation applies (decord does;
    ``av_display_rotation_get``, rounded), 0-3."""
    column_x, column_y = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if not column_x or not column_y:
        return 0
    degrees = -math.degrees(math.atan2(matrix[1] / column_y, matrix[0] / column_x))
    return round(degrees / 90) % 4


def as_shown(pixels: np.ndarray, matrix: Sequence[int], turned: int = 0) -> np.ndarray:
    """Decoded ``[H, W, ...]`` pixels as players show them, given the stream's display matrix and the
    counter-clockwise quarter turns the decoder already applied (decord: ``decoder_turns``; PyAV: none). A
    matrix that is not by quarter turns gets the decoders' rounded rotation."""
    orientation = orientation_of(matrix)
    if orientation is None:
        return np.ascontiguousarray(np.rot90(pixels, decoder_turns(matrix) - turned))
    return orientation.apply(np.rot90(pixels, -turned))


def swaps_axes(matrix: Sequence[int]) -> bool:
    """Whether the frame is shown turned a quarter (or transposed): its coded rows become shown columns."""
    orientation = orientation_of(matrix)
    return decoder_turns(matrix) % 2 == 1 if orientation is None else orientation.swap_axes


def turning_shows_it(matrix: Sequence[int]) -> bool:
    """Whether a decoder that turns frames by the rotation alone shows them right (no mirror in the matrix)."""
    orientation = orientation_of(matrix)
    return orientation is None or not orientation.mirrored


def is_iso_bmff(data: bytes) -> bool:
    """MP4, MOV and their kin (ISO base media files): their headers hold the display matrix."""
    return data[4:8] == b"ftyp"


def mp4_display_matrix(data: bytes) -> tuple[int, ...] | None:
    """The display matrix of an MP4/MOV file's first video track as FFmpeg reads it (its ``tkhd`` matrix, then
    the movie's in ``mvhd``), from the bytes in memory; None for other containers, a file without one, or boxes
    that do not parse."""
    if not is_iso_bmff(data):
        return None
    movie = next(child_boxes(data, 0, len(data), b"moov"), None)
    if movie is None:
        return None
    movie_header = next(child_boxes(data, *movie, b"mvhd"), None)
    movie_span = matrix_span(data, movie_header, MVHD_TIMES) if movie_header else None
    for track in child_boxes(data, *movie, b"trak"):
        header = next(child_boxes(data, *track, b"tkhd"), None)
        handler = next(child_boxes(data, *track, b"mdia", b"hdlr"), None)
        if header is None or handler is None or data[handler[0] + 8 : handler[0] + 12] != b"vide":
            continue
        span = matrix_span(data, header, TKHD_TIMES)
        if span is not None:
            track_matrix = struct.unpack(">9i", data[span])
            if movie_span is None:
                return track_matrix
            return followed_by(track_matrix, struct.unpack(">9i", data[movie_span]))
    return None


def matrix_span(data: bytes, box: tuple[int, int], times: tuple[int, int]) -> slice | None:
    """Where the matrix of a ``tkhd`` or ``mvhd`` box payload lies: after its version and flags, its times (``times``
    bytes by version 0, 1) and 16 more bytes; None when the box is too short."""
    start = box[0] + 4 + times[data[box[0] : box[0] + 1] == b"\x01"] + 16
    return slice(start, start + 36) if start + 36 <= box[1] else None


def followed_by(first: Sequence[int], then: Sequence[int]) -> tuple[int, ...]:
    """The display matrix of ``first`` applied, then ``then``, in the fixed point of both (FFmpeg composes a
    track's matrix with the movie's so): a, b, c, d, x, y are 16.16, u, v, w 2.30."""
    rows = [first[index : index + 3] for index in (0, 3, 6)]
    columns = [then[index::3] for index in range(3)]
    return tuple(
        sum((row[e] * column[e]) >> (30 if e == 2 else 16) for e in range(3)) for row in rows for column in columns
    )


def child_boxes(data: bytes, start: int, end: int, *path: bytes) -> Iterator[tuple[int, int]]:
    """(payload start, payload end) of each box at ``path`` below the box payload ``data[start:end]``."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1 and offset + 16 <= end:
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            return
        if kind == path[0]:
            if len(path) == 1:
                yield offset + header, offset + size
            else:
                yield from child_boxes(data, offset + header, offset + size, *path[1:])
        offset += size
