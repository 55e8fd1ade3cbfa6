"""Streams WebDataset tar shards into samples grouped by key, without extracting anything to disk.

Follows WebDataset's convention: a member ``dir/name.ext1.ext2`` belongs to sample key
``dir/name`` with extension ``ext1.ext2``; consecutive members with the same key form one sample.
Names that are not UTF-8 get their stray bytes escaped (``\\xff``).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from motionpipe.pipeline.shard_sources import file_name, list_shards, open_shard


class ShardReadError(Exception):
    """The tar itself cannot be read: the whole shard fails, its clips cannot be listed."""


@dataclass
class Sample:
    """Members of one WebDataset sample: extension -> bytes, and extension -> member name."""

    key: str
    payloads: dict[str, bytes]
    member_names: dict[str, str]


def split_member_name(name: str) -> tuple[str, str]:
    """(key, extension) of a tar member, WebDataset style; the extension is lower-cased."""
    directory, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    key = f"{directory}/{stem}" if directory else stem
    return key, extension.lower() if dot else ""


def printable_name(name: str) -> str:
    """A member name as valid UTF-8 text: bytes that are not UTF-8 (tarfile keeps them as surrogates) are
    written as ``\\xNN``, so keys and outputs stay writable and the same input always gives the same key."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_samples(path: str) -> Iterator[Sample]:
    """Yield the shard's samples in tar order, reading it once from start to end (so pipes and HTTP streams
    work); a tar-level fault raises ShardReadError."""
    current: Sample | None = None
    try:
        with (
            open_shard(path) as raw,
            TailKeepingReader(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|*") as archive,
        ):
            for member in archive:
                if not member.isfile():
                    continue
                name = printable_name(member.name)
                key, extension = split_member_name(name)
                if current is not None and key != current.key:
                    yield current
                    current = None
                if current is None:
                    current = Sample(key=key, payloads={}, member_names={})
                handle = archive.extractfile(member)
                current.payloads[extension] = handle.read() if handle is not None else b""
                current.member_names[extension] = name
            end_offset = archive.offset
            if not stream.ends_with_end_marker(end_offset):
                raise ShardReadError(f"shard {path} is truncated: no end-of-archive marker after byte {end_offset}")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ShardReadError(f"cannot read shard {path}: {type(error).__name__}: {error}") from error
    if current is not None:
        yield current


COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
TAR_BLOCK = 512
KEPT_TAIL = 1 << 20  # bytes kept of the stream's end: tarfile reads ahead of its offset by at most 10 KiB


class TailKeepingReader(io.RawIOBase):
    """A read-once stream that remembers its first bytes and its last ``KEPT_TAIL``, so the end-of-archive check
    needs no seeking."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.head = b""
        self.tail = bytearray()
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        if len(self.head) < 8:
            self.head += data[: 8 - len(self.head)]
        self.tail += data
        del self.tail[: max(0, len(self.tail) - KEPT_TAIL)]
        self.total += count
        return count

    def ends_with_end_marker(self, offset: int) -> bool:
        """A plain tar ends in zero blocks; Python's tarfile silently stops at a cut header instead. Compressed
        tars are trusted to their codec's own checks; so is a stream that goes on for longer than is kept."""
        if self.head.startswith(COMPRESSED_MAGIC):
            return True
        while self.read(1 << 16):  # the rest: the end blocks and the record's padding
            pass
        start = offset - (self.total - len(self.tail))
        if start < 0:
            return True
        return len(self.tail) >= start + TAR_BLOCK and not any(self.tail[start : start + TAR_BLOCK])


def resolve_shards(inputs: list[str]) -> list[str]:
    """Expand directories (their ``*.tar``) and globs, local or URLs, into a de-duplicated list of shards."""
    shards = [shard for item in inputs for shard in list_shards(item)]
    unique = list(dict.fromkeys(shards))
    names = [shard_name(p) for p in unique]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"shards from different folders share names {clashes}: outputs are named by shard")
    return unique


def shard_name(path: str) -> str:
    """Output name of a shard: its file name without ``.tar``."""
    base = file_name(path)
    return base[: -len(".tar")] if base.endswith(".tar") else base
