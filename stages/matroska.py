"""Whether a Matroska or WebM file can have a display matrix, read from its track headers without decoding.

Matroska keeps a turn or a mirror as the ``Projection`` of a video track (its pose yaw, pitch and roll), which
FFmpeg turns into the display matrix it attaches to decoded frames. Reading that matrix means decoding a frame
(PyAV does not expose a stream's side data): 1-3 ms a clip at 640x360, 1-6% of a clip's decode. A track without
a Projection has no matrix, so only files whose first video track has one need that frame.

EBML, Matroska's encoding: each element is an ID and a size, both variable-length integers (the ID keeps its
length marker, the size drops it; a size of all ones is unknown), then its payload, which for a master element
is a run of elements.
"""

from __future__ import annotations

from collections.abc import Iterator

EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the EBML header's ID, which opens every Matroska and WebM file
SEGMENT = 0x18538067
TRACKS = 0x1654AE6B
CLUSTER = 0x1F43B675  # frames: the track headers come before the first one in any file written for playback
TRACK_ENTRY = 0xAE
TRACK_TYPE = 0x83
VIDEO = 0xE0
PROJECTION = 0x7670
VIDEO_TRACK_TYPE = 1


def is_matroska(data: bytes) -> bool:
    """Whether the file opens with an EBML header, as Matroska and WebM files do."""
    return data[:4] == EBML_MAGIC


def first_video_track_projects(data: bytes) -> bool | None:
    """Whether the first video track has a Projection; None when that cannot be told from the headers (not
    Matroska, no video track, tracks after the first cluster or damaged): then the first frame decides."""
    if not is_matroska(data):
        return None
    segment = next((span for ident, *span in elements(data, 0, len(data)) if ident == SEGMENT), None)
    if segment is None:
        return None
    for ident, start, end in elements(data, *segment):
        if ident == CLUSTER:
            return None
        if ident == TRACKS:
            for entry in (span for child, *span in elements(data, start, end) if child == TRACK_ENTRY):
                fields = {child: span for child, *span in elements(data, *entry)}
                kind = fields.get(TRACK_TYPE)
                if kind is None or int.from_bytes(data[kind[0] : kind[1]], "big") != VIDEO_TRACK_TYPE:
                    continue
                video = fields.get(VIDEO)
                return video is not None and any(child == PROJECTION for child, *_ in elements(data, *video))
            return None
    return None


def elements(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(ID, payload start, payload end) of each element in ``data[start:end]``; an element of unknown size runs
    to ``end``. Stops at bytes that are not an element or an element that overruns ``end``."""
    offset = start
    while offset < end:
        ident = variable_integer(data, offset, end, keep_marker=True)
        if ident is None:
            return
        value, offset = ident
        size = variable_integer(data, offset, end, keep_marker=False)
        if size is None:
            return
        length, offset = size
        payload_end = end if length is None else offset + length
        if payload_end > end:
            return
        yield value, offset, payload_end
        offset = payload_end


def variable_integer(data: bytes, offset: int, end: int, keep_marker: bool) -> tuple[int | None, int] | None:
    """An EBML variable-length integer at ``offset`` and the offset after it; its value None when it is a size of
    all ones (unknown). None when no valid one fits before ``end``."""
    if offset >= end or data[offset] == 0:
        return None
    length = 9 - data[offset].bit_length()
    if offset + length > end:
        return None
    value = int.from_bytes(data[offset : offset + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
        if value == (1 << (7 * length)) - 1:
            return None, offset + length
    return value, offset + length
