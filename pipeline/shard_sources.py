"""Where input shards live: local paths, or URLs of any filesystem pyarrow knows (``file://``, ``s3://``,
``gs://``, ``hdfs://``), listed and opened the same way, so a cluster reads shards straight from an
object store without staging them on local disk."""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path
from typing import BinaryIO

GLOB_CHARACTERS = "*?["


def is_url(location: str) -> bool:
    return "://" in location


def open_shard(location: str) -> BinaryIO:
    """A seekable binary stream of the shard (random access: the end-of-archive check seeks)."""
    if not is_url(location):
        return open(location, "rb")
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    return filesystem.open_input_file(path)


def shard_exists(location: str) -> bool:
    """Whether the shard file is there (a local path or a URL)."""
    if not is_url(location):
        return os.path.isfile(location)
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    return filesystem.get_file_info(path).type == fs.FileType.File


def relocated(location: str, folder: str) -> str:
    """Where a shard is after a move into ``folder`` (a path or URL), under the same name; itself without one."""
    if not folder:
        return location
    return f"{folder.rstrip('/')}/{location.rstrip('/').rsplit('/', 1)[-1]}"


def list_shards(location: str) -> list[str]:
    """The shard files a location names: a directory's ``*.tar``, a glob's matches, or the file itself."""
    return _list_url(location) if is_url(location) else _list_local(location)


def _list_local(location: str) -> list[str]:
    if os.path.isdir(location):
        found = sorted(str(p) for p in Path(location).glob("*.tar"))
        if not found:
            raise FileNotFoundError(f"no .tar shards in directory {location}")
    elif any(char in location for char in GLOB_CHARACTERS):
        found = sorted(glob.glob(location))
        if not found:
            raise FileNotFoundError(f"glob {location!r} matches no files")
    elif os.path.exists(location):
        found = [location]
    else:
        raise FileNotFoundError(f"input {location} does not exist")
    return [os.path.abspath(p) for p in found]


def _list_url(location: str) -> list[str]:
    from pyarrow import fs

    scheme = location.split("://", 1)[0]
    filesystem, path = fs.FileSystem.from_uri(location)
    pattern = None
    if any(char in path for char in GLOB_CHARACTERS):
        pattern, path = path, path.rsplit("/", 1)[0]
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.File and pattern is None:
        return [location]
    if info.type != fs.FileType.Directory:
        raise FileNotFoundError(f"input {location} does not exist")
    entries = filesystem.get_file_info(fs.FileSelector(path))
    names = sorted(e.path for e in entries if e.type == fs.FileType.File)
    found = [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else [n for n in names if n.endswith(".tar")]
    if not found:
        raise FileNotFoundError(f"{location} names no .tar shards")
    return [f"{scheme}://{name}" for name in found]
