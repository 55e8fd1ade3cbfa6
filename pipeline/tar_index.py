"""Random access to the samples of a tar by key, for readers that need a few clips of a shard, not all.

The index holds each member's data offset and size (headers only are read to build it); reading a
sample seeks straight to its members. Works for local paths and pyarrow filesystem URLs alike (not for
streams read once: pipes, HTTP).
"""

from __future__ import annotations

import tarfile

from motionpipe.pipeline.shard_reader import printable_name, split_member_name
from motionpipe.pipeline.shard_sources import open_shard, random_access


class TarIndex:
    """Sample key -> {extension: (offset, size)}; the first sample of a duplicated key wins, as in annotate."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.members: dict[str, dict[str, tuple[int, int]]] = {}
        if not random_access(location):
            raise OSError(f"{location} is read once (a pipe or an HTTP stream): read the clips from a copy on "
                          "disk or an object store (--shards DIR)")  # fmt: skip
        with open_shard(location) as stream:
            with tarfile.open(fileobj=stream, mode="r:") as archive:
                seen_last = ""
                for member in archive.getmembers():
                    if not member.isfile():
                        continue
                    key, extension = split_member_name(printable_name(member.name))
                    if key in self.members and key != seen_last:
                        continue
                    self.members.setdefault(key, {}).setdefault(extension, (member.offset_data, member.size))
                    seen_last = key

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def read(self, key: str) -> dict[str, bytes]:
        """Extension -> bytes of every member of the sample ``key`` (KeyError when the tar has none)."""
        found = {}
        with open_shard(self.location) as stream:
            for extension, (offset, size) in self.members[key].items():
                stream.seek(offset)
                found[extension] = stream.read(size)
        return found
